// Cross-entropy over logits cut by vocabulary columns, without ever gathering them.
// Legend: N = rows (tokens), V = vocabulary, v = V/tp columns on this rank, tp = ranks.
//
// Each rank holds logits x[:, r·v ..< (r+1)·v]. For a row with target t:
//   loss = log Σ_j exp(x_j) − x_t = m + log Σ_j exp(x_j − m) − x_t,   m = max_j x_j
// Three all-reduces of N floats each, instead of an all-gather of N·V:
//   m    = max over ranks of the local max            (all-reduce max)
//   s    = Σ over ranks of Σ_local exp(x_j − m)       (all-reduce sum)
//   x_t  = the owner's x_t, 0 elsewhere               (all-reduce sum)
// Backward is local: ∂loss/∂x_j = (softmax_j − [j = t]) / valid rows, softmax_j = exp(x_j − lse).
// ### References
// Megatron-LM's vocab_parallel_cross_entropy, https://github.com/NVIDIA/Megatron-LM

import Foundation
import TensorCore

/// Mean cross-entropy of vocab-parallel `logits` `[.., v]` (this rank's columns
/// `vocab.lowerBound ..< vocab.upperBound` of the full vocabulary) against `targets` `[N]`
/// (full-vocabulary ids; `ignoreIndex` rows skipped). Returns the same scalar on every rank;
/// the gradient each rank gets is the gradient of its own columns.
public func vocabParallelCrossEntropy(_ logits: Tensor, targets: [Int], vocab: Range<Int>,
                                      group: TensorParallelGroup, ignoreIndex: Int = -100) -> Tensor {
    let (n, v) = logits.rowsAndColumns
    precondition(v == vocab.count, "logits have \(v) columns, the shard \(vocab) has \(vocab.count)")
    precondition(targets.count == n, "vocabParallelCrossEntropy: \(targets.count) targets for \(n) rows")
    // TASK(Step2.8) vocabParallelCrossEntropy @ Lessons/02-tensor-parallel.md, Task 2.8
    // > with x this rank's logits [N, v]:
    // >   m = the row max over all ranks (local max, then all-reduce with op .max),
    // >   s = Σ exp(x − m) over all ranks (local `expShiftedSum`, then all-reduce),
    // >   x_t = the target's logit, taken by the rank whose `vocab` holds it, 0 elsewhere, all-reduced;
    // >   loss = mean over rows whose target is not `ignoreIndex` of m + log s − x_t.
    // > Backward (local, no communication): g · (exp(x − lse) − one-hot) / valid rows, one-hot only
    // > on the owning rank. Every rank must make the same three all-reduces in the same order.
    let valid = targets.filter { $0 != ignoreIndex }.count
    let x = logits.data                                               // [N, v]
    var m = [Float](repeating: -.infinity, count: n)                  // [N] row max
    x.withUnsafeBufferPointer { px in for i in 0..<n { m[i] = vectorMax(px.baseAddress! + i * v, v) } }
    group.allReduce(&m, op: .max)                                     // sync: the global row max
    var s = [Float](repeating: 0, count: n)                           // [N] Σ exp(x − m)
    var scratch = [Float](repeating: 0, count: v)
    for i in 0..<n {
        scratch.withUnsafeMutableBufferPointer { t in
            x.withUnsafeBufferPointer { px in t.baseAddress!.update(from: px.baseAddress! + i * v, count: v) }
            s[i] = expShiftedSum(t.baseAddress!, v, shift: m[i])
        }
    }
    group.allReduce(&s, op: .sum)                                     // sync: the global Σ exp
    var xt = [Float](repeating: 0, count: n)                          // [N] target logit, owner only
    for i in 0..<n where vocab.contains(targets[i]) { xt[i] = x[i * v + targets[i] - vocab.lowerBound] }
    group.allReduce(&xt, op: .sum)                                    // sync: fetched from the owner
    var lse = [Float](repeating: 0, count: n)                         // [N] log Σ exp, for backward
    var total: Double = 0
    for i in 0..<n where targets[i] != ignoreIndex {
        lse[i] = m[i] + Foundation.log(s[i])
        total += Double(lse[i] - xt[i])                               // fixed order: same on every rank
    }
    let scale = 1 / Float(valid)
    return Tensor.custom(inputs: [logits], shape: [], data: [Float(total) * scale]) { dy in
        let g = dy[0] * scale
        var dx = [Float](repeating: 0, count: n * v)                  // [N, v] local: no communication
        x.withUnsafeBufferPointer { px in dx.withUnsafeMutableBufferPointer { pd in
            for i in 0..<n where targets[i] != ignoreIndex {           // row i ← g · exp(x − lse)
                scaledExpShifted(px.baseAddress! + i * v, v, shift: lse[i], scale: g, into: pd.baseAddress! + i * v, accumulate: false)
                if vocab.contains(targets[i]) { pd[i * v + targets[i] - vocab.lowerBound] -= g }
            }
        } }
        return [dx]
    }
    // STAND-IN: return Tensor.custom(inputs: [logits], shape: [], data: [0]) { _ in [nil] }
    // END TASK(Step2.8)
}
