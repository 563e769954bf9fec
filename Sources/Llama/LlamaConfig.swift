// LlamaConfig.swift: the model's hyperparameters, read from and written to a Hugging Face `config.json`.
//
// Keys and defaults are transformers' `LlamaConfig` ones, so a config.json from the Hub loads as it is
// and what `save(to:)` writes loads back with `LlamaForCausalLM.from_pretrained`. Two spellings of the
// RoPE base are read: transformers 4.x `"rope_theta": 10000.0` and 5.x
// `"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}`.
//
// Everything a user can get wrong in the file is a thrown `ModelFileError` naming the file, the key,
// what was expected and what was found. Unknown keys are ignored: Hub configs carry dozens.
import Formats
import Foundation

public struct LlamaConfig: Codable, Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    /// Width of the SwiGLU MLP (gate and up projections).
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    /// Key/value heads for grouped-query attention; equal to `numAttentionHeads` for plain multi-head.
    public var numKeyValueHeads: Int
    /// Per-head width; usually `hiddenSize / numAttentionHeads`, but configs may set it apart.
    public var headDim: Int
    public var rmsNormEps: Double
    /// The RoPE base θ: frequencies are θ^(-2i/headDim).
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    /// When true the LM head reuses the embedding matrix and the file has no `lm_head.weight`.
    public var tieWordEmbeddings: Bool
    /// Standard deviation of the normal initialisation of linear and embedding weights.
    public var initializerRange: Double

    /// A config in code (presets, tests). Defaults are transformers'; call `validate()` before trusting it.
    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int? = nil, headDim: Int? = nil,
                rmsNormEps: Double = 1e-6, ropeTheta: Double = 10_000, maxPositionEmbeddings: Int = 2048,
                tieWordEmbeddings: Bool = false, initializerRange: Double = 0.02) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.initializerRange = initializerRange
    }

    // MARK: Derived sizes

    /// Query heads per key/value head (each k/v head is shared by this many query heads).
    public var kvGroups: Int { numAttentionHeads / numKeyValueHeads }
    /// Output width of `q_proj` (and input width of `o_proj`).
    public var qDim: Int { numAttentionHeads * headDim }
    /// Output width of `k_proj` and `v_proj`.
    public var kvDim: Int { numKeyValueHeads * headDim }

    /// Number of parameters, counting a tied embedding once (SmolLM-135M: 134,515,008).
    public var parameterCount: Int {
        let attention = hiddenSize * qDim + 2 * hiddenSize * kvDim + qDim * hiddenSize
        let perLayer = attention + 3 * hiddenSize * intermediateSize + 2 * hiddenSize   // + two RMSNorms
        let embeddings = vocabSize * hiddenSize * (tieWordEmbeddings ? 1 : 2)
        return embeddings + numHiddenLayers * perLayer + hiddenSize
    }

    // MARK: Presets

    /// Byte-level quick demos: 256 tokens, 4 layers, 791,680 parameters.
    public static let micro = LlamaConfig(
        vocabSize: 256, hiddenSize: 128, intermediateSize: 344, numHiddenLayers: 4, numAttentionHeads: 4,
        numKeyValueHeads: 2, rmsNormEps: 1e-5, maxPositionEmbeddings: 512)
    /// A small model for real text with a 4096-token vocabulary (7,901,440 parameters).
    public static let tiny = LlamaConfig(
        vocabSize: 4096, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 8, numAttentionHeads: 8,
        numKeyValueHeads: 4, rmsNormEps: 1e-5, maxPositionEmbeddings: 1024)
    /// HuggingFaceTB/SmolLM-135M, the model picotron's examples train.
    public static let smollm135m = LlamaConfig(
        vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
        numKeyValueHeads: 3, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 2048,
        tieWordEmbeddings: true)

    /// The presets by name, smallest first.
    public static let presets: [(name: String, config: LlamaConfig)] =
        [("micro", micro), ("tiny", tiny), ("smollm135m", smollm135m)]
    public static var presetNames: [String] { presets.map(\.name) }

    /// A preset by name; case, "-" and "_" are ignored, so "SmolLM-135M" finds `smollm135m`.
    public static func preset(named name: String) -> LlamaConfig? {
        let key = name.lowercased().filter { $0 != "-" && $0 != "_" }
        return presets.first { $0.name == key }?.config
    }
}

