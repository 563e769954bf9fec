// `picotron bench` on a grid: tokens/s, an MFU never above 100%, and where each rank's time goes,
// measured by the communication ledger (the tp all-reduces of a tp grid, the pipeline's waits).

import Foundation
import XCTest

final class BenchGridTests: XCTestCase {
    func testAGridReportsEachRanksTimeByGroup() throws {
        let r = try Picotron.run(["bench", "--preset", "tiny", "--dp", "2", "--tp", "2", "--steps", "2", "--batch", "2",
                                  "--seq-len", "32", "--json"])
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.output.split(separator: "\n").last { $0.hasPrefix("{") }, r.output)
        let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        XCTAssertEqual(o["ranks"] as? Int, 4)
        XCTAssertEqual(o["tokens_per_step"] as? Int, 2 * 2 * 32 * 2, "mbs × grad-acc × seq × dp")
        XCTAssertGreaterThan(o["tokens_per_second"] as! Double, 0)
        let mfu = o["mfu"] as! Double
        XCTAssert(mfu > 0 && mfu <= 1, "MFU \(mfu)")
        let ranks = o["ranks_time"] as! [[String: Double]]
        XCTAssertEqual(ranks.count, 4)
        for (i, rank) in ranks.enumerated() {
            XCTAssertGreaterThan(rank["tp"]!, 0, "rank \(i) waits in its tp all-reduces")
            XCTAssertEqual(rank["pp"], 0, "no pipeline")
            let waits = ["tp", "cp", "pp", "dp", "cp+dp", "world"].reduce(0) { $0 + rank[$1]! }
            XCTAssertLessThan(waits, rank["seconds"]!, "rank \(i): its waits are part of its steps")
        }
    }

    /// Sizes the grid cannot cut are refused before any rank starts, with the fix.
    func testAGridTheModelCannotTakeIsRefusedWithTheFix() throws {
        for (args, says) in [(["--pp", "16"], "fewer than distributed.pp_size 16"),
                             (["--tp", "3"], "choose tp_size among 1, 2, 4, 8"),
                             (["--dp", "2", "--profile"], "--profile times the ops of one process"),
                             (["--pp", "2", "--pp-engine", "interleaved", "--virtual-stages", "5"],
                              "use pp_virtual_stages 4 or less"),
                             (["--pp", "2", "--pp-engine", "interleaved", "--virtual-stages", "0"],
                              "each stage holds at least one chunk of layers; use 1 to 4")] {
            let r = try Picotron.run(["bench", "--preset", "tiny", "--steps", "1"] + args)
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertFalse(r.crashed, r.output)
            XCTAssert(r.output.contains(says), "\(args): should say \(says):\n\(r.output)")
        }
    }

    func testAPipelineShowsItsBubbleInTheTable() throws {
        let r = try Picotron.run(["bench", "--preset", "tiny", "--pp", "2", "--steps", "2", "--batch", "2", "--seq-len", "32"])
        XCTAssertEqual(r.status, 0, r.output)
        for expected in ["dp 1 × pp 2 (1f1b) × cp 1 × tp 1 = 2 ranks", "2 timed steps after a warm-up", "tokens/s",
                         "where each rank's time goes", "compute", "pp send/recv (bubble)"] {
            XCTAssert(r.output.contains(expected), "\(expected) missing from:\n\(r.output)")
        }
    }

    /// `--virtual-stages` reaches the interleaved schedule: the header names it, the JSON carries it.
    func testTheInterleavedScheduleTakesItsChunksPerStage() throws {
        let r = try Picotron.run(["bench", "--preset", "tiny", "--pp", "2", "--pp-engine", "interleaved", "--virtual-stages", "4",
                                  "--steps", "1", "--batch", "2", "--seq-len", "32"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("pp 2 (interleaved, v 4)"), r.output)
        let json = try Picotron.run(["bench", "--preset", "tiny", "--pp", "2", "--pp-engine", "interleaved", "--virtual-stages", "4",
                                     "--steps", "1", "--batch", "2", "--seq-len", "32", "--json"])
        XCTAssert(json.output.contains("\"virtual_stages\":4"), json.output)
    }
}

final class BenchProfileTests: XCTestCase {
    /// `--profile`: every op of the step with its calls, forward and backward time, and the shares
    /// adding up to the whole step.
    func testTheProfileListsTheOpsOfAStepAndAddsUp() throws {
        let r = try Picotron.run(["bench", "--preset", "tiny", "--profile", "--steps", "2", "--batch", "1", "--seq-len", "32"])
        XCTAssertEqual(r.status, 0, r.output)
        let rows = r.output.split(separator: "\n").map(String.init)
        for op in ["matmul", "attention", "swiglu", "rmsNorm", "crossEntropy", "rope", "embedding", "AdamW step"] {
            XCTAssert(rows.contains { $0.hasPrefix("  \(op) ") }, "\(op) missing from:\n\(r.output)")
        }
        // tiny: 8 layers × 7 matrices + the head = 57 matmuls a step.
        XCTAssert(rows.contains { $0.hasPrefix("  matmul ") && $0.split(separator: " ").dropFirst().first == "57" }, r.output)
        let shares = rows.compactMap { row -> Double? in
            guard row.hasSuffix("%"), let last = row.split(separator: " ").last else { return nil }
            return Double(last.dropLast())
        }
        XCTAssertEqual(shares.reduce(0, +), 100, accuracy: 1.5, "the shares add up to the step:\n\(r.output)")
    }
}
