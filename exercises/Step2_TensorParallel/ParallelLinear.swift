// Column- and row-parallel linear layers (picotron's tensor_parallel.py), each holding exactly
// its slice of the full weight, each a differentiable op with its backward written under its
// forward. The communication comes from TPCommunications.swift: f before a column layer,
// g after a row layer.
// Legend: N = rows (tokens), in/out = full input/output features, tp = ranks, r = this rank.
//
//   column-parallel: W [out, in] cut by rows     rank r: W_r [out/tp, in],  y_r = f(x) W_rᵀ  [N, out/tp]
//   row-parallel:    W [out, in] cut by columns  rank r: W_r [out, in/tp],  y = g(x_r W_rᵀ)   [N, out]

import ExerciseKit
import Llama
import TensorCore

/// `nn.Linear` cut by output features: rank r holds rows `r·out/tp ..< (r+1)·out/tp` of the
/// weight and computes those output columns. The input must be the same on every rank.
public final class ColumnParallelLinear: LinearLayer {
    public let weight: Tensor          // [out/tp, in]
    public let spec: ShardSpec
    /// Gather the output columns from every rank (`[N, out]`), or leave them split (`[N, out/tp]`).
    public let gatherOutput: Bool
    /// True when the weight belongs to another layer (an LM head tied to the embedding).
    public let sharesWeight: Bool
    let group: TensorParallelGroup
    let copy: SharedCopy

    /// The shard of a full weight `[out, in]` (a loaded or seeded reference layer).
    public convenience init(sliceOf full: Tensor, group: TensorParallelGroup, gatherOutput: Bool = false,
                            copy: SharedCopy? = nil) throws {
        let spec = try ColumnParallelLinear.spec(full.shape, group)
        let w = Tensor(shape: spec.shardShape, data: spec.slice(full.data), requiresGrad: true, name: full.name)
        self.init(shard: w, spec: spec, group: group, gatherOutput: gatherOutput, copy: copy)
    }

    /// The shard drawn straight from the seed: equal to slicing the full init, never building it.
    public convenience init(factory: ParameterFactory, name: String, out: Int, in: Int,
                            group: TensorParallelGroup, gatherOutput: Bool = false, copy: SharedCopy? = nil) throws {
        let spec = try ColumnParallelLinear.spec([out, `in`], group)
        let w = factory.normal(name, fullCols: `in`, rows: spec.range, cols: 0..<`in`)   // [out/tp, in]
        self.init(shard: w, spec: spec, group: group, gatherOutput: gatherOutput, copy: copy)
    }

    /// A layer on an existing shard; `sharesWeight` when another layer owns it (tied head). `copy` is
    /// the f (or sequence all-gather) it shares with the layers reading the same x; nil: its own f.
    public init(shard: Tensor, spec: ShardSpec, group: TensorParallelGroup, gatherOutput: Bool = false,
                copy: SharedCopy? = nil, sharesWeight: Bool = false) {
        precondition(shard.shape == spec.shardShape, "shard \(shard.shape) does not match \(spec)")
        (weight, self.spec, self.group, self.gatherOutput) = (shard, spec, group, gatherOutput)
        self.copy = copy ?? SharedCopy(group: group)
        self.sharesWeight = sharesWeight
    }

    static func spec(_ shape: [Int], _ group: TensorParallelGroup) throws -> ShardSpec {
        try TensorParallelError.checkDivides(group.size, [("the output features of \(shape)", shape[0])])
        return ShardSpec(cut: .rows, fullShape: shape, rank: group.rank, size: group.size)
    }

    /// x `[.., in]` (the same on every rank) → `[.., out/tp]`, or `[.., out]` when gathering.
    public func forward(_ x: Tensor) -> Tensor {
        // TODO(Step2.3): 1. pass x through f: `copy(x)` (shared with the other projections that
        //   read the same x, so f runs once); 2. make a `Tensor.custom` with inputs [that, weight],
        //   forward data `Gemm.product(...)` ([N, out/tp]) and a backward that calls
        //   `ColumnParallelLinear.backward` (Task 2.4); 3. when `gatherOutput`, gather the
        //   columns with `gatherFromTensorParallelRegion`.
        Todo.reached("Step2.3", "ColumnParallelLinear.forward", lesson: "Lessons/02-tensor-parallel.md, Task 2.3")
        return Tensor(zeros: Array(x.shape.dropLast()) + [gatherOutput ? spec.fullShape[0] : weight.shape[0]])
    }

