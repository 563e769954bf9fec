// The communication of tensor parallelism as differentiable functions (picotron's
// tp_communications.py). Each is one half of a conjugate pair: what one does forward, the
// other does backward. Together they make a split layer's forward *and* backward exact.
// Legend: N = rows (tokens), C = hidden (replicated on every rank), k = this rank's columns,
// tp = ranks in the group.
// ### References
// Shoeybi et al., Megatron-LM, §3 (the f and g operators), https://arxiv.org/abs/1909.08053

import TensorCore

/// Megatron's **f**: identity forward, all-reduce (sum) of the gradient backward.
/// Conjugate of `g` (`reduceFromTensorParallelRegion`).
///
/// It stands in front of column-parallel layers: every rank reads the same input x, and each
/// rank's backward only knows the part of ∂L/∂x that flows through *its* output columns, so
/// the true gradient is the sum over ranks.
public func copyToTensorParallelRegion(_ x: Tensor, _ group: TensorParallelGroup) -> Tensor {
    Tensor.custom(inputs: [x], shape: x.shape, data: x.data) { dy in    // [.., C]
        // TASK(Step2.1) copyToTensorParallelRegion (f) backward @ Lessons/02-tensor-parallel.md, Task 2.1
        // > dy is this rank's part of ∂L/∂x. Return the sum over the ranks of the
        // > group (one call on `group`). Every rank must make the same call: it is a sync point.
        var dx = dy                                                      // [.., C] this rank's partial
        group.allReduce(&dx, op: .sum)                                   // sync point: Σ over ranks
        return [dx]
        // STAND-IN: return [dy]
        // END TASK(Step2.1)
    }
}

/// Megatron's **g**: all-reduce (sum) forward, identity backward.
/// Conjugate of `f` (`copyToTensorParallelRegion`).
///
/// It closes a row-parallel layer: each rank's product covers only its slice of the inner
/// dimension, so the output is the sum of the ranks' partial outputs. The gradient of a sum
/// with respect to each term is the gradient itself, so backward passes it through.
public func reduceFromTensorParallelRegion(_ x: Tensor, _ group: TensorParallelGroup) -> Tensor {
    // TASK(Step2.2) reduceFromTensorParallelRegion (g) forward @ Lessons/02-tensor-parallel.md, Task 2.2
    // > y must be the sum over the ranks of every rank's x (one call on `group`). The backward
    // > stays the identity: every rank already holds the whole ∂L/∂y.
    var y = x.data                                                       // [.., C] partial sum
    group.allReduce(&y, op: .sum)                                        // sync point: Σ over ranks
    return Tensor.custom(inputs: [x], shape: x.shape, data: y) { dy in [dy] }
    // STAND-IN: return Tensor.custom(inputs: [x], shape: x.shape, data: x.data) { dy in [dy] }
    // END TASK(Step2.2)
}

/// Gather forward, split backward: each rank's `[.., k]` columns → the full `[.., tp·k]`
/// on every rank; backward keeps only this rank's k columns of the gradient.
/// Conjugate of a split (keep-my-columns forward, all-gather backward).
///
/// A column-parallel layer uses it when the next op needs every output column (picotron's
/// final projection does, to compute the loss on full logits).
public func gatherFromTensorParallelRegion(_ x: Tensor, _ group: TensorParallelGroup) -> Tensor {
    let (n, k) = x.rowsAndColumns
    let tp = group.size, r = group.rank
    let all = group.allGather(x.data)                                    // [tp, N, k] rank-major
    var y = [Float](repeating: 0, count: n * k * tp)                     // [N, tp·k]
    for s in 0..<tp { for i in 0..<n { for j in 0..<k { y[(i * tp + s) * k + j] = all[(s * n + i) * k + j] } } }
    let shape = Array(x.shape.dropLast()) + [k * tp]
    return Tensor.custom(inputs: [x], shape: shape, data: y) { dy in      // dy [N, tp·k]
        var dx = [Float](repeating: 0, count: n * k)                     // [N, k] my columns
        for i in 0..<n { for j in 0..<k { dx[i * k + j] = dy[(i * tp + r) * k + j] } }
        return [dx]
    }
}

/// One `f` shared by the column-parallel layers that read the same input: q, k and v read the
/// normed hidden state, gate and up read it too. Megatron fuses each group into one linear so
/// one f runs; Llama keeps them separate, so they share this object: the first call makes
/// f(x), the next calls with the same x return the same tensor, autograd sums the three
/// gradients into it, and f all-reduces once — 2 all-reduces per layer backward, not 5.
/// Under sequence parallelism the shared op is the all-gather along the sequence instead.
public final class SharedCopy {
    let group: TensorParallelGroup
    /// All-gather the sequence (sequence parallelism) instead of f.
    public let sequenceParallel: Bool
    // Weak: the graph keeps them alive exactly as long as a backward may need them.
    private weak var input: Tensor?
    private weak var output: Tensor?

    public init(group: TensorParallelGroup, sequenceParallel: Bool = false) {
        (self.group, self.sequenceParallel) = (group, sequenceParallel)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let i = input, i === x, let o = output { return o }
        let o = sequenceParallel ? gatherFromSequenceParallelRegion(x, group)   // [.., T, C] from [.., T/tp, C]
            : copyToTensorParallelRegion(x, group)                               // [.., C]
        (input, output) = (x, o)
        return o
    }
}
