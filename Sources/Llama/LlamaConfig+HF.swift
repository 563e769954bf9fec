// LlamaConfig+HF.swift: a LlamaConfig read from and written to a Hugging Face `config.json`.
//
// Keys and defaults are transformers' `LlamaConfig` ones, so a config.json from the Hub loads as it is
// and what `save(to:)` writes loads back with `LlamaForCausalLM.from_pretrained`. Two spellings of the
// RoPE base are read: transformers 4.x `"rope_theta": 10000.0` and 5.x
// `"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}`.
//
// Everything a user can get wrong in the file is a thrown `ModelFileError` naming the file, the key,
// what was expected and what was found. The keys are read by Formats' `JSONKeyReader`; what is
// Llama's here is which keys exist, which are required, and which values this model cannot honour.
// Unknown keys are ignored: Hub configs carry dozens.
import Formats
import Foundation

// MARK: Reading config.json

extension LlamaConfig {
    /// Reads and validates a Hugging Face `config.json`; `url` may also be the model directory holding it.
    public static func load(from url: URL) throws -> LlamaConfig {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        let file = isDirectory.boolValue ? url.appendingPathComponent("config.json") : url
        guard exists, FileManager.default.fileExists(atPath: file.path) else {
            throw ModelFileError(.io, file: file.path, problem: "file does not exist",
                                 fix: "Pass a config.json or a model directory, or use a preset: "
                                     + presetNames.joined(separator: ", "))
        }
        guard let data = try? Data(contentsOf: file) else {
            throw ModelFileError(.io, file: file.path, problem: "cannot read it")
        }
        let bytes = [UInt8](data)
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch let error as JSONSyntaxError {
            let (line, column) = error.location(in: bytes)
            throw ModelFileError(.malformed, file: file.path,
                                 problem: "not valid JSON at line \(line), column \(column): " + error.message,
                                 fix: "Check the syntax")
        }
        return try LlamaConfig(json: json, source: file.path)
    }

    /// Builds a config from parsed JSON, checking each key's type and then the sizes together.
    init(json: JSONValue, source: String) throws {
        guard case .object = json else {
            throw ModelFileError(.malformed, file: source, problem: "the top level is \(json.summary), not an object")
        }
        do {
            try self.init(keys: JSONKeyReader(json), source: source)
        } catch let error as JSONKeyError {
            throw ModelFileError(.invalidConfig, file: source, problem: "key \"\(error.path)\": expected "
                                 + "\(error.expected), found \(error.found.summary)")
        }
        try validate(source: source)
    }

    /// The fields from the keys; a mistyped key throws `JSONKeyError`, a missing or unsupported one
    /// `ModelFileError`.
    private init(keys: JSONKeyReader, source: String) throws {
        if let type = try keys.read("model_type", as: String.self), type != "llama" {
            throw ModelFileError(.unsupported, file: source,
                                 problem: "model_type is \(quoted(type)), but only llama-style models are supported",
                                 fix: "Use a checkpoint whose config.json says \"model_type\": \"llama\"")
        }
        let hf = HFKeys(keys: keys, source: source)
        try hf.require("hidden_act", equal: .string("silu"), "only the SiLU (SwiGLU) MLP is implemented")
        try hf.require("attention_bias", equal: .bool(false), "the attention projections have no bias")
        try hf.require("mlp_bias", equal: .bool(false), "the MLP projections have no bias")
        try hf.rejectRopeScaling("rope_scaling")
        try hf.rejectRopeScaling("rope_parameters")
        let heads = try hf.required("num_attention_heads")
        let hidden = try hf.required("hidden_size")
        let headDim = try keys.read("head_dim", as: Int.self)
        if headDim == nil, heads > 0, hidden % heads != 0 {
            throw ModelFileError(.invalidConfig, file: source,
                                 problem: "key \"hidden_size\": \(hidden) is not divisible by num_attention_heads "
                                     + "\(heads), and head_dim is not given",
                                 fix: "Set \"head_dim\" or choose sizes that divide")
        }
        // The 5.x spelling wins: transformers 5 moves a top-level rope_theta into rope_parameters.
        let theta = try keys.object("rope_parameters")?.read("rope_theta", as: Double.self)
            ?? keys.read("rope_theta", as: Double.self)
        self.init(vocabSize: try hf.required("vocab_size"), hiddenSize: hidden,
                  intermediateSize: try hf.required("intermediate_size"),
                  numHiddenLayers: try hf.required("num_hidden_layers"), numAttentionHeads: heads,
                  numKeyValueHeads: try keys.read("num_key_value_heads"), headDim: headDim,
                  rmsNormEps: try keys.read("rms_norm_eps") ?? 1e-6, ropeTheta: theta ?? 10_000,
                  maxPositionEmbeddings: try keys.read("max_position_embeddings") ?? 2048,
                  tieWordEmbeddings: try keys.read("tie_word_embeddings") ?? false,
                  initializerRange: try keys.read("initializer_range") ?? 0.02)
    }

