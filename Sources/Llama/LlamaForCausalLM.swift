// The whole causal language model: embedding → decoder layers → final norm → LM head → loss.
// Pieces are exposed separately (embed, layers, head, loss) so pipeline stages can run a
// subset and tensor parallelism can swap the layers and the loss.
// Legend: B = batch, T = sequence, C = hidden, V = vocabulary.

import TensorCore

public final class LlamaForCausalLM: ParameterHolder {
    public let config: LlamaConfig
    public var embedTokens: any EmbeddingLayer
    public var layers: [LlamaDecoderLayer]
    public var norm: RMSNorm
    /// The LM head; `nil` when tied, then the head is the embedding weight (`tie_word_embeddings`).
    public var lmHead: (any LinearLayer)?
    /// Turns logits and shifted targets into the loss; vocab-parallel training swaps it.
    public var lossFunction: (_ logits: Tensor, _ targets: [Int]) -> Tensor = { logits, targets in
        Tensor.crossEntropy(logits, targets: targets, ignoreIndex: LlamaForCausalLM.ignoreIndex)
    }

    /// Ranks that share each sequence's hidden states between the blocks: sequence parallelism
    /// (lesson 2) keeps T/tp tokens of every sequence on each rank there; 1 otherwise.
    public var sequenceShards = 1

    /// Labels equal to this are skipped by the loss, as in transformers.
    public static let ignoreIndex = -100

    /// A model from its parts (loading and parallel steps use this).
    public init(config: LlamaConfig, embedTokens: any EmbeddingLayer, layers: [LlamaDecoderLayer],
                norm: RMSNorm, lmHead: (any LinearLayer)?) {
        self.config = config
        self.embedTokens = embedTokens
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
    }

    /// A freshly initialised model: linear and embedding weights from normal(0, initializer_range)
    /// by a counter-based generator keyed by each parameter's name, norms at one.
    public convenience init(config c: LlamaConfig, seed: UInt64) {
        try! self.init(config: c, seed: seed, building: .plain)   // the plain builder never throws
    }

    /// A freshly initialised model whose weight layers `builder` makes, by Hugging Face name and
    /// full shape: a parallel step builds its shards straight from the seed this way, and each
    /// shard equals the slice of the plain model's parameter (the generator is keyed by name).
    public convenience init(config c: LlamaConfig, seed: UInt64, building builder: LlamaBuilder) throws {
        let f = ParameterFactory(seed: seed, std: Float(c.initializerRange))
        let (hidden, hd, eps) = (c.hiddenSize, c.headDim, Float(c.rmsNormEps))
        let layers = try (0..<c.numHiddenLayers).map { i -> LlamaDecoderLayer in
            let p = "model.layers.\(i)."
            func linear(_ name: String, _ out: Int, _ inn: Int) throws -> any LinearLayer {
                builder.keeps(p + name) ? try builder.linear(p + name, out, inn, f)
                    : Linear(weight: Tensor(shape: [0, inn], data: []))                  // not held here
            }
            let attn = LlamaAttention(
                qProj: try linear("self_attn.q_proj.weight", c.numAttentionHeads * hd, hidden),     // [nh·hs, C]
                kProj: try linear("self_attn.k_proj.weight", c.numKeyValueHeads * hd, hidden),      // [nkv·hs, C]
                vProj: try linear("self_attn.v_proj.weight", c.numKeyValueHeads * hd, hidden),      // [nkv·hs, C]
                oProj: try linear("self_attn.o_proj.weight", hidden, c.numAttentionHeads * hd),     // [C, nh·hs]
                heads: c.numAttentionHeads / builder.ranks, kvHeads: c.numKeyValueHeads / builder.ranks, headDim: hd)
            let mlp = LlamaMLP(
                gateProj: try linear("mlp.gate_proj.weight", c.intermediateSize, hidden),           // [I, C]
                upProj: try linear("mlp.up_proj.weight", c.intermediateSize, hidden),               // [I, C]
                downProj: try linear("mlp.down_proj.weight", hidden, c.intermediateSize))           // [C, I]
            return LlamaDecoderLayer(
                inputLayernorm: RMSNorm(weight: f.ones(p + "input_layernorm.weight", hidden), eps: eps),
                selfAttn: attn,
                postAttentionLayernorm: RMSNorm(weight: f.ones(p + "post_attention_layernorm.weight", hidden), eps: eps),
                mlp: mlp)
        }
        let (embedName, headName) = ("model.embed_tokens.weight", "lm_head.weight")
        let embedding = builder.keeps(embedName) ? try builder.embedding(embedName, c.vocabSize, hidden, f)   // [V, C]
            : Embedding(weight: Tensor(shape: [0, hidden], data: []))
        let head = c.tieWordEmbeddings ? (builder.keeps(embedName) ? builder.tiedHead(embedding) : nil)
            : builder.keeps(headName) ? try builder.linear(headName, c.vocabSize, hidden, f)                  // [V, C]
            : Linear(weight: Tensor(shape: [0, hidden], data: []))
        self.init(config: c, embedTokens: embedding, layers: layers,
                  norm: RMSNorm(weight: f.ones("model.norm.weight", hidden), eps: eps), lmHead: head)
    }

