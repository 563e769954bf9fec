// `picotron train --cp` as a user runs it: both layouts and both attentions, and context
// parallelism mixed with data, tensor and pipeline parallelism, print the single-process losses;
// a checkpoint saved under cp 2 resumes under cp 4 and in one process with the same losses;
// a sequence length the layout cannot split is refused naming the nearest valid lengths.

import Foundation
import XCTest

final class ContextTrainTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-cp-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// 4 steps of 2 micro-batches of 4 × 32 bytes.
    func run(_ out: String, _ extra: [String]) throws -> [Double] {
        let r = try Picotron.run(["train", "--steps", "4", "--mbs", "4", "--grad-acc", "2", "--seq-len", "32", "--sample", "0",
                                  "--out-dir", tmp.appendingPathComponent(out).path] + extra)
        XCTAssertEqual(r.status, 0, "\(extra.joined(separator: " ")):\n\(r.output)")
        return try String(contentsOf: tmp.appendingPathComponent("\(out)/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return (object["loss"] as! NSNumber).doubleValue
            }
    }

    // Tolerance: the same float32 terms in another order (attention merged block by block, the
    // gradient average over cp); 1e-5 relative. Without the cp average the first step is off by far more.
    func assertSame(_ a: [Double], _ b: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > 1e-5 * abs(y) {
            XCTFail("\(what): step \(i + 1) loss \(x), single process \(y)", file: file, line: line)
        }
    }

    func testEveryLayoutAttentionAndMixPrintsTheSingleProcessLosses() throws {
        let single = try run("single", [])
        for (name, flags) in [("zigzag ring", ["--cp", "2"]), ("contiguous", ["--cp", "2", "--cp-layout", "contiguous"]),
                              ("allgather", ["--cp", "2", "--cp-attention", "allgather"]), ("cp 4", ["--cp", "4"]),
                              ("cp 2 × dp 2", ["--cp", "2", "--dp", "2", "--mbs", "2"]), ("cp 2 × tp 2", ["--cp", "2", "--tp", "2"]),
                              ("cp 2 × pp 2", ["--cp", "2", "--pp", "2"])] {
            assertSame(try run(name.replacingOccurrences(of: " ", with: "-"), flags), single, name)
        }
    }

    func testAContextParallelCheckpointResumesUnderAnyCP() throws {
        let every2 = tmp.appendingPathComponent("every2.json")
        try Data(#"{"checkpoint": {"save_frequency": 2}}"#.utf8).write(to: every2)
        let full = try run("full", ["--cp", "2", "--config", every2.path])
        let step2 = tmp.appendingPathComponent("full/ckpt/step-000002").path
        for (name, layout) in [("one", [String]()), ("cp4", ["--cp", "4"])] {
            let resumed = try run("resumed-\(name)", layout + ["--config", every2.path, "--load-path", step2])
            assertSame(resumed, Array(full[2...]), "resumed \(name) from a cp 2 checkpoint")
        }
    }

    func testASequenceTheLayoutCannotSplitIsRefused() throws {
        let cases: [([String], String)] = [
            (["--cp", "4", "--seq-len", "20"], "not divisible by 2 × distributed.cp_size 4 = 8; context parallelism"),
            (["--cp", "4", "--seq-len", "18", "--cp-layout", "contiguous"], "not divisible by distributed.cp_size 4"),
            (["--cp", "2", "--cp-attention", "flash"], "distributed.cp_attention is \"flash\""),
        ]
        for (args, says) in cases {
            let r = try Picotron.run(["train", "--steps", "1", "--sample", "0", "--out-dir", tmp.appendingPathComponent("x").path] + args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.output.contains(says.components(separatedBy: ";")[0]), "\(args.joined(separator: " ")): should say \(says):\n\(r.output)")
            XCTAssertFalse(r.output.contains("[Step"), "refused before training:\n\(r.output)")
        }
    }
}
