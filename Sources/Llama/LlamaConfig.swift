// LlamaConfig.swift: the model's hyperparameters, the presets, and the rules the sizes must keep.
//
// Field names and defaults are transformers' `LlamaConfig` ones; LlamaConfig+HF.swift reads and
// writes them as a Hugging Face `config.json`. `validate(source:)` names the config.json key of a
// size that breaks a rule, so a message reads the same whether the config came from a file or code.
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
