// Column- and row-parallel linear layers (picotron's tensor_parallel.py), each holding exactly
// its slice of the full weight, each a differentiable op with its backward written under its
// forward. The communication comes from TPCommunications.swift: f before a column layer,
// g after a row layer.
// Legend: N = rows (tokens), in/out = full input/output features, tp = ranks, r = this rank.
//
//   column-parallel: W [out, in] cut by rows     rank r: W_r [out/tp, in],  y_r = f(x) W_rᵀ  [N, out/tp]
//   row-parallel:    W [out, in] cut by columns  rank r: W_r [out, in/tp],  y = g(x_r W_rᵀ)   [N, out]

import LessonKit
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

    /// A layer on an existing shard; `sharesWeight` when another layer owns it (tied head).
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
        let xc = copy(x)                                              // [.., in]  f: all-reduce in backward
        let (n, k) = xc.rowsAndColumns, m = weight.shape[0]
        let y = Tensor.custom(inputs: [xc, weight], shape: Array(x.shape.dropLast()) + [m],
                              data: Gemm.product(xc.data, weight.data, n: n, k: k, m: m)) { dy in
            let (dx, dw) = ColumnParallelLinear.backward(dy, input: xc.data, weight: self.weight.data, n: n, k: k, m: m)
            return [dx, dw]
        }                                                             // [.., out/tp]
        return gatherOutput ? gatherFromTensorParallelRegion(y, group) : y
    }

    /// dy `[N, out/tp]` → dx `[N, in]`, dW_r `[out/tp, in]`. dx is only this rank's part of
    /// ∂L/∂x (the part through its output columns); f sums the parts over the ranks.
    static func backward(_ dy: [Float], input x: [Float], weight w: [Float], n: Int, k: Int, m: Int)
        -> (dx: [Float], dw: [Float]) {
        let dx = Gemm.gradInput(dy, w, n: n, k: k, m: m)              // [N, in]      partial: Σ over ranks in f
        let dw = Gemm.gradWeight(dy, x, n: n, k: k, m: m)             // [out/tp, in] complete
        return (dx, dw)
    }

    public var namedParameters: [(String, Tensor)] { sharesWeight ? [] : [("weight", weight)] }
}

/// `nn.Linear` cut by input features: rank r holds columns `r·in/tp ..< (r+1)·in/tp` of the
/// weight, reads its slice x_r of the input (what a column-parallel layer left split), and
/// the ranks' partial outputs are summed by g.
public final class RowParallelLinear: LinearLayer {
    public let weight: Tensor          // [out, in/tp]
    public let spec: ShardSpec
    let group: TensorParallelGroup

    /// The shard of a full weight `[out, in]`.
    public convenience init(sliceOf full: Tensor, group: TensorParallelGroup) throws {
        let spec = try RowParallelLinear.spec(full.shape, group)
        self.init(shard: Tensor(shape: spec.shardShape, data: spec.slice(full.data), requiresGrad: true,
                                name: full.name), spec: spec, group: group)
    }

    /// The shard drawn straight from the seed.
    public convenience init(factory: ParameterFactory, name: String, out: Int, in: Int,
                            group: TensorParallelGroup) throws {
        let spec = try RowParallelLinear.spec([out, `in`], group)
        self.init(shard: factory.normal(name, fullCols: `in`, rows: 0..<out, cols: spec.range),   // [out, in/tp]
                  spec: spec, group: group)
    }

    public init(shard: Tensor, spec: ShardSpec, group: TensorParallelGroup) {
        precondition(shard.shape == spec.shardShape, "shard \(shard.shape) does not match \(spec)")
        (weight, self.spec, self.group) = (shard, spec, group)
    }

    static func spec(_ shape: [Int], _ group: TensorParallelGroup) throws -> ShardSpec {
        try TensorParallelError.checkDivides(group.size, [("the input features of \(shape)", shape[1])])
        return ShardSpec(cut: .columns, fullShape: shape, rank: group.rank, size: group.size)
    }

    /// x_r `[.., in/tp]` (this rank's slice) → `[.., out]`, the same on every rank.
    public func forward(_ x: Tensor) -> Tensor {
        let (n, k) = x.rowsAndColumns, m = weight.shape[0]
        let partial = Tensor.custom(inputs: [x, weight], shape: Array(x.shape.dropLast()) + [m],
                                    data: Gemm.product(x.data, weight.data, n: n, k: k, m: m)) { dy in
            let (dx, dw) = RowParallelLinear.backward(dy, input: x.data, weight: self.weight.data, n: n, k: k, m: m)
            return [dx, dw]
        }                                                             // [.., out] this rank's term
        return reduceFromTensorParallelRegion(partial, group)        // [.., out] g: Σ over ranks
    }

    /// dy `[N, out]` (the same on every rank: g's backward is the identity) → dx_r `[N, in/tp]`,
    /// dW_r `[out, in/tp]`. Both are complete: no communication in this backward.
    static func backward(_ dy: [Float], input x: [Float], weight w: [Float], n: Int, k: Int, m: Int)
        -> (dx: [Float], dw: [Float]) {
        let dx = Gemm.gradInput(dy, w, n: n, k: k, m: m)              // [N, in/tp]
        let dw = Gemm.gradWeight(dy, x, n: n, k: k, m: m)             // [out, in/tp]
        return (dx, dw)
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// The three products of a linear layer y = x Wᵀ on plain arrays, on OpenBLAS.
/// x `[N, K]`, W `[M, K]`, y and dy `[N, M]`.
public enum Gemm {
    /// y = x Wᵀ  `[N, M]`.
    public static func product(_ x: [Float], _ w: [Float], n: Int, k: Int, m: Int) -> [Float] {
        gemm(x, w, m: n, n: m, k: k, transA: false, transB: true)
    }

    /// dx = dy W  `[N, K]`.
    public static func gradInput(_ dy: [Float], _ w: [Float], n: Int, k: Int, m: Int) -> [Float] {
        gemm(dy, w, m: n, n: k, k: m, transA: false, transB: false)
    }

    /// dW = dyᵀ x  `[M, K]`.
    public static func gradWeight(_ dy: [Float], _ x: [Float], n: Int, k: Int, m: Int) -> [Float] {
        gemm(dy, x, m: m, n: k, k: n, transA: true, transB: false)
    }

    /// C `[m, n]` = op(A) op(B), A stored `[m, k]` (or `[k, m]` when transposed), B `[k, n]` (or `[n, k]`).
    static func gemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: transA ? m : k,
                       b: pb.baseAddress!, ldb: transB ? k : n, beta: 0, c: pc.baseAddress!, ldc: n)
        } } }
        return c
    }
}
