// Turning the reference Llama into its tensor-parallel version, in place, as picotron's
// apply_tensor_parallel does: every layer keeps its place in the model, only its weights are
// cut and its forward learns where to communicate. Which layer gets which cut is the one table
// in TensorParallelPlan.swift; the same table builds a sharded model straight from the seed.
// Legend: C = hidden, nh = query heads, nkv = key/value heads, hs = head size, I = MLP
// intermediate, V = vocabulary, tp = ranks, r = this rank.
//
//   attention  q, k, v: column-parallel  rank r: nh/tp query heads, nkv/tp key/value heads
//              o:       row-parallel     reads those heads' outputs, g sums the ranks' parts
//   MLP        gate, up: column-parallel [I/tp, C];  down: row-parallel [C, I/tp]
//   embedding  vocab-parallel [V/tp, C];  LM head column-parallel [V/tp, C], not gathered
//   loss       vocab-parallel cross-entropy (never builds the [N, V] logits)
//   sequence parallel (an option): f → all-gather along T, g → reduce-scatter along T, the norms'
//              weight gradients summed over tp (SequenceParallel.swift); between the blocks [B, T/tp, C]

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

/// The `f` each activation passes through, made on first use: column layers that read the same
/// activation share one, so its backward all-reduce runs once for all of them.
final class SharedCopies {
    let group: TensorParallelGroup
    let sequenceParallel: Bool
    var made = [String: SharedCopy]()
    init(group: TensorParallelGroup, sequenceParallel: Bool) { (self.group, self.sequenceParallel) = (group, sequenceParallel) }
    subscript(input: String?) -> SharedCopy? {
        guard let input else { return nil }
        if made[input] == nil { made[input] = SharedCopy(group: group, sequenceParallel: sequenceParallel) }
        return made[input]
    }
}

/// Cuts one decoder layer as the table says: q, k, v, gate, up column-parallel (q, k, v share
/// one f, gate and up another), o and down row-parallel; the head counts become this rank's share.
/// `sequenceParallel`: f and g become the all-gather and reduce-scatter along the sequence (the norms'
/// gradient sum is the model's: `sumNormGradients`).
public func parallelize(_ layer: LlamaDecoderLayer, group: TensorParallelGroup, sequenceParallel: Bool = false) throws {
    let tp = group.size
    try TensorParallelError.checkDivides(tp, [("num_attention_heads", layer.selfAttn.heads),
                                              ("num_key_value_heads", layer.selfAttn.kvHeads)])
    let f = SharedCopies(group: group, sequenceParallel: sequenceParallel)   // one f per activation the column layers read
    for (name, path) in LlamaDecoderLayer.linears {
        let entry = TensorParallelPlan.layer.first { $0.name == name }!
        layer[keyPath: path] = try cut(layer[keyPath: path], entry.style, group: group, copy: f[entry.input],
                                       sequenceParallel: sequenceParallel)
    }
    // Heads stay whole: rank r computes query heads r·nh/tp ..< (r+1)·nh/tp against key/value
    // heads r·nkv/tp ..< (r+1)·nkv/tp, exactly the ones they attend with (GQA groups never straddle ranks).
    let attn = layer.selfAttn
    (attn.heads, attn.kvHeads) = (attn.heads / tp, attn.kvHeads / tp)
}

