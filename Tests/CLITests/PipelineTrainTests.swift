// `picotron train --pp` as a user runs it: every engine, and pipelines mixed with data and tensor
// parallelism, print the single-process losses; a checkpoint saved under pp 2 resumes in one
// process and under tp 2 with the uninterrupted losses; pipeline settings that cannot work are
// refused before anything runs.

import Foundation
import XCTest

final class PipelineTrainTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-pp-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// 4 steps of 2 micro-batches of 4 × 32 bytes (micro has 4 layers).
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

    // Tolerance: the stages add the same float32 terms in another order; 1e-5 relative, as the
    // other parallel runs. A loss not divided by the micro-batches is off by far more after one step.
    func assertSame(_ a: [Double], _ b: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > 1e-5 * abs(y) {
            XCTFail("\(what): step \(i + 1) loss \(x), single process \(y)", file: file, line: line)
        }
    }

    func testEveryEngineAndMixPrintsTheSingleProcessLosses() throws {
        let single = try run("single", [])
        for engine in ["afab", "1f1b", "interleaved"] {
            assertSame(try run("pp-\(engine)", ["--pp", "2", "--pp-engine", engine]), single, "pp 2 \(engine)")
        }
        assertSame(try run("dppp", ["--pp", "2", "--dp", "2", "--mbs", "2"]), single, "dp 2 × pp 2")
        assertSame(try run("tppp", ["--pp", "2", "--tp", "2"]), single, "tp 2 × pp 2")
    }

    func testAPipelineCheckpointResumesUnderAnyLayout() throws {
        let every2 = tmp.appendingPathComponent("every2.json")
        try Data(#"{"checkpoint": {"save_frequency": 2}}"#.utf8).write(to: every2)
        let full = try run("full", ["--pp", "2", "--config", every2.path])
        let step2 = tmp.appendingPathComponent("full/ckpt/step-000002").path
        for (name, layout) in [("one", [String]()), ("tp", ["--tp", "2"]), ("pp", ["--pp", "2", "--pp-engine", "afab"])] {
            let resumed = try run("resumed-\(name)", layout + ["--config", every2.path, "--load-path", step2])
            XCTAssertEqual(resumed, Array(full[2...]), "resumed \(name) from a pp 2 checkpoint")
        }
    }

    func testPipelineSettingsThatCannotWorkAreRefusedBeforeRunning() throws {
        let cases: [([String], String)] = [
            (["--pp", "5"], "num_hidden_layers 4 is fewer than distributed.pp_size 5"),
            (["--pp", "2", "--pp-engine", "gpipe"], "distributed.pp_engine is \"gpipe\""),
            (["--pp", "2", "--pp-engine", "interleaved", "--grad-acc", "3"], "not a multiple of distributed.pp_size 2"),
            (["--pp", "4", "--pp-engine", "interleaved", "--grad-acc", "4"], "8 chunks, but the model has 4 layers"),
        ]
        for (args, says) in cases {
            let r = try Picotron.run(["train", "--steps", "1", "--sample", "0", "--out-dir", tmp.appendingPathComponent("x").path] + args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.output.contains(says), "\(args.joined(separator: " ")): should say \(says):\n\(r.output)")
            XCTAssertFalse(r.output.contains("[Step"), "refused before training:\n\(r.output)")
        }
    }
}
