// The three products of a linear layer on plain arrays, for code that writes its own forward and
// backward (the tensor-parallel layers): y = x Wᵀ, dx = dy W, dW = dyᵀ x, each one sgemm call.

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
    public static func gemm(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: pa.baseAddress!, lda: transA ? m : k,
                       b: pb.baseAddress!, ldb: transB ? k : n, beta: 0, c: pc.baseAddress!, ldc: n)
        } } }
        return c
    }
}
