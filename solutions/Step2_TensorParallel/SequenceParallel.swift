// Sequence parallelism (Korthikanti et al., 2022; Megatron-LM's `sequence_parallel`): between the
// tensor-parallel blocks, the activations every rank held whole — the residual stream, the norms'
// inputs and outputs — are split along the sequence. f becomes an all-gather along the sequence and
// g a reduce-scatter: the same bytes on the wire as tensor parallelism alone (an all-reduce *is* a
// reduce-scatter then an all-gather), and a tp-th of those activations per rank.
// Legend: B = batch, T = sequence, t = T/tp this rank's tokens of each sequence, C = hidden,
// tp = ranks, r = this rank (it holds tokens r·t ..< (r+1)·t of every sequence).
//
//   h [B, t, C] ─ RMSNorm ─ all-gather ─ [B, T, C] ─ column … row ─ [B, T, C] partial ─ reduce-scatter ─ [B, t, C] ─ (+h)
//                 (weight gradient summed over tp: each rank's norm saw only its t tokens)
// ### References
// Korthikanti et al., Reducing Activation Recomputation in Large Transformer Models, §4.2.2,
// https://arxiv.org/abs/2205.05198

import Llama
import TensorCore

/// Throws unless tp divides the `tokens` of each sequence a rank holds (T, or T/cp with context parallelism).
public func checkSequenceParallel(tokens: Int, tp: Int) throws {
    guard tokens % tp != 0 else { return }
    throw TensorParallelError(sequenceParallelMessage(tokens: tokens, tp: tp))
}

func sequenceParallelMessage(tokens t: Int, tp: Int) -> String {
    let below = t / tp * tp, above = below + tp
    return "sequence parallelism splits each sequence's \(t) tokens over tp \(tp), but \(t) is not a multiple of \(tp): "
        + "use a sequence length of \(below > 0 ? "\(below) or " : "")\(above) tokens per rank, or no sequence parallelism"
}

/// `[.., T, C]` → (outer: the product of the dimensions before T, T, C).
func sequenceDims(_ shape: [Int]) -> (outer: Int, t: Int, c: Int) {
    precondition(shape.count >= 2, "sequence parallelism needs [.., T, C], got \(shape)")
    return (shape.dropLast(2).reduce(1, *), shape[shape.count - 2], shape[shape.count - 1])
}

/// `[B, tp·t, C]` in token order → `[tp, B, t, C]`: rank s's tokens of every sequence together, the
/// order in which a collective cuts a buffer into ranks' chunks.
func rankMajor(_ x: [Float], outer b: Int, t: Int, c: Int, tp: Int) -> [Float] {
    guard b > 1 else { return x }                                   // one sequence: already rank-major
    var out = [Float]()
    out.reserveCapacity(x.count)
    let chunk = t * c                                               // one rank's tokens of one sequence
    for s in 0..<tp { for i in 0..<b { let at = (i * tp + s) * chunk; out += x[at ..< at + chunk] } }
    return out
}

/// The inverse: `[tp, B, t, C]` (ranks' chunks, as a collective joins them) → `[B, tp·t, C]` in token order.
func sequenceMajor(_ x: [Float], outer b: Int, t: Int, c: Int, tp: Int) -> [Float] {
    guard b > 1 else { return x }
    var out = [Float]()
    out.reserveCapacity(x.count)
    let chunk = t * c
    for i in 0..<b { for s in 0..<tp { let at = (s * b + i) * chunk; out += x[at ..< at + chunk] } }
    return out
}

