// `picotron train --pp` as a user runs it: every engine, and pipelines mixed with data and tensor
// parallelism, print the single-process losses; a checkpoint saved under pp 2 resumes in one
// process and under tp 2 with the uninterrupted losses, one saved under dp 2 × pp 2 × tp 2 under
// cp 2, tp 2 and one process; pipeline settings that cannot work are
// refused before anything runs.

import Foundation
import XCTest

final class PipelineTrainTests: TrainRunTestCase {
    func testEveryEngineAndMixPrintsTheSingleProcessLosses() throws {
        let single = try run("single", [])
        for engine in ["afab", "1f1b", "interleaved", "zb"] {
            assertSame(try run("pp-\(engine)", ["--pp", "2", "--pp-engine", engine]), single, "pp 2 \(engine)")
        }
        assertSame(try run("dppp", ["--pp", "2", "--dp", "2", "--mbs", "2"]), single, "dp 2 × pp 2")
        // zb puts weight gradients off: the bucketed all-reduce must still take whole gradients.
        assertSame(try run("dppp-zb", ["--pp", "2", "--dp", "2", "--mbs", "2", "--pp-engine", "zb"]), single, "dp 2 × pp 2 zb")
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

    /// A checkpoint of dp 2 × pp 2 × tp 2 (written one parameter at a time, each assembled over its
    /// tp group and sent from its stage to the main rank) resumes under cp 2, tp 2 and one process.
    func testA3DCheckpointResumesUnderCPTPAndOneProcess() throws {
        let every2 = tmp.appendingPathComponent("every2.json")
        try Data(#"{"checkpoint": {"save_frequency": 2}}"#.utf8).write(to: every2)
        let full = try run("full", ["--dp", "2", "--pp", "2", "--tp", "2", "--mbs", "2", "--config", every2.path])
        let step2 = tmp.appendingPathComponent("full/ckpt/step-000002").path
        for (name, layout) in [("one", [String]()), ("tp", ["--tp", "2"]), ("cp", ["--cp", "2"])] {
            let resumed = try run("resumed-\(name)", layout + ["--config", every2.path, "--load-path", step2])
            assertSame(resumed, Array(full[2...]), "\(name) resumed from a dp 2 × pp 2 × tp 2 checkpoint")
        }
    }

    func testPipelineSettingsThatCannotWorkAreRefusedBeforeRunning() throws {
        let cases: [([String], String)] = [
            (["--pp", "5"], "num_hidden_layers 4 is fewer than distributed.pp_size 5"),
            (["--pp", "2", "--pp-engine", "gpipe"], "distributed.pp_engine is \"gpipe\""),
            (["--pp", "2", "--pp-engine", "interleaved", "--grad-acc", "3"], "not a multiple of distributed.pp_size 2"),
            (["--pp", "4", "--pp-engine", "interleaved", "--grad-acc", "4"], "8 chunks, but the model has 4 layers"),
        ]
        try assertRefused(cases)
    }
}
