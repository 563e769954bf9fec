// What the parallel `picotron train` tests share: a scratch folder, a short run whose losses are
// read back from its metrics, and the comparison with the single process.

import Foundation
import XCTest

class TrainRunTestCase: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-\(type(of: self))-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// 4 steps of 2 micro-batches of 4 × 32 bytes into `out`; the losses it wrote.
    func run(_ out: String, _ extra: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [Double] {
        let r = try Picotron.run(["train", "--steps", "4", "--mbs", "4", "--grad-acc", "2", "--seq-len", "32", "--sample", "0",
                                  "--out-dir", tmp.appendingPathComponent(out).path] + extra)
        XCTAssertEqual(r.status, 0, "\(extra.joined(separator: " ")):\n\(r.output)", file: file, line: line)
        return try losses(out)
    }

    /// The losses a run into `out` wrote to its metrics, step by step.
    func losses(_ out: String) throws -> [Double] {
        try String(contentsOf: tmp.appendingPathComponent("\(out)/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return (object["loss"] as! NSNumber).doubleValue
            }
    }

    // Tolerance: the ranks add the same float32 terms in another order; 1e-5 relative, as every
    // parallel run. A missing average or an unscaled loss is off by far more after one step.
    func assertSame(_ a: [Double], _ b: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > 1e-5 * abs(y) {
            XCTFail("\(what): step \(i + 1) loss \(x), single process \(y)", file: file, line: line)
        }
    }

    /// Runs each `(arguments, message)` and checks it is refused before training, saying `message`.
    func assertRefused(_ cases: [([String], String)], file: StaticString = #filePath, line: UInt = #line) throws {
        for (args, says) in cases {
            let r = try Picotron.run(["train", "--steps", "1", "--sample", "0", "--out-dir", tmp.appendingPathComponent("x").path] + args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "), file: file, line: line)
            XCTAssertTrue(r.output.contains(says), "\(args.joined(separator: " ")): should say \(says):\n\(r.output)", file: file, line: line)
            XCTAssertFalse(r.output.contains("[Step"), "refused before training:\n\(r.output)", file: file, line: line)
        }
    }
}
