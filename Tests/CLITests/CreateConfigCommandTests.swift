// `picotron create-config` as picotron's README runs it: the seed's command line, Hub id and all, is accepted
// as written and writes the published architecture; a Hub id outside the table is refused with the table's
// models and the local-directory way out.

import Foundation
import XCTest

final class CreateConfigCommandTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-create-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// picotron's README: `create_config.py --out_dir tmp --exp_name llama-1B-cpu --dp 2 --tp 2 --pp 2 ...`.
    static let seedCommand = [
        "create-config", "--out_dir", "tmp", "--exp_name", "llama-1B-cpu", "--dp", "2", "--tp", "2", "--pp", "2",
        "--pp_engine", "1f1b", "--model_name", "HuggingFaceTB/SmolLM-1.7B", "--num_hidden_layers", "5",
        "--grad_acc_steps", "2", "--mbs", "4", "--seq_len", "128", "--hf_token", "x", "--use_cpu",
    ]

    func testTheSeedsCommandWorksAsWritten() throws {
        let run = try Picotron.run(Self.seedCommand, in: tmp)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssert(run.output.contains("tmp/llama-1B-cpu/config.json"), run.output)
        XCTAssert(run.output.contains("dp 2 × pp 2 (1f1b) × cp 1 × tp 2 = 8 ranks"), run.output)
        XCTAssert(run.output.contains("HuggingFaceTB/SmolLM-1.7B); nothing is downloaded"), run.output)
        XCTAssert(run.output.contains("HF_TOKEN is set: not used, nothing is downloaded"), run.output)
        XCTAssertFalse(run.output.contains(": x"), "the token is never printed:\n\(run.output)")

        let file = tmp.appendingPathComponent("tmp/llama-1B-cpu/config.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: [String: Any]]
        let model = json["model"]!
        XCTAssertEqual(model["name"] as? String, "HuggingFaceTB/SmolLM-1.7B")
        // SmolLM-1.7B has 32 heads and 32 kv heads; the layer count is the command's override.
        XCTAssertEqual(model["num_hidden_layers"] as? Int, 5)
        XCTAssertEqual(model["num_attention_heads"] as? Int, 32)
        XCTAssertEqual(model["num_key_value_heads"] as? Int, 32)
        XCTAssertEqual(json["distributed"]?["pp_engine"] as? String, "1f1b")
        XCTAssertEqual(json["training"]?["seq_length"] as? Int, 128)
    }

    func testAnUnknownHubIdIsRefusedNamingTheTableAndTheLocalDirectory() throws {
        let run = try Picotron.run(["create-config", "--out_dir", "tmp", "--exp_name", "x",
                                    "--model_name", "mistralai/Mistral-7B-v0.1"], in: tmp)
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertFalse(run.crashed, run.output)
        for expected in ["mistralai/Mistral-7B-v0.1", "HuggingFaceTB/SmolLM-1.7B", "meta-llama/Llama-3.2-1B",
                         "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "local directory"] {
            XCTAssert(run.output.contains(expected), "\(expected) missing from:\n\(run.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("tmp/x").path))
    }
}
