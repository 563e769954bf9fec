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

import ExerciseKit
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
    // TODO(Step2.8): with x this rank's logits [N, v]:
    //   m = the row max over all ranks (local max, then all-reduce with op .max),
    //   s = Σ exp(x − m) over all ranks (local `expShiftedSum`, then all-reduce),
    //   x_t = the target's logit, taken by the rank whose `vocab` holds it, 0 elsewhere, all-reduced;
    //   loss = mean over rows whose target is not `ignoreIndex` of m + log s − x_t.
    // Backward (local, no communication): g · (exp(x − lse) − one-hot) / valid rows, one-hot only
    // on the owning rank. Every rank must make the same three all-reduces in the same order.
    Todo.reached("Step2.8", "vocabParallelCrossEntropy", lesson: "Lessons/02-tensor-parallel.md, Task 2.8")
    return Tensor.custom(inputs: [logits], shape: [], data: [0]) { _ in [nil] }
}
