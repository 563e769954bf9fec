// `picotron train --zero 1` as a user runs it: ZeRO-1 over dp, and mixed with tensor, pipeline and
// context parallelism, prints the single-process losses; a ZeRO-1 checkpoint (whole moments,
// assembled from the slices) resumes without ZeRO, and a plain one under ZeRO-1, with the losses of
// the uninterrupted run; stages other than 0 and 1 are refused before anything runs, and ZeRO-1 on
// one rank says it changes nothing.

import Foundation
import XCTest

final class ZeroTrainTests: TrainRunTestCase {
    func testZeroOneOnEveryGridPrintsTheSingleProcessLosses() throws {
        let single = try run("single", [])
        for (name, grid) in [("dp", ["--dp", "2", "--mbs", "2"]), ("dptp", ["--dp", "2", "--tp", "2", "--mbs", "2"]),
                             ("dppp", ["--dp", "2", "--pp", "2", "--mbs", "2"]), ("cp", ["--cp", "2"]),
                             // with lesson 2's memory half too: ZeRO-1 and sequence parallelism together
                             ("dptpsp", ["--dp", "2", "--tp", "2", "--sequence-parallel", "--mbs", "2"])] {
            assertSame(try run("zero-\(name)", grid + ["--zero", "1"]), single, "\(grid.joined(separator: " ")) --zero 1")
        }
    }

    func testZeroCheckpointsResumeWithoutZeroAndTheOtherWayRound() throws {
        let every2 = tmp.appendingPathComponent("every2.json")
        try Data(#"{"checkpoint": {"save_frequency": 2}}"#.utf8).write(to: every2)
        let dp = ["--dp", "2", "--mbs", "2", "--config", every2.path]
        let zero = try run("zero", dp + ["--zero", "1"])
        let plain = try run("plain", dp)
        assertSame(zero, plain, "dp 2 with and without ZeRO-1")
        let fromZero = tmp.appendingPathComponent("zero/ckpt/step-000002").path
        let fromPlain = tmp.appendingPathComponent("plain/ckpt/step-000002").path
        assertSame(try run("zero-to-plain", dp + ["--load-path", fromZero]), Array(plain[2...]),
                   "dp 2 without ZeRO resumed from a ZeRO-1 checkpoint")
        assertSame(try run("zero-to-one", ["--config", every2.path, "--load-path", fromZero]), Array(plain[2...]),
                   "one process resumed from a ZeRO-1 checkpoint")
        assertSame(try run("plain-to-zero", dp + ["--zero", "1", "--load-path", fromPlain]), Array(zero[2...]),
                   "dp 2 with ZeRO-1 resumed from a plain checkpoint")
        assertSame(try run("zero-to-zerotp", dp + ["--zero", "1", "--tp", "2", "--load-path", fromZero]), Array(zero[2...]),
                   "dp 2 × tp 2 with ZeRO-1 resumed from a ZeRO-1 checkpoint")
    }

    func testZeroStagesBeyondOneAreRefusedAndOneRankIsNoted() throws {
        try assertRefused([(["--dp", "2", "--zero", "2"], "distributed.zero_stage is 2, but it must be 0 (no ZeRO) or 1")])
        let r = try Picotron.run(["train", "--steps", "1", "--mbs", "2", "--seq-len", "32", "--sample", "0", "--zero", "1",
                                  "--out-dir", tmp.appendingPathComponent("one").path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("note: distributed.zero_stage 1: dp_size × cp_size is 1"), r.output)
    }
}
