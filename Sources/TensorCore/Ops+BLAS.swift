// Matrix products on OpenBLAS's cblas_sgemm, every transpose case, with a naive loop kept
// beside it as the algorithmic reference the tests compare with.
// Legend: A is [M, K] (stored [K, M] when transposed), B is [K, N] (stored [N, K]), C is [M, N].

import COpenBLAS
import Foundation

/// Thin access to OpenBLAS: the one place TensorCore calls into C for linear algebra.
public enum BLAS {
    /// Row-major C = alpha · op(A) · op(B) + beta · C. `lda`, `ldb`, `ldc` are the stored row
    /// lengths, so a head's slice inside a wider row can be used without copying.
    @inlinable
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0 && n > 0 else { return }
        if k == 0 {   // OpenBLAS leaves C alone when k = 0; the product is still beta · C.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// Sets how many threads OpenBLAS uses (process-wide).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    /// How many threads OpenBLAS uses now.
    public static var threads: Int { Int(openblas_get_num_threads()) }
    /// OpenBLAS's build description (version, kernel).
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// The kernel OpenBLAS should use when it fell back to its generic one on a CPU it does not
    /// recognise (OpenBLAS 0.3.21, Debian 12's, picks "Prescott" on some newer Intel Xeons: 4–5×
    /// slower matrix products), or nil. The kernel is chosen when the library loads, so only the
    /// environment (`OPENBLAS_CORETYPE`) of a new process can change it.
    public static var betterKernel: String? {
        guard configuration.contains("Prescott"),
              let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") }.map { $0.split(separator: " ") } ?? []
        return flags.contains("avx512f") ? "SkylakeX" : flags.contains("avx2") ? "Haswell" : nil
    }

    /// A one-line note when `betterKernel` applies.
    public static var kernelAdvice: String? {
        betterKernel.map { "note: OpenBLAS chose its generic Prescott kernel on a CPU that has the \($0) kernel's "
            + "instructions; for much faster matrix products run with OPENBLAS_CORETYPE=\($0)" }
    }

    /// OpenBLAS's spin time before an idle worker thread sleeps, as log2 of cycles (0: its default, 2^28).
    public static var threadTimeout: Int { Int(openblas_thread_timeout()) }
}

extension Tensor {
    /// op(a) · op(b). Without `transposeA`, `a` may carry leading dimensions: `[.., K]` is
    /// treated as `[M, K]` and the result is `[.., N]`. `b` is 2-D.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false,
                              transposeB: Bool = false) -> Tensor {
        precondition(b.rank == 2, "matmul: b must be 2-D, got \(b.shape)")
        precondition(!transposeA || a.rank == 2, "matmul: a transposed must be 2-D, got \(a.shape)")
        let k = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        let aRows = a.rowsAndColumns
        let (m, ka) = transposeA ? (aRows.cols, aRows.rows) : (aRows.rows, aRows.cols)
        precondition(ka == k, "matmul: inner sizes differ, a \(a.shape)\(transposeA ? "ᵀ" : "") "
                     + "· b \(b.shape)\(transposeB ? "ᵀ" : "")")
        let outShape = transposeA ? [m, n] : Array(a.shape.dropLast()) + [n]
        let lda = transposeA ? m : k, ldb = transposeB ? k : n
        let y = a.withValues { pa in b.withValues { pb in
            uninitializedFloats(m * n) { pc in
                BLAS.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                           a: pa, lda: lda, b: pb, ldb: ldb, beta: 0, c: pc, ldc: n)
            }
        } }
        return result(outShape, y, parents: [a, b]) { out in
            let dC = out.grad!                                                   // [M, N]
            // dA: [M, K] = dC · op(B)ᵀ, or stored transposed [K, M] = op(B) · dCᵀ.
            if a.requiresGrad {
                dC.withUnsafeBufferPointer { g in b.withValues { pb in
                    a.accumulateGrad { ga, fresh in
                        if transposeA {
                            BLAS.sgemm(transA: transposeB, transB: true, m: k, n: m, k: n,
                                       a: pb, lda: ldb, b: g.baseAddress!, ldb: n, beta: fresh ? 0 : 1, c: ga, ldc: m)
                        } else {
                            BLAS.sgemm(transA: false, transB: !transposeB, m: m, n: k, k: n,
                                       a: g.baseAddress!, lda: n, b: pb, ldb: ldb, beta: fresh ? 0 : 1, c: ga, ldc: k)
                        }
                    }
                } }
            }
            // dB: [K, N] = op(A)ᵀ · dC, or stored transposed [N, K] = dCᵀ · op(A). A weight's (a
            // leaf's) may be put off while a pipeline stage has better things to do first.
            guard b.requiresGrad else { return }
            let gradB = {
                dC.withUnsafeBufferPointer { g in a.withValues { pa in
                    b.accumulateGrad { gb, fresh in
                        if transposeB {
                            BLAS.sgemm(transA: true, transB: transposeA, m: n, n: k, k: m,
                                       a: g.baseAddress!, lda: n, b: pa, ldb: lda, beta: fresh ? 0 : 1, c: gb, ldc: k)
                        } else {
                            BLAS.sgemm(transA: !transposeA, transB: false, m: k, n: n, k: m,
                                       a: pa, lda: lda, b: g.baseAddress!, ldb: n, beta: fresh ? 0 : 1, c: gb, ldc: n)
                        }
                    }
                } }
            }
            if b.isLeaf, let later = Autograd.deferredGradients { later.add(b, gradB) } else { gradB() }
        }
    }

    /// A linear layer without bias, as PyTorch's `nn.Linear`: x · Wᵀ.
    /// x `[.., in]`, weight `[out, in]` → `[.., out]`.
    public static func linear(_ x: Tensor, _ weight: Tensor) -> Tensor {
        matmul(x, weight, transposeB: true)
    }

    /// The algorithmic reference for `matmul`: three loops in double precision, no BLAS.
    /// Slow; tests compare the fast path with it.
    public static func naiveMatmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int,
                                   transposeA: Bool, transposeB: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let av = transposeA ? a[p * m + i] : a[i * k + p]
                    let bv = transposeB ? b[j * k + p] : b[p * n + j]
                    s += Double(av) * Double(bv)
                }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }
}
