// Turning the reference Llama into its tensor-parallel version, in place, as picotron's
// apply_tensor_parallel does: every layer keeps its place in the model, only its weights are
// cut and its forward learns where to communicate.
// Legend: C = hidden, nh = query heads, nkv = key/value heads, hs = head size, I = MLP
// intermediate, V = vocabulary, tp = ranks, r = this rank.
//
//   attention  q, k, v: column-parallel  rank r: nh/tp query heads, nkv/tp key/value heads
//              o:       row-parallel     reads those heads' outputs, g sums the ranks' parts
//   MLP        gate, up: column-parallel [I/tp, C];  down: row-parallel [C, I/tp]
//   embedding  vocab-parallel [V/tp, C];  LM head column-parallel [V/tp, C], not gathered
//   loss       vocab-parallel cross-entropy (never builds the [N, V] logits)

import Distributed
import Llama
import TensorCore

/// Throws unless `tp` divides every size tensor parallelism cuts.
public func checkTensorParallel(_ config: LlamaConfig, tp: Int) throws {
    try TensorParallelError.checkDivides(tp, [
        ("num_attention_heads", config.numAttentionHeads), ("num_key_value_heads", config.numKeyValueHeads),
        ("intermediate_size", config.intermediateSize), ("vocab_size", config.vocabSize),
    ])
}

/// Splits the heads of `attn` over the group: q, k, v become column-parallel (sharing one f),
/// o row-parallel, and the head counts become this rank's share. Heads stay whole: rank r
/// computes query heads r·nh/tp ..< (r+1)·nh/tp against key/value heads r·nkv/tp ..< (r+1)·nkv/tp,
/// which are exactly the ones those query heads attend with (GQA groups never straddle ranks).
public func parallelize(_ attn: LlamaAttention, group: TensorParallelGroup) throws {
    let tp = group.size
    try TensorParallelError.checkDivides(tp, [("num_attention_heads", attn.heads),
                                              ("num_key_value_heads", attn.kvHeads)])
    let shared = SharedCopy(group: group)
    attn.qProj = try ColumnParallelLinear(sliceOf: try fullWeight(attn.qProj), group: group, copy: shared)  // [nh/tp·hs, C]
    attn.kProj = try ColumnParallelLinear(sliceOf: try fullWeight(attn.kProj), group: group, copy: shared)  // [nkv/tp·hs, C]
    attn.vProj = try ColumnParallelLinear(sliceOf: try fullWeight(attn.vProj), group: group, copy: shared)  // [nkv/tp·hs, C]
    attn.oProj = try RowParallelLinear(sliceOf: try fullWeight(attn.oProj), group: group)                   // [C, nh/tp·hs]
    (attn.heads, attn.kvHeads) = (attn.heads / tp, attn.kvHeads / tp)
}

/// SwiGLU split by intermediate features: silu(gate) ⊙ up is element-wise, so each rank can
/// finish its I/tp features alone; down (row-parallel) sums the ranks' parts with g.
public func parallelize(_ mlp: LlamaMLP, group: TensorParallelGroup) throws {
    let shared = SharedCopy(group: group)
    mlp.gateProj = try ColumnParallelLinear(sliceOf: try fullWeight(mlp.gateProj), group: group, copy: shared)  // [I/tp, C]
    mlp.upProj = try ColumnParallelLinear(sliceOf: try fullWeight(mlp.upProj), group: group, copy: shared)      // [I/tp, C]
    mlp.downProj = try RowParallelLinear(sliceOf: try fullWeight(mlp.downProj), group: group)                  // [C, I/tp]
}

/// The full weight of a layer that has not been cut yet.
func fullWeight(_ layer: any LinearLayer) throws -> Tensor {
    guard let plain = layer as? Linear else {
        throw TensorParallelError("\(type(of: layer)) is already parallel: apply tensor parallelism once, "
                                  + "to a model built from a seed or loaded from a checkpoint")
    }
    return plain.weight
}

/// Makes `model` (the reference Llama, seeded or loaded) tensor-parallel over `comm`, in place:
/// every rank calls it on the same model and keeps its own shards. Throws, leaving the model
/// untouched, when tp does not divide the heads, key/value heads, intermediate size or vocabulary.
///
/// - Parameter gatherLogits: picotron's way (gather the full logits, ordinary cross-entropy)
///   instead of Megatron's vocab-parallel cross-entropy; kept to measure the difference.
/// - Returns: the group the layers talk through; call `check()` on it after a step to surface
///   a communication error from inside forward or backward.
@discardableResult
public func applyTensorParallel(to model: LlamaForCausalLM, group comm: Communicator,
                                gatherLogits: Bool = false) throws -> TensorParallelGroup {
    try checkTensorParallel(model.config, tp: comm.size)
    guard let embedding = model.embedTokens as? Embedding else {
        throw TensorParallelError("\(type(of: model.embedTokens)) is already parallel: apply tensor parallelism once")
    }
    let group = TensorParallelGroup(comm)
    for layer in model.layers {
        try parallelize(layer.selfAttn, group: group)
        try parallelize(layer.mlp, group: group)
    }
    let vocab = try VocabParallelEmbedding(sliceOf: embedding.weight, group: group)
    model.embedTokens = vocab
    if let head = model.lmHead {
        model.lmHead = try ColumnParallelLinear(sliceOf: try fullWeight(head), group: group, gatherOutput: gatherLogits)
    } else {   // tied: the head multiplies by the embedding's own shard [V/tp, C]
        model.lmHead = ColumnParallelLinear(shard: vocab.weight, spec: vocab.spec, group: group,
                                            gatherOutput: gatherLogits, sharesWeight: true)
    }
    useVocabParallelLoss(model, group: group, gatherLogits: gatherLogits)
    return group
}