// MARK: Validation

extension LlamaConfig {
    /// Checks the sizes fit together; `source` names where the config came from in the error.
    public func validate(source: String = "LlamaConfig") throws {
        func bad(_ key: String, _ problem: String, _ fix: String? = nil) -> ModelFileError {
            ModelFileError(.invalidConfig, file: source, problem: "key \"\(key)\": \(problem)", fix: fix)
        }
        let sizes: [(String, Int)] = [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim),
            ("max_position_embeddings", maxPositionEmbeddings),
        ]
        for (key, value) in sizes where value <= 0 {
            throw bad(key, "must be a positive integer, got \(value)")
        }
        try checkLimits(source: source)   // before any arithmetic on the sizes
        for (key, value) in [("rms_norm_eps", rmsNormEps), ("rope_theta", ropeTheta)]
        where !(value > 0 && value.isFinite) {
            throw bad(key, "must be a positive number, got \(value)")
        }
        guard initializerRange >= 0, initializerRange.isFinite else {
            throw bad("initializer_range", "must be a non-negative number, got \(initializerRange)")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw bad("num_key_value_heads", "num_attention_heads \(numAttentionHeads) is not divisible by "
                      + "num_key_value_heads \(numKeyValueHeads), so query heads cannot share key/value heads evenly",
                      "Choose num_key_value_heads among "
                        + divisorList(of: numAttentionHeads, near: numKeyValueHeads))
        }
        guard headDim % 2 == 0 else {
            throw bad("head_dim", "is \(headDim), but RoPE rotates pairs of channels and needs it even")
        }
    }
}

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
            throw ModelFileError(.malformed, file: file.path, problem: "not valid JSON at line \(line), column \(column): "
                                 + error.message, fix: "Check the syntax")
        }
        return try LlamaConfig(json: json, source: file.path)
    }

    /// Builds a config from parsed JSON, checking each key's type and then the sizes together.
    init(json: JSONValue, source: String) throws {
        guard let object = json.objectValue else {
            throw ModelFileError(.malformed, file: source, problem: "the top level is \(json.summary), not an object")
        }
        let keys = ConfigKeys(object: object, source: source)
        if let type = try keys.string("model_type"), type != "llama" {
            throw ModelFileError(.unsupported, file: source,
                                 problem: "model_type is \(quoted(type)), but only llama-style models are supported",
                                 fix: "Use a checkpoint whose config.json says \"model_type\": \"llama\"")
        }
        try keys.requireUnsupported("hidden_act", equal: .string("silu"), "only the SiLU (SwiGLU) MLP is implemented")
        try keys.requireUnsupported("attention_bias", equal: .bool(false), "the attention projections have no bias")
        try keys.requireUnsupported("mlp_bias", equal: .bool(false), "the MLP projections have no bias")
        try keys.rejectRopeScaling("rope_scaling")
        try keys.rejectRopeScaling("rope_parameters")
        let heads = try keys.required("num_attention_heads")
        let hidden = try keys.required("hidden_size")
        let headDim = try keys.int("head_dim")
        if headDim == nil, heads > 0, hidden % heads != 0 {
            throw ModelFileError(.invalidConfig, file: source,
                                 problem: "key \"hidden_size\": \(hidden) is not divisible by num_attention_heads "
                                     + "\(heads), and head_dim is not given",
                                 fix: "Set \"head_dim\" or choose sizes that divide")
        }
        // The 5.x spelling wins: transformers 5 moves a top-level rope_theta into rope_parameters.
        let theta = try keys.double("rope_theta", in: "rope_parameters") ?? keys.double("rope_theta")
        self.init(vocabSize: try keys.required("vocab_size"), hiddenSize: hidden,
                  intermediateSize: try keys.required("intermediate_size"),
                  numHiddenLayers: try keys.required("num_hidden_layers"), numAttentionHeads: heads,
                  numKeyValueHeads: try keys.int("num_key_value_heads"), headDim: headDim,
                  rmsNormEps: try keys.double("rms_norm_eps") ?? 1e-6, ropeTheta: theta ?? 10_000,
                  maxPositionEmbeddings: try keys.int("max_position_embeddings") ?? 2048,
                  tieWordEmbeddings: try keys.bool("tie_word_embeddings") ?? false,
                  initializerRange: try keys.double("initializer_range") ?? 0.02)
        try validate(source: source)
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

/// A coding key spelled as a string literal, for the many snake_case keys of config.json.
struct JSONKey: CodingKey, ExpressibleByStringLiteral {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init(stringLiteral value: String) { stringValue = value }
    init?(intValue: Int) { nil }
}

/// Typed access to the keys of a config.json object. Absent and `null` both mean "use the default";
/// a present value of the wrong JSON type is an error naming the key path, the expected and the found.
struct ConfigKeys {
    let object: [String: JSONValue]
    let source: String

    func value(_ key: String, in parent: String? = nil) throws -> (path: String, value: JSONValue)? {
        guard let parent else { return object[key].flatMap { $0 == .null ? nil : (key, $0) } }
        guard let outer = object[parent], outer != .null else { return nil }
        guard let inner = outer.objectValue else { throw mistyped(parent, "an object", outer) }
        return inner[key].flatMap { $0 == .null ? nil : ("\(parent).\(key)", $0) }
    }

    func int(_ key: String) throws -> Int? {
        guard let (path, v) = try value(key) else { return nil }
        guard let i = v.intValue else { throw mistyped(path, "an integer", v) }
        return i
    }

    func required(_ key: String) throws -> Int {
        guard let i = try int(key) else {
            throw ModelFileError(.invalidConfig, file: source, problem: "missing required key \"\(key)\"",
                                 fix: "Add \"\(key)\" as an integer")
        }
        return i
    }

    func double(_ key: String, in parent: String? = nil) throws -> Double? {
        guard let (path, v) = try value(key, in: parent) else { return nil }
        guard let d = v.doubleValue else { throw mistyped(path, "a number", v) }
        return d
    }

    func bool(_ key: String) throws -> Bool? {
        guard let (path, v) = try value(key) else { return nil }
        guard case .bool(let b) = v else { throw mistyped(path, "true or false", v) }
        return b
    }

    func string(_ key: String, in parent: String? = nil) throws -> String? {
        guard let (path, v) = try value(key, in: parent) else { return nil }
        guard let s = v.stringValue else { throw mistyped(path, "a string", v) }
        return s
    }

    /// A key this model has no choice about (activation, biases): other values are refused, not ignored,
    /// because silently ignoring them would load a different model than the file describes.
    func requireUnsupported(_ key: String, equal expected: JSONValue, _ why: String) throws {
        guard let (path, v) = try value(key), v != expected else { return }
        throw ModelFileError(.unsupported, file: source,
                             problem: "key \"\(path)\" is \(v.summary), but only \(expected.summary) "
                                 + "is supported: \(why)")
    }

    /// RoPE scaling (linear, dynamic, yarn, llama3, ...) changes the frequencies; only plain RoPE is built.
    func rejectRopeScaling(_ key: String) throws {
        guard let (path, v) = try value(key) else { return }
        guard case .object = v else { throw mistyped(path, "an object or null", v) }
        let type = try string("rope_type", in: key) ?? string("type", in: key) ?? "default"
        guard type == "default" else {
            throw ModelFileError(.unsupported, file: source,
                                 problem: "key \"\(path)\" asks for rope scaling of type \(quoted(type)), "
                                     + "but rope scaling is not supported (only plain RoPE, rope_type \"default\")",
                                 fix: "Use a model without rope scaling")
        }
    }

    private func mistyped(_ path: String, _ expected: String, _ found: JSONValue) -> ModelFileError {
        ModelFileError(.invalidConfig, file: source,
                       problem: "key \"\(path)\": expected \(expected), found \(found.summary)")
    }
}