/// `layer` (whole) replaced by its `style` of parallel layer, holding this rank's shard.
func cut(_ layer: any LinearLayer, _ style: TensorParallelStyle, group: TensorParallelGroup,
         copy: SharedCopy?, sequenceParallel: Bool) throws -> any LinearLayer {
    switch style {
    case .column: return try ColumnParallelLinear(sliceOf: try fullWeight(layer), group: group, copy: copy)   // [out/tp, in]
    case .row:                                                                                               // [out, in/tp]
        return try RowParallelLinear(sliceOf: try fullWeight(layer), group: group, sequenceParallel: sequenceParallel)
    case .vocab, .replicated: return layer
    }
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
/// - Parameter sequenceParallel: split the activations between the blocks along the sequence
///   (Tasks 2.9–2.11); every sequence's length must then divide by tp.
/// - Returns: the group the layers talk through; call `check()` on it after a step to surface
///   a communication error from inside forward or backward.
@discardableResult
public func applyTensorParallel(to model: LlamaForCausalLM, group comm: Communicator,
                                gatherLogits: Bool = false, sequenceParallel: Bool = false) throws -> TensorParallelGroup {
    try checkTensorParallel(model.config, tp: comm.size)
    guard let embedding = model.embedTokens as? Embedding else {
        throw TensorParallelError("\(type(of: model.embedTokens)) is already parallel: apply tensor parallelism once")
    }
    let group = TensorParallelGroup(comm)
    for layer in model.layers { try parallelize(layer, group: group, sequenceParallel: sequenceParallel) }
    let vocab = try VocabParallelEmbedding(sliceOf: embedding.weight, group: group, sequenceParallel: sequenceParallel)
    model.embedTokens = vocab
    let copy = SharedCopy(group: group, sequenceParallel: sequenceParallel)   // before the head
    if let head = model.lmHead {
        model.lmHead = try ColumnParallelLinear(sliceOf: try fullWeight(head), group: group, gatherOutput: gatherLogits, copy: copy)
    } else {   // tied: the head multiplies by the embedding's own shard [V/tp, C]
        model.lmHead = ColumnParallelLinear(shard: vocab.weight, spec: vocab.spec, group: group,
                                            gatherOutput: gatherLogits, copy: copy, sharesWeight: true)
    }
    useVocabParallelLoss(model, group: group, gatherLogits: gatherLogits)
    if sequenceParallel { splitSequence(model, group: group) }
    return group
}

/// The model-wide part of sequence parallelism: the hidden states between the blocks hold T/tp
/// tokens of each sequence, and the norms' weight gradients are summed over tp (Task 2.11).
func splitSequence(_ model: LlamaForCausalLM, group: TensorParallelGroup) {
    model.sequenceShards = group.size
    sumNormGradients(of: model, group: group)
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
/// `keeps` names the weights this rank holds (a pipeline stage's); the others are empty placeholders.
public func makeTensorParallelLlama(config c: LlamaConfig, seed: UInt64, group comm: Communicator,
                                    sequenceParallel sp: Bool = false, keeps: @escaping (String) -> Bool = { _ in true })
    throws -> (model: LlamaForCausalLM, group: TensorParallelGroup) {
    try checkTensorParallel(c, tp: comm.size)
    let group = TensorParallelGroup(comm)
    let f = SharedCopies(group: group, sequenceParallel: sp)   // one f per layer and activation: "model.layers.3." + "MLP input"
    let builder = LlamaBuilder(
        ranks: comm.size,
        linear: { name, out, inn, seeded in
            let entry = TensorParallelPlan.entry(of: name)
            switch entry?.style {
            case .column?:
                let copy = f[entry?.input.map { TensorParallelPlan.layerPrefix(of: name) + $0 }]
                return try ColumnParallelLinear(factory: seeded, name: name, out: out, in: inn, group: group, copy: copy)
            case .row?:
                return try RowParallelLinear(factory: seeded, name: name, out: out, in: inn, group: group, sequenceParallel: sp)
            default:
                throw TensorParallelError("\(name) is not a linear weight of the tensor-parallel table")
            }
        },
        embedding: { name, v, hidden, f in
            try VocabParallelEmbedding(factory: f, name: name, vocab: v, hidden: hidden, group: group, sequenceParallel: sp)
        },
        tiedHead: { embedding in   // the head multiplies by the embedding's own shard [V/tp, C]
            let vocab = embedding as! VocabParallelEmbedding
            return ColumnParallelLinear(shard: vocab.weight, spec: vocab.spec, group: group,
                                        copy: f["final hidden states"], sharesWeight: true)
        })
    let model = try LlamaForCausalLM(config: c, seed: seed, building: builder.keeping(keeps))
    useVocabParallelLoss(model, group: group, gatherLogits: false)
    if sp { splitSequence(model, group: group) }
    return (model, group)
}