    /// Decodable through the same checks as `load(from:)`; errors become `DecodingError.dataCorrupted`.
    public init(from decoder: Decoder) throws {
        let json = try JSONValue(from: decoder)
        do {
            try self.init(json: json, source: "config.json")
        } catch let error as ModelFileError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: error.description))
        }
    }
}

/// What config.json asks of a Llama beyond key types: required sizes, and values it cannot honour.
private struct HFKeys {
    let keys: JSONKeyReader
    let source: String

    /// A size without a default in transformers.
    func required(_ key: String) throws -> Int {
        guard let i = try keys.read(key, as: Int.self) else {
            throw ModelFileError(.invalidConfig, file: source, problem: "missing required key \"\(key)\"",
                                 fix: "Add \"\(key)\" as an integer")
        }
        return i
    }

    /// A key this model has no choice about (activation, biases): other values are refused, not ignored,
    /// because silently ignoring them would load a different model than the file describes.
    func require(_ key: String, equal expected: JSONValue, _ why: String) throws {
        guard let v = keys.value(key), v != expected else { return }
        throw ModelFileError(.unsupported, file: source,
                             problem: "key \"\(key)\" is \(v.summary), but only \(expected.summary) "
                                 + "is supported: \(why)")
    }

    /// RoPE scaling (linear, dynamic, yarn, llama3, ...) changes the frequencies; only plain RoPE is built.
    func rejectRopeScaling(_ key: String) throws {
        guard let scaling = try keys.object(key, expected: "an object or null") else { return }
        let type = try scaling.read("rope_type", as: String.self) ?? scaling.read("type") ?? "default"
        guard type == "default" else {
            throw ModelFileError(.unsupported, file: source,
                                 problem: "key \"\(key)\" asks for rope scaling of type \(quoted(type)), "
                                     + "but rope scaling is not supported (only plain RoPE, rope_type \"default\")",
                                 fix: "Use a model without rope scaling")
        }
    }
}

// MARK: Writing config.json

extension LlamaConfig {
    /// Writes `directory/config.json` (creating the directory) in the form transformers writes, so
    /// `LlamaForCausalLM.from_pretrained(directory)` builds the same model. Written atomically.
    public func save(to directory: URL) throws {
        let file = directory.appendingPathComponent("config.json")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try (encoder.encode(self) + Data("\n".utf8)).write(to: file, options: .atomic)
        } catch {
            throw ModelFileError(.io, file: file.path, problem: "cannot write it (\(error.localizedDescription))",
                                 fix: "Check that the directory is writable")
        }
    }

    /// The transformers keys, including the constants of this architecture (no biases, SiLU, float32)
    /// that transformers would otherwise fill with its own defaults.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: JSONKey.self)
        try c.encode(["LlamaForCausalLM"], forKey: "architectures")
        try c.encode("llama", forKey: "model_type")
        try c.encode(vocabSize, forKey: "vocab_size")
        try c.encode(hiddenSize, forKey: "hidden_size")
        try c.encode(intermediateSize, forKey: "intermediate_size")
        try c.encode(numHiddenLayers, forKey: "num_hidden_layers")
        try c.encode(numAttentionHeads, forKey: "num_attention_heads")
        try c.encode(numKeyValueHeads, forKey: "num_key_value_heads")
        try c.encode(headDim, forKey: "head_dim")
        try c.encode(rmsNormEps, forKey: "rms_norm_eps")
        try c.encode(ropeTheta, forKey: "rope_theta")   // 4.x form; transformers 5 reads it too
        try c.encodeNil(forKey: "rope_scaling")
        try c.encode(maxPositionEmbeddings, forKey: "max_position_embeddings")
        try c.encode(tieWordEmbeddings, forKey: "tie_word_embeddings")
        try c.encode(initializerRange, forKey: "initializer_range")
        try c.encode("silu", forKey: "hidden_act")
        try c.encode(false, forKey: "attention_bias")
        try c.encode(0.0, forKey: "attention_dropout")
        try c.encode(false, forKey: "mlp_bias")
        try c.encode(1, forKey: "pretraining_tp")
        try c.encode(true, forKey: "use_cache")
        try c.encode("float32", forKey: "torch_dtype")   // transformers < 4.56
        try c.encode("float32", forKey: "dtype")         // transformers ≥ 4.56
    }
}