/// Sequence-parallel **f**: all-gather along the sequence forward, reduce-scatter backward.
/// Conjugate of `reduceScatterToSequenceParallelRegion`.
///
/// It stands in front of the column-parallel layers in place of f: they need every token of the
/// sequence, and each rank's backward knows only its part of ∂L/∂(every token), so the backward sums
/// the parts over the ranks (as f did) and keeps this rank's tokens.
public func gatherFromSequenceParallelRegion(_ x: Tensor, _ group: TensorParallelGroup) -> Tensor {
    let (b, t, c) = sequenceDims(x.shape), tp = group.size
    let shape = Array(x.shape.dropLast(2)) + [t * tp, c]                       // [.., T, C]
    // TASK(Step2.9) gatherFromSequenceParallelRegion (sequence-parallel f) @ Lessons/02-tensor-parallel.md#task-29
    // > Forward: every rank's tokens in sequence order — `group.allGather(x.data)` returns them rank
    // > by rank ([tp, B, t, C]); `sequenceMajor` puts them in token order ([B, T, C]).
    // > Backward: dy [B, T, C] is this rank's part of the gradient of every token. Sum it over the ranks
    // > and keep this rank's t tokens: `rankMajor` first, then `group.reduceScatter(_, op: .sum)`.
    let y = sequenceMajor(group.allGather(x.data), outer: b, t: t, c: c, tp: tp)          // [B, T, C]
    return Tensor.custom(inputs: [x], shape: shape, data: y) { dy in                        // dy [B, T, C] partial
        [group.reduceScatter(rankMajor(dy, outer: b, t: t, c: c, tp: tp), op: .sum)]        // [B, t, C] Σ over ranks
    }
    // STAND-IN: return Tensor.custom(inputs: [x], shape: shape, data: [Float](repeating: 0, count: x.count * tp)) { _ in [nil] }
    // END TASK(Step2.9)
}

/// Sequence-parallel **g**: reduce-scatter along the sequence forward, all-gather backward.
/// Conjugate of `gatherFromSequenceParallelRegion`.
///
/// It closes a row-parallel layer (and the vocab-parallel embedding) in place of g: the ranks'
/// partial outputs are summed as g summed them, but each rank keeps only its t tokens of the sum.
/// The backward hands every token's gradient back, since the partial product read all of them.
public func reduceScatterToSequenceParallelRegion(_ x: Tensor, _ group: TensorParallelGroup) -> Tensor {
    let (b, whole, c) = sequenceDims(x.shape), tp = group.size
    precondition(whole % tp == 0, sequenceParallelMessage(tokens: whole, tp: tp))
    let t = whole / tp
    let shape = Array(x.shape.dropLast(2)) + [t, c]                            // [.., t, C]
    // TASK(Step2.10) reduceScatterToSequenceParallelRegion (sequence-parallel g) @ Lessons/02-tensor-parallel.md#task-210
    // > Forward: the sum over the ranks of x [B, T, C], this rank's t tokens of it: `rankMajor` (so that
    // > chunk r holds rank r's tokens), then `group.reduceScatter(_, op: .sum)`.
    // > Backward: dy [B, t, C] is the gradient of this rank's tokens; every rank's partial read all T,
    // > so return all of them: `group.allGather(dy)`, put in token order with `sequenceMajor`.
    let y = group.reduceScatter(rankMajor(x.data, outer: b, t: t, c: c, tp: tp), op: .sum)   // [B, t, C] Σ over ranks
    return Tensor.custom(inputs: [x], shape: shape, data: y) { dy in                           // dy [B, t, C]
        [sequenceMajor(group.allGather(dy), outer: b, t: t, c: c, tp: tp)]                     // [B, T, C] every token's
    }
    // STAND-IN: return Tensor.custom(inputs: [x], shape: shape, data: [Float](repeating: 0, count: x.count / tp)) { _ in [nil] }
    // END TASK(Step2.10)
}

/// Makes every RMSNorm of `model` sum its weight's gradient over the tensor-parallel group.
///
/// Under sequence parallelism a rank's norms normalise only its t tokens, so the gradient of a norm
/// weight on each rank is the part of ∂L/∂w from those tokens. The weight is read by every rank and
/// its gradient must be the sum of the ranks' parts: exactly f's situation, so the weight passes
/// through f. (Megatron all-reduces these gradients once after the backward instead; the sum is the same.)
public func sumNormGradients(of model: LlamaForCausalLM, group: TensorParallelGroup) {
    // TASK(Step2.11) the norm weights' gradient summed over tp @ Lessons/02-tensor-parallel.md#task-211
    // > Every RMSNorm — both of each decoder layer and the final `model.norm` — must read its weight
    // > through f (`copyToTensorParallelRegion`, Task 2.1): set its `readWeight`. The forward is unchanged;
    // > the backward sums the weight's gradient over the group, once.
    for layer in model.layers {
        layer.inputLayernorm.readWeight = { copyToTensorParallelRegion($0, group) }           // [C]
        layer.postAttentionLayernorm.readWeight = { copyToTensorParallelRegion($0, group) }   // [C]
    }
    model.norm.readWeight = { copyToTensorParallelRegion($0, group) }                         // [C]
    // STAND-IN: _ = (model, group)
    // END TASK(Step2.11)
}