    // MARK: Forward, in pieces

    /// The rotary table for these positions.
    public func rope(positions: [Int]) -> RoPETable {
        RoPETable(theta: config.ropeTheta, headDim: config.headDim, positions: positions)
    }

    /// The hidden states between the blocks for `batch` sequences of `length` tokens: `[B, T, C]`,
    /// or `[B, T/tp, C]` under sequence parallelism (what a pipeline stage sends and receives).
    public func hiddenShape(batch: Int, length: Int) -> [Int] {
        [batch, length / sequenceShards, config.hiddenSize]
    }

    /// Token ids `[B, T]` → hidden states `[B, T, C]`.
    public func embed(_ ids: [Int], batch: Int, length: Int) -> Tensor {
        embedTokens.forward(ids, shape: [batch, length])
    }

    /// Runs decoder layers `range` on h `[B, T, C]`.
    public func runLayers(_ h: Tensor, _ range: Range<Int>, rope: RoPETable, mask: AttentionMask) -> Tensor {
        var h = h
        for i in range { h = layers[i].forward(h, rope: rope, mask: mask) }   // [B, T, C]
        return h
    }

    /// Final norm and LM head: h `[B, T, C]` → logits `[B, T, V]`.
    public func head(_ h: Tensor) -> Tensor {
        let x = norm.forward(h)                                               // [B, T, C]
        if let lmHead { return lmHead.forward(x) }                            // [B, T, V]
        guard let tied = embedTokens as? Embedding else {
            preconditionFailure("a tied LM head needs the plain Embedding, or a parallel head set in lmHead")
        }
        return Tensor.linear(x, tied.weight)                                  // [B, T, V]
    }

    /// The whole forward: ids `[B, T]` (row-major) → logits `[B, T, V]`.
    public func logits(_ ids: [Int], batch: Int, length: Int, positions: [Int]? = nil) -> Tensor {
        let pos = positions ?? Array(0..<length)
        let mask = AttentionMask.causal(queryPositions: pos, keyPositions: pos)
        let h = runLayers(embed(ids, batch: batch, length: length), 0..<layers.count, rope: rope(positions: pos), mask: mask)
        return head(h)
    }

    /// Next-token targets from transformers-style labels `[B, T]`: row b's target at t is
    /// labels[b, t + 1], and the last position of each row is ignored.
    public static func shiftedTargets(_ labels: [Int], batch: Int, length: Int) -> [Int] {
        var targets = [Int](repeating: ignoreIndex, count: batch * length)
        for b in 0..<batch { for t in 0..<(length - 1) { targets[b * length + t] = labels[b * length + t + 1] } }
        return targets
    }

    /// Mean next-token cross-entropy exactly as transformers computes it from `labels`
    /// (shift inside, -100 ignored). Returns the scalar loss and the logits.
    public func loss(_ ids: [Int], labels: [Int], batch: Int, length: Int,
                     positions: [Int]? = nil) -> (loss: Tensor, logits: Tensor) {
        let logits = self.logits(ids, batch: batch, length: length, positions: positions)   // [B, T, V]
        let targets = LlamaForCausalLM.shiftedTargets(labels, batch: batch, length: length)
        return (lossFunction(logits, targets), logits)
    }

    // MARK: Parameters

    /// Every parameter under its Hugging Face name, in the order transformers lists them
    /// (`lm_head.weight` only when untied).
    public var namedParameters: [(String, Tensor)] {
        var all = embedTokens.namedParameters.map { ("model.embed_tokens.\($0.0)", $0.1) }
        for (i, layer) in layers.enumerated() {
            all += layer.namedParameters.map { ("model.layers.\(i).\($0.0)", $0.1) }
        }
        all += norm.namedParameters.map { ("model.norm.\($0.0)", $0.1) }
        if let lmHead { all += lmHead.namedParameters.map { ("lm_head.\($0.0)", $0.1) } }
        return all
    }

    public var parameters: [Tensor] { namedParameters.map(\.1) }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// The number of parameter values.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
}
