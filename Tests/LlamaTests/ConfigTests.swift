// LlamaConfig: Hugging Face config.json in both transformers 4.x and 5.x forms, defaults, presets,
// and one test per mistake a user can make in the file (each checks the message names file and key).
import Formats
import Foundation
import XCTest
@testable import Llama

final class ConfigTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// HuggingFaceTB/SmolLM-135M's config.json as published (transformers 4.x form).
    static let smolLM = """
    {"_name_or_path": "HuggingFaceTB/SmolLM-135M", "architectures": ["LlamaForCausalLM"], "attention_bias": false,
     "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu", "hidden_size": 576,
     "initializer_range": 0.02, "intermediate_size": 1536, "max_position_embeddings": 2048, "mlp_bias": false,
     "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
     "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
     "tie_word_embeddings": true, "torch_dtype": "float32", "transformers_version": "4.42.4", "use_cache": true,
     "vocab_size": 49152}
    """

    /// The smallest valid config: the five required sizes.
    static let minimal = #"""
    {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4
    """#

    func load(_ json: String, name: String = "config.json") throws -> LlamaConfig {
        let url = dir.appendingPathComponent(name)
        try Data(json.utf8).write(to: url)
        return try LlamaConfig.load(from: url)
    }

    /// `minimal` plus extra keys, e.g. `with(#""head_dim": 16"#)`.
    func with(_ extra: String) -> String { Self.minimal + (extra.isEmpty ? "}" : ", \(extra)}") }

    /// `minimal` with one of its own keys set to `value` (raw JSON), or removed when `value` is nil.
    func setting(_ key: String, _ value: String?) -> String {
        let pattern = "\"\(key)\": [0-9]+"
        let range = Self.minimal.range(of: pattern, options: .regularExpression)!
        return Self.minimal.replacingCharacters(in: range, with: value.map { "\"\(key)\": \($0)" } ?? "\"_\": 0") + "}"
    }

    func expectError(_ kind: ModelFileError.Kind, _ json: String, _ mentions: [String], line: UInt = #line) {
        let path = dir.appendingPathComponent("config.json").path
        assertModelFileError(kind, file: path, mentions: mentions, { try load(json) }, line: line)
    }

    // MARK: Reading

    func testSmolLMConfigTransformers4Form() throws {
        let c = try load(Self.smolLM)
        XCTAssertEqual(c, LlamaConfig.smollm135m)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.maxPositionEmbeddings, 2048)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.kvGroups, 3)
        XCTAssertEqual(c.qDim, 576)
        XCTAssertEqual(c.kvDim, 192)
        XCTAssertEqual(c.parameterCount, 134_515_008)   // the published size of SmolLM-135M
    }

    func testTransformers5RopeParametersForm() throws {
        let c = try load(with(#""rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}, "dtype": "f32""#))
        XCTAssertEqual(c.ropeTheta, 500_000)
        // The 5.x spelling wins over a stale top-level key, as transformers 5 itself does.
        let both = try load(with(#""rope_theta": 10000.0, "rope_parameters": {"rope_theta": 20000}"#))
        XCTAssertEqual(both.ropeTheta, 20_000)
    }

    func testDefaults() throws {
        let c = try load(with(""))
        XCTAssertEqual(c.numKeyValueHeads, 4, "num_key_value_heads defaults to num_attention_heads")
        XCTAssertEqual(c.headDim, 8, "head_dim defaults to hidden_size / num_attention_heads")
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.maxPositionEmbeddings, 2048)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(c.initializerRange, 0.02)
        XCTAssertEqual(c.kvGroups, 1)
        let nulls = try load(with(#""num_key_value_heads": null, "head_dim": null, "rope_scaling": null"#))
        XCTAssertEqual(nulls, c, "null means default, as in transformers")
    }

    func testHeadDimMayDifferFromHiddenOverHeads() throws {
        let c = try load(with(#""head_dim": 16, "num_key_value_heads": 2"#))
        XCTAssertEqual(c.headDim, 16)
        XCTAssertEqual(c.qDim, 64)
        XCTAssertEqual(c.kvDim, 32)
        XCTAssertEqual(c.kvGroups, 2)
        // hidden_size need not divide by the heads when head_dim is explicit.
        XCTAssertEqual(try load(String(setting("hidden_size", "30").dropLast()) + #", "head_dim": 8}"#).qDim, 32)
    }

    func testUnknownKeysAreIgnoredAndDirectoriesAccepted() throws {
        let c = try load(with(#""transformers.js_config": {"kv_cache_dtype": {"fp16": "float16"}}, "pad_token_id": 0"#))
        XCTAssertEqual(c.vocabSize, 96)
        XCTAssertEqual(try LlamaConfig.load(from: dir), c, "a model directory means its config.json")
    }

    /// The config transformers 5 wrote for the parity fixtures.
    func testFixtureConfigsFromTransformers() throws {
        guard let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            return XCTFail("the Fixtures directory is missing; generate it with scripts/make_fixtures.py")
        }
        let tied = try LlamaConfig.load(from: fixtures.appendingPathComponent("tied/config.json"))
        XCTAssertEqual(tied.vocabSize, 96)
        XCTAssertTrue(tied.tieWordEmbeddings)
        XCTAssertEqual(tied.ropeTheta, 10_000)
        XCTAssertEqual(tied.headDim, 8)
        XCTAssertEqual(tied.numKeyValueHeads, 2)
        XCTAssertEqual(tied.rmsNormEps, 1e-5)
        let untied = try LlamaConfig.load(from: fixtures.appendingPathComponent("untied"))
        XCTAssertFalse(untied.tieWordEmbeddings)
    }

    // MARK: Mistakes in the file

    func testMissingFileAndNotJSON() throws {
        let missing = dir.appendingPathComponent("missing.json")
        assertModelFileError(.io, file: missing.path, mentions: ["does not exist", "micro, tiny, smollm135m"]) {
            try LlamaConfig.load(from: missing)
        }
        expectError(.malformed, "{\"vocab_size\": ", ["not valid JSON"])
        expectError(.malformed, "[1, 2]", ["the top level is an array of 2 values", "not an object"])
    }

    func testMissingRequiredKeys() throws {
        for key in ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"] {
            expectError(.invalidConfig, setting(key, nil), ["missing required key \"\(key)\"", "Add"])
        }
    }

    func testWrongTypesNameTheKeyPath() throws {
        expectError(.invalidConfig, setting("hidden_size", "\"32\""),
                    ["key \"hidden_size\"", "expected an integer", "the string \"32\""])
        expectError(.invalidConfig, with(#""num_key_value_heads": 1.5"#), ["\"num_key_value_heads\"", "the number 1.5"])
        expectError(.invalidConfig, with(#""rms_norm_eps": "1e-5""#), ["\"rms_norm_eps\"", "expected a number"])
        expectError(.invalidConfig, with(#""tie_word_embeddings": 1"#), ["\"tie_word_embeddings\"", "true or false"])
        expectError(.invalidConfig, with(#""rope_parameters": {"rope_theta": "big"}"#),
                    ["key \"rope_parameters.rope_theta\"", "expected a number", "the string \"big\""])
        expectError(.invalidConfig, with(#""rope_parameters": 5"#), ["\"rope_parameters\"", "an object or null"])
        expectError(.invalidConfig, with(#""model_type": 7"#), ["\"model_type\"", "expected a string"])
    }

    func testNonPositiveSizesAndIndivisibleHeads() throws {
        expectError(.invalidConfig, setting("num_hidden_layers", "0"),
                    ["key \"num_hidden_layers\"", "must be a positive integer, got 0"])
        expectError(.invalidConfig, setting("vocab_size", "-3"), ["\"vocab_size\"", "positive", "-3"])
        expectError(.invalidConfig, with(#""rms_norm_eps": 0"#), ["\"rms_norm_eps\"", "positive number"])
        expectError(.invalidConfig, with(#""max_position_embeddings": 0"#), ["\"max_position_embeddings\""])
        expectError(.invalidConfig, setting("hidden_size", "30"),
                    ["30 is not divisible by num_attention_heads 4", "head_dim"])
        expectError(.invalidConfig, with(#""num_key_value_heads": 3"#),
                    ["num_attention_heads 4 is not divisible by num_key_value_heads 3", "1, 2, 4"])
    }

    func testUnsupportedModelsAndRopeScaling() throws {
        expectError(.unsupported, with(#""model_type": "mistral""#), ["\"mistral\"", "only llama-style models"])
        expectError(.unsupported, with(#""rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#),
                    ["\"llama3\"", "rope scaling is not supported"])
        expectError(.unsupported, with(#""rope_scaling": {"type": "linear", "factor": 2.0}"#), ["\"linear\""])
        expectError(.unsupported, with(#""rope_parameters": {"rope_type": "yarn", "rope_theta": 10000}"#),
                    ["\"rope_parameters\"", "\"yarn\"", "not supported"])
        expectError(.unsupported, with(#""hidden_act": "gelu""#), ["\"hidden_act\"", "\"gelu\"", "\"silu\""])
        expectError(.unsupported, with(#""attention_bias": true"#), ["\"attention_bias\"", "no bias"])
        expectError(.unsupported, with(#""mlp_bias": true"#), ["\"mlp_bias\""])
    }

    // MARK: Writing, Codable, presets

    func testSaveWritesWhatTransformersReadsAndLoadsBack() throws {
        let out = dir.appendingPathComponent("model")
        for preset in [LlamaConfig.micro, .tiny, .smollm135m] {
            try preset.save(to: out)
            XCTAssertEqual(try LlamaConfig.load(from: out), preset)
        }
        let object = try JSONSerialization.jsonObject(
            with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any]
        XCTAssertEqual(object?["architectures"] as? [String], ["LlamaForCausalLM"])
        XCTAssertEqual(object?["model_type"] as? String, "llama")
        XCTAssertEqual(object?["hidden_act"] as? String, "silu")
        XCTAssertEqual(object?["torch_dtype"] as? String, "float32")
        XCTAssertEqual(object?["dtype"] as? String, "float32")
        XCTAssertEqual(object?["attention_bias"] as? Bool, false)
        XCTAssertEqual(object?["mlp_bias"] as? Bool, false)
        XCTAssertEqual(object?["rope_theta"] as? Double, 10_000)
        XCTAssertEqual(object?["head_dim"] as? Int, 64)
        XCTAssertEqual(object?["tie_word_embeddings"] as? Bool, true)
        XCTAssertTrue(object?["rope_scaling"] is NSNull)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["config.json"])
    }

    func testCodableRoundTripAndDecodingErrors() throws {
        let data = try JSONEncoder().encode(LlamaConfig.tiny)
        XCTAssertEqual(try JSONDecoder().decode(LlamaConfig.self, from: data), .tiny)
        XCTAssertEqual(try JSONDecoder().decode(LlamaConfig.self, from: Data(Self.smolLM.utf8)), .smollm135m)
        let gpt2 = Data(with(#""model_type": "gpt2""#).utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(LlamaConfig.self, from: gpt2)) {
            guard case DecodingError.dataCorrupted(let context) = $0 else { return XCTFail("got \($0)") }
            XCTAssertTrue(context.debugDescription.contains("\"gpt2\""), context.debugDescription)
        }
    }

    func testPresets() throws {
        XCTAssertEqual(LlamaConfig.presetNames, ["micro", "tiny", "smollm135m"])
        XCTAssertEqual(LlamaConfig.preset(named: "SmolLM-135M"), .smollm135m)
        XCTAssertEqual(LlamaConfig.preset(named: "tiny"), .tiny)
        XCTAssertNil(LlamaConfig.preset(named: "llama-70b"))
        for (name, c) in LlamaConfig.presets {
            XCTAssertNoThrow(try c.validate(source: name), name)
        }
        let micro = LlamaConfig.micro
        XCTAssertEqual([micro.vocabSize, micro.hiddenSize, micro.intermediateSize, micro.numHiddenLayers,
                        micro.numAttentionHeads, micro.numKeyValueHeads, micro.maxPositionEmbeddings],
                       [256, 128, 344, 4, 4, 2, 512])
        XCTAssertFalse(micro.tieWordEmbeddings)
        let tiny = LlamaConfig.tiny
        XCTAssertEqual([tiny.vocabSize, tiny.hiddenSize, tiny.intermediateSize, tiny.numHiddenLayers,
                        tiny.numAttentionHeads, tiny.numKeyValueHeads, tiny.maxPositionEmbeddings],
                       [4096, 256, 688, 8, 8, 4, 1024])
        XCTAssertFalse(tiny.tieWordEmbeddings)
        XCTAssertEqual(micro.parameterCount, 791_680)   // as counted by transformers for a saved micro model
        XCTAssertEqual(tiny.parameterCount, 7_901_440)
        assertModelFileError(.invalidConfig, file: "code", mentions: ["\"num_key_value_heads\""]) {
            try LlamaConfig(vocabSize: 8, hiddenSize: 8, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2,
                            numKeyValueHeads: 3).validate(source: "code")
        }
    }
}
