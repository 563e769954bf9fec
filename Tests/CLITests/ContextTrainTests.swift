// `picotron train --cp` as a user runs it: both layouts and both attentions, and context
// parallelism mixed with data, tensor and pipeline parallelism, print the single-process losses;
// a checkpoint saved under cp 2 resumes under cp 4 and in one process with the same losses;
// a sequence length the layout cannot split is refused naming the nearest valid lengths.

import Foundation
import XCTest

final class ContextTrainTests: TrainRunTestCase {
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
        try assertRefused(cases.map { ($0.0, $0.1.components(separatedBy: ";")[0]) })
    }
}
