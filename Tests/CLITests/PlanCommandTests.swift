// `picotron plan` on picotron's own examples: the seed's 8-process CPU run (SmolLM-1.7B, 5 layers,
// dp 2 × tp 2 × pp 2) planned stage by stage, and its GPU example (Llama-2-7b, dp 4 × tp 2 × pp 2)
// refused by `plan` and by `train` before anything is allocated, with the numbers.

import Foundation
import XCTest

final class PlanCommandTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-plan-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// picotron's README, GPU section: `create_config.py --out_dir tmp --dp 4 --tp 2 --pp 2 --pp_engine 1f1b
    /// --exp_name llama-7B --model_name meta-llama/Llama-2-7b-hf --grad_acc_steps 32 --mbs 4 --seq_len 1024`.
    static let gpuExample = [
        "create-config", "--out_dir", "tmp", "--dp", "4", "--tp", "2", "--pp", "2", "--pp_engine", "1f1b",
        "--exp_name", "llama-7B", "--model_name", "meta-llama/Llama-2-7b-hf", "--grad_acc_steps", "32", "--mbs", "4",
        "--seq_len", "1024", "--hf_token", "x",
    ]

    func testTheSeedsCPURunIsPlannedStageByStage() throws {
        let made = try Picotron.run(CreateConfigCommandTests.seedCommand, in: tmp)
        XCTAssertEqual(made.status, 0, made.output)
        let run = try Picotron.run(["plan", "--config", "tmp/llama-1B-cpu/config.json"], in: tmp)
        XCTAssertFalse(run.crashed, run.output)
        // Stage 0: the embedding's tp half (49152 × 2048 / 2) and 3 layers' (67.1 M each / 2);
        // stage 1: 2 layers, the final norm and the tied head's copy.
        for expected in ["dp 2 × pp 2 (1f1b) × cp 1 × tp 2 = 8 ranks", "stage 0", "stage 1", "151.0 M", "117.5 M",
                         "AdamW moments", "8 ranks on this machine", "Predicted step", "pipeline bubble",
                         "tp traffic", "pp traffic", "tokens/s"] {
            XCTAssert(run.output.contains(expected), "\(expected) missing from:\n\(run.output)")
        }
        XCTAssertEqual(run.status, run.output.contains(": fits") ? 0 : 1, run.output)
    }

    func testTheSeedsGPUExampleIsRefusedBeforeAnythingIsAllocated() throws {
        let made = try Picotron.run(Self.gpuExample, in: tmp)
        XCTAssertEqual(made.status, 0, made.output)
        let plan = try Picotron.run(["plan", "--config", "tmp/llama-7B/config.json"], in: tmp)
        XCTAssertEqual(plan.status, 1, plan.output)
        XCTAssert(plan.output.contains("16 ranks on this machine"), plan.output)
        XCTAssert(plan.output.contains("does not fit"), plan.output)

        let train = try Picotron.run(["train", "--config", "tmp/llama-7B/config.json"], in: tmp)
        XCTAssertNotEqual(train.status, 0, train.output)
        XCTAssertFalse(train.crashed, train.output)
        for expected in ["GiB per rank on average over its 2 pipeline stages", "AdamW moments", "× 16 ranks on this machine",
                         "--force"] {
            XCTAssert(train.output.contains(expected), "\(expected) missing from:\n\(train.output)")
        }
        XCTAssertFalse(train.output.contains("parameters on this rank"), "refused before the model is built:\n\(train.output)")
    }
}
