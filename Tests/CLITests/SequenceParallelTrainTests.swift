// `picotron train --sequence-parallel` as a user runs it: with tensor parallelism alone and mixed with
// data, pipeline and context parallelism it prints the single-process losses (the pipeline then sends
// T/tp tokens of each sequence per rank); a sequence tp does not divide is refused before anything
// runs, and without tensor parallelism the flag is ignored with a note.

import Foundation
import XCTest

final class SequenceParallelTrainTests: TrainRunTestCase {
    func testSequenceParallelPrintsTheSingleProcessLosses() throws {
        let single = try run("single", [])
        assertSame(try run("tp", ["--tp", "2", "--sequence-parallel"]), single, "tp 2 sequence parallel")
        assertSame(try run("dptp", ["--tp", "2", "--dp", "2", "--mbs", "2", "--sequence-parallel"]), single,
                   "dp 2 × tp 2 sequence parallel")
        assertSame(try run("pptp", ["--tp", "2", "--pp", "2", "--sequence-parallel"]), single, "pp 2 × tp 2 sequence parallel")
        assertSame(try run("cptp", ["--tp", "2", "--cp", "2", "--sequence-parallel"]), single, "cp 2 × tp 2 sequence parallel")
    }

    func testSequenceParallelSettings() throws {
        try assertRefused([
            (["--tp", "2", "--sequence-parallel", "--seq-len", "33"],
             "training.seq_length 33 is not divisible by distributed.tp_size 2: sequence parallelism gives each "
                + "tensor-parallel rank 1/2 of the tokens between the blocks; use 32 or 34"),
            (["--tp", "2", "--cp", "2", "--cp-layout", "contiguous", "--sequence-parallel", "--seq-len", "34"],
             "training.seq_length 34 / distributed.cp_size 2 = 17 is not divisible by distributed.tp_size 2"),
        ])
        let r = try Picotron.run(["train", "--steps", "1", "--sample", "0", "--sequence-parallel",
                                  "--out-dir", tmp.appendingPathComponent("tp1").path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("ignored: it splits the sequence between tensor-parallel ranks, and tp_size is 1"),
                      r.output)
    }
}
