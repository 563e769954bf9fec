// Model FLOPs and this machine's measured matrix-multiply peak: the two numbers behind every
// MFU (model FLOPs utilisation) the project prints.

import Foundation
import Llama
import TensorCore

public enum Throughput {
    /// Training FLOPs per token for forward + backward (backward costs twice the forward):
    /// 6 · (parameters in matrix products, LM head included) + 6 · 2 · L · nh · hs · T for the
    /// two attention products (QKᵀ and PV) over the full T×T score matrix, as it is computed.
    /// The embedding lookup does no multiply-adds and is left out. Same convention as the
    /// PaLM paper's appendix B (https://arxiv.org/abs/2204.02311) and nanoGPT's estimate_mfu.
    public static func trainingFlopsPerToken(_ c: LlamaConfig, sequenceLength t: Int) -> Double {
        let h = Double(c.hiddenSize), hd = Double(c.headDim), i = Double(c.intermediateSize)
        let attnProj = h * Double(c.numAttentionHeads) * hd * 2 + h * Double(c.numKeyValueHeads) * hd * 2
        let perLayer = attnProj + 3 * h * i
        let matmulParams = Double(c.numHiddenLayers) * perLayer + Double(c.vocabSize) * h
        let attention = 2 * Double(c.numHiddenLayers) * Double(c.numAttentionHeads) * hd * Double(t)
        return 6 * matmulParams + 6 * attention
    }

    /// The best sgemm rate (GFLOP/s) with OpenBLAS's current thread count, over square
    /// products of 512 and 1024 in the plain and the transposed layouts the model uses:
    /// the practical peak MFU is measured against.
    public static func measureSgemmPeak() -> Double {
        var best = 0.0
        for (n, repeats) in [(512, 12), (1024, 6)] {
            let a = (0..<(n * n)).map { Float(($0 % 7) - 3) * 0.01 }
            let b = (0..<(n * n)).map { Float(($0 % 5) - 2) * 0.01 }
            var c = [Float](repeating: 0, count: n * n)
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                for (ta, tb) in [(false, false), (false, true), (true, false)] {
                    for _ in 0..<(repeats + 1) {   // the first call warms up threads and caches
                        let start = DispatchTime.now().uptimeNanoseconds
                        BLAS.sgemm(transA: ta, transB: tb, m: n, n: n, k: n, a: pa.baseAddress!, lda: n,
                                   b: pb.baseAddress!, ldb: n, beta: 0, c: pc.baseAddress!, ldc: n)
                        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        best = max(best, 2 * Double(n * n * n) / seconds / 1e9)
                    }
                }
            } } }
        }
        return best
    }

    /// Resident memory of this process in bytes (Linux /proc), or nil where unavailable.
    public static func residentBytes() -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = s.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