    /// dy `[N, out/tp]` → dx `[N, in]`, dW_r `[out/tp, in]`. dx is only this rank's part of
    /// ∂L/∂x (the part through its output columns); f sums the parts over the ranks.
    static func backward(_ dy: [Float], input x: [Float], weight w: [Float], n: Int, k: Int, m: Int)
        -> (dx: [Float], dw: [Float]) {
        // TODO(Step2.4): dx = dy · W_r [N, in] and dW_r = dyᵀ · x [out/tp, in] (see `Gemm`).
        Todo.reached("Step2.4", "ColumnParallelLinear.backward", lesson: "Lessons/02-tensor-parallel.md, Task 2.4")
        return ([Float](repeating: 0, count: n * k), [Float](repeating: 0, count: m * k))
    }

    public var namedParameters: [(String, Tensor)] { sharesWeight ? [] : [("weight", weight)] }
}

/// `nn.Linear` cut by input features: rank r holds columns `r·in/tp ..< (r+1)·in/tp` of the
/// weight, reads its slice x_r of the input (what a column-parallel layer left split), and
/// the ranks' partial outputs are summed by g.
public final class RowParallelLinear: LinearLayer {
    public let weight: Tensor          // [out, in/tp]
    public let spec: ShardSpec
    /// Reduce-scatter the output along the sequence (sequence parallelism) instead of g.
    public let sequenceParallel: Bool
    let group: TensorParallelGroup

    /// The shard of a full weight `[out, in]`.
    public convenience init(sliceOf full: Tensor, group: TensorParallelGroup, sequenceParallel: Bool = false) throws {
        let spec = try RowParallelLinear.spec(full.shape, group)
        self.init(shard: Tensor(shape: spec.shardShape, data: spec.slice(full.data), requiresGrad: true,
                                name: full.name), spec: spec, group: group, sequenceParallel: sequenceParallel)
    }

    /// The shard drawn straight from the seed.
    public convenience init(factory: ParameterFactory, name: String, out: Int, in: Int,
                            group: TensorParallelGroup, sequenceParallel: Bool = false) throws {
        let spec = try RowParallelLinear.spec([out, `in`], group)
        self.init(shard: factory.normal(name, fullCols: `in`, rows: 0..<out, cols: spec.range),   // [out, in/tp]
                  spec: spec, group: group, sequenceParallel: sequenceParallel)
    }

    public init(shard: Tensor, spec: ShardSpec, group: TensorParallelGroup, sequenceParallel: Bool = false) {
        precondition(shard.shape == spec.shardShape, "shard \(shard.shape) does not match \(spec)")
        (weight, self.spec, self.group, self.sequenceParallel) = (shard, spec, group, sequenceParallel)
    }

    /// g (Task 2.2), or under sequence parallelism its sequence version (Task 2.10): `[.., T, C]` →
    /// `[.., T/tp, C]`, this rank's tokens of the sum.
    func reduce(_ partial: Tensor) -> Tensor {
        sequenceParallel ? reduceScatterToSequenceParallelRegion(partial, group) : reduceFromTensorParallelRegion(partial, group)
    }

    static func spec(_ shape: [Int], _ group: TensorParallelGroup) throws -> ShardSpec {
        try TensorParallelError.checkDivides(group.size, [("the input features of \(shape)", shape[1])])
        return ShardSpec(cut: .columns, fullShape: shape, rank: group.rank, size: group.size)
    }

    /// x_r `[.., in/tp]` (this rank's slice) → `[.., out]`, the same on every rank.
    public func forward(_ x: Tensor) -> Tensor {
        // TODO(Step2.5): 1. a `Tensor.custom` with inputs [x, weight], forward data
        //   `Gemm.product(...)` ([N, out], this rank's partial sum) and a backward that calls
        //   `RowParallelLinear.backward` (Task 2.6); 2. pass it through g: `reduce(...)` (which is g, or
        //   under sequence parallelism its version of Task 2.10).
        Todo.reached("Step2.5", "RowParallelLinear.forward", lesson: "Lessons/02-tensor-parallel.md, Task 2.5")
        return Tensor(zeros: Array(x.shape.dropLast()) + [weight.shape[0]])
    }

    /// dy `[N, out]` (the same on every rank: g's backward is the identity) → dx_r `[N, in/tp]`,
    /// dW_r `[out, in/tp]`. Both are complete: no communication in this backward.
    static func backward(_ dy: [Float], input x: [Float], weight w: [Float], n: Int, k: Int, m: Int)
        -> (dx: [Float], dw: [Float]) {
        // TODO(Step2.6): dx_r = dy · W_r [N, in/tp] and dW_r = dyᵀ · x_r [out, in/tp] (see `Gemm`).
        Todo.reached("Step2.6", "RowParallelLinear.backward", lesson: "Lessons/02-tensor-parallel.md, Task 2.6")
        return ([Float](repeating: 0, count: n * k), [Float](repeating: 0, count: m * k))
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}