/// The loss the cut head needs: vocab-parallel cross-entropy on `[N, V/tp]` logits, or the
/// ordinary one on gathered `[N, V]` logits.
func useVocabParallelLoss(_ model: LlamaForCausalLM, group: TensorParallelGroup, gatherLogits: Bool) {
    let vocab = ShardSpec.chunk(group.rank, of: group.size, total: model.config.vocabSize)
    model.lossFunction = { logits, targets in
        gatherLogits ? Tensor.crossEntropy(logits, targets: targets, ignoreIndex: LlamaForCausalLM.ignoreIndex)
            : vocabParallelCrossEntropy(logits, targets: targets, vocab: vocab, group: group)
    }
}

/// Builds this rank's tensor-parallel Llama straight from the seed, never materialising a full
/// weight: every shard equals the slice of `LlamaForCausalLM(config:seed:)`'s parameter.
public func makeTensorParallelLlama(config c: LlamaConfig, seed: UInt64, group comm: Communicator)
    throws -> (model: LlamaForCausalLM, group: TensorParallelGroup) {
    try checkTensorParallel(c, tp: comm.size)
    let group = TensorParallelGroup(comm), tp = comm.size
    let f = ParameterFactory(seed: seed, std: Float(c.initializerRange))
    let (hidden, hd, eps) = (c.hiddenSize, c.headDim, Float(c.rmsNormEps))
    func column(_ name: String, _ out: Int, _ inn: Int, _ copy: SharedCopy) throws -> ColumnParallelLinear {
        try ColumnParallelLinear(factory: f, name: name, out: out, in: inn, group: group, copy: copy)
    }
    let layers = try (0..<c.numHiddenLayers).map { i -> LlamaDecoderLayer in
        let p = "model.layers.\(i).", a = SharedCopy(group: group), m = SharedCopy(group: group)
        let attn = LlamaAttention(
            qProj: try column(p + "self_attn.q_proj.weight", c.numAttentionHeads * hd, hidden, a),
            kProj: try column(p + "self_attn.k_proj.weight", c.numKeyValueHeads * hd, hidden, a),
            vProj: try column(p + "self_attn.v_proj.weight", c.numKeyValueHeads * hd, hidden, a),
            oProj: try RowParallelLinear(factory: f, name: p + "self_attn.o_proj.weight", out: hidden,
                                         in: c.numAttentionHeads * hd, group: group),
            heads: c.numAttentionHeads / tp, kvHeads: c.numKeyValueHeads / tp, headDim: hd)
        let mlp = LlamaMLP(
            gateProj: try column(p + "mlp.gate_proj.weight", c.intermediateSize, hidden, m),
            upProj: try column(p + "mlp.up_proj.weight", c.intermediateSize, hidden, m),
            downProj: try RowParallelLinear(factory: f, name: p + "mlp.down_proj.weight", out: hidden,
                                            in: c.intermediateSize, group: group))
        return LlamaDecoderLayer(inputLayernorm: RMSNorm(weight: f.ones(p + "input_layernorm.weight", hidden), eps: eps),
                                 selfAttn: attn,
                                 postAttentionLayernorm: RMSNorm(weight: f.ones(p + "post_attention_layernorm.weight",
                                                                                hidden), eps: eps),
                                 mlp: mlp)
    }
    let vocab = try VocabParallelEmbedding(factory: f, name: "model.embed_tokens.weight", vocab: c.vocabSize,
                                           hidden: hidden, group: group)
    let head = c.tieWordEmbeddings
        ? ColumnParallelLinear(shard: vocab.weight, spec: vocab.spec, group: group, sharesWeight: true)
        : try column("lm_head.weight", c.vocabSize, hidden, SharedCopy(group: group))
    let model = LlamaForCausalLM(config: c, embedTokens: vocab, layers: layers,
                                 norm: RMSNorm(weight: f.ones("model.norm.weight", hidden), eps: eps), lmHead: head)
    useVocabParallelLoss(model, group: group, gatherLogits: false)
    return (model, group)
}
