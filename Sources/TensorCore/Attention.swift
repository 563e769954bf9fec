// Causal grouped-query attention, fused, with the per-row log-sum-exp it also returns.
// Legend: B = batch, Tq/Tk = query/key length, nh = query heads, nkv = key/value heads,
// hs = head size, rep = nh / nkv (query heads per key/value head, Hugging Face's repeat_kv).
//
// Forward per (batch, head):  S = Q Kᵀ · scale   [Tq, Tk]
//                             P = softmax(S) over allowed keys, lse = log Σ exp(S)   [Tq]
//                             O = P V                 [Tq, hs]
// Backward recomputes P from lse (as FlashAttention does) instead of keeping it:
//   dP = dO Vᵀ,  D = rowsum(dO ⊙ O),  dS = P ⊙ (dP − D),
//   dQ = dS K · scale,  dK = dSᵀ Q · scale,  dV = Pᵀ dO.
// Because the backward needs only O and lse, ring attention (lesson 4) can merge partial
// blocks with their lse and call the same backward with the merged values.

import Foundation

/// Which keys a query may attend to.
public enum AttentionMask: Sendable {
    /// Every key (a block entirely in a query's past).
    case none
    /// Key position ≤ query position, by the given absolute positions (`[Tq]`, `[Tk]`).
    case causal(queryPositions: [Int], keyPositions: [Int])

    /// The ordinary causal mask for a sequence of length t starting at position 0.
    public static func causal(length t: Int) -> AttentionMask {
        .causal(queryPositions: Array(0..<t), keyPositions: Array(0..<t))
    }
}

/// The attention kernels on plain buffers, for modules that write their own differentiable
/// attention (ring attention). `Tensor.attention` wraps them for autograd.
public enum AttentionKernel {
    /// Sizes of one attention call.
    public struct Shape: Sendable {
        public var batch, queryLength, keyLength, heads, kvHeads, headDim: Int
        public init(batch: Int, queryLength: Int, keyLength: Int, heads: Int, kvHeads: Int, headDim: Int) {
            precondition(kvHeads > 0 && heads % kvHeads == 0,
                         "attention: \(heads) query heads not divisible by \(kvHeads) key/value heads")
            (self.batch, self.queryLength, self.keyLength) = (batch, queryLength, keyLength)
            (self.heads, self.kvHeads, self.headDim) = (heads, kvHeads, headDim)
        }
        var scale: Float { 1 / Float(headDim).squareRoot() }
    }

    /// Query rows are processed in blocks of this many. A block multiplies only against the keys
    /// its rows may see, so a causal mask skips most of the upper triangle's products (for
    /// T = 256: 62% of the full work) instead of computing scores that are then masked.
    static let queryBlock = 64

    /// For each query row i, keys 0..<allowed[i] may be seen (key positions increase in a block).
    static func allowedKeys(_ s: Shape, mask: AttentionMask) -> [Int] {
        guard case .causal(let qp, let kp) = mask else { return [Int](repeating: s.keyLength, count: s.queryLength) }
        var allowed = [Int](repeating: 0, count: s.queryLength)
        for i in 0..<s.queryLength {
            var a = 0
            while a < s.keyLength && kp[a] <= qp[i] { a += 1 }
            allowed[i] = a
        }
        return allowed
    }

    /// Fills `scores` `[rows, keys]` with P = exp(S·scale − lse) for query rows `rows` of one
    /// (batch, head) against its first `keys` keys, computing `lse` first when `computeLSE`
    /// (forward) or using the given one (backward). `q` and `lse` point at the head's row 0.
    static func probabilities(_ s: Shape, allowed: [Int], rows: Range<Int>, keys: Int, q: UnsafePointer<Float>,
                              k: UnsafePointer<Float>, scores: UnsafeMutablePointer<Float>,
                              lse: UnsafeMutablePointer<Float>, computeLSE: Bool) {
        let hs = s.headDim
        BLAS.sgemm(transA: false, transB: true, m: rows.count, n: keys, k: hs, alpha: s.scale,
                   a: q + rows.lowerBound * s.heads * hs, lda: s.heads * hs, b: k, ldb: s.kvHeads * hs,
                   beta: 0, c: scores, ldc: keys)
        for i in rows {
            let row = scores + (i - rows.lowerBound) * keys, seen = allowed[i]
            if computeLSE {
                let m = vectorMax(row, seen)
                let sum = expShiftedSum(row, seen, shift: m)   // row ← exp(row − m)
                lse[i] = seen == 0 ? -Float.infinity : m + Foundation.log(sum)
                let inv = 1 / sum
                for j in 0..<seen { row[j] *= inv }
            } else {
                expShifted(row, seen, shift: lse[i])
            }
            for j in seen..<keys { row[j] = 0 }
        }
    }

    /// The query-row blocks and, for each, how many keys it reads.
    static func blocks(_ s: Shape, allowed: [Int]) -> [(rows: Range<Int>, keys: Int)] {
        stride(from: 0, to: s.queryLength, by: queryBlock).map { r0 in
            let rows = r0..<min(r0 + queryBlock, s.queryLength)
            return (rows, rows.map { allowed[$0] }.max() ?? 0)
        }
    }

    /// O `[B, Tq, nh, hs]` and lse `[B, nh, Tq]` from q `[B, Tq, nh, hs]`, k, v `[B, Tk, nkv, hs]`.
    /// Work is split over (batch, key/value head) groups, one per core at a time: a group owns
    /// its query heads' output rows, so no two tasks write the same memory.
    public static func forward(_ s: Shape, mask: AttentionMask, q: [Float], k: [Float], v: [Float])
        -> (out: [Float], lse: [Float]) {
        let (tq, tk, hs, rep) = (s.queryLength, s.keyLength, s.headDim, s.heads / s.kvHeads)
        let qStride = s.heads * hs, kStride = s.kvHeads * hs
        let allowed = allowedKeys(s, mask: mask), blocks = blocks(s, allowed: allowed)
        var out = [Float](repeating: 0, count: s.batch * tq * qStride)
        var lse = [Float](repeating: -Float.infinity, count: s.batch * s.heads * tq)
        q.withUnsafeBufferPointer { pq in k.withUnsafeBufferPointer { pk in v.withUnsafeBufferPointer { pv in
        out.withUnsafeMutableBufferPointer { po in lse.withUnsafeMutableBufferPointer { pl in
            let (Q, K, V, O, L) = (pq.baseAddress!, pk.baseAddress!, pv.baseAddress!, po.baseAddress!, pl.baseAddress!)
            parallelFor(s.batch * s.kvHeads) { group in
                let (b, kvh) = (group / s.kvHeads, group % s.kvHeads)
                var scores = [Float](repeating: 0, count: min(queryBlock, tq) * tk)      // [rows, keys]
                scores.withUnsafeMutableBufferPointer { ps in
                    let P = ps.baseAddress!, ko = b * tk * kStride + kvh * hs
                    for h in (kvh * rep)..<((kvh + 1) * rep) {
                        let qo = b * tq * qStride + h * hs
                        for (rows, keys) in blocks where keys > 0 {
                            probabilities(s, allowed: allowed, rows: rows, keys: keys, q: Q + qo, k: K + ko, scores: P,
                                          lse: L + (b * s.heads + h) * tq, computeLSE: true)
                            BLAS.sgemm(transA: false, transB: false, m: rows.count, n: hs, k: keys,   // O = P V
                                       a: P, lda: keys, b: V + ko, ldb: kStride, beta: 0,
                                       c: O + qo + rows.lowerBound * qStride, ldc: qStride)
                        }
                    }
                }
            }
        } } } } }
        return (out, lse)
    }

    /// Accumulates dq, dk, dv (same layouts as q, k, v) from dO, given O and lse.
    /// Split over (batch, key/value head) groups like the forward: a group owns its dk, dv
    /// rows and its query heads' dq rows.
    public static func backward(_ s: Shape, mask: AttentionMask, q: [Float], k: [Float], v: [Float],
                                out: [Float], lse: [Float], gradOut: [Float],
                                dq: UnsafeMutablePointer<Float>?, dk: UnsafeMutablePointer<Float>?,
                                dv: UnsafeMutablePointer<Float>?) {
        let (tq, tk, hs, rep) = (s.queryLength, s.keyLength, s.headDim, s.heads / s.kvHeads)
        let qStride = s.heads * hs, kStride = s.kvHeads * hs
        let allowed = allowedKeys(s, mask: mask), blocks = blocks(s, allowed: allowed)
        q.withUnsafeBufferPointer { pq in k.withUnsafeBufferPointer { pk in v.withUnsafeBufferPointer { pv in
        out.withUnsafeBufferPointer { po in gradOut.withUnsafeBufferPointer { pg in lse.withUnsafeBufferPointer { pl in
            let (Q, K, V, O, G) = (pq.baseAddress!, pk.baseAddress!, pv.baseAddress!, po.baseAddress!, pg.baseAddress!)
            let L = UnsafeMutablePointer(mutating: pl.baseAddress!)   // only read: computeLSE is false
            parallelFor(s.batch * s.kvHeads) { group in
                let (b, kvh) = (group / s.kvHeads, group % s.kvHeads)
                let ko = b * tk * kStride + kvh * hs
                var scratch = [Float](repeating: 0, count: 2 * min(queryBlock, tq) * tk)   // P, dS [rows, keys]
                scratch.withUnsafeMutableBufferPointer { buf in
                    let P = buf.baseAddress!, dS = P + min(queryBlock, tq) * tk
                    for h in (kvh * rep)..<((kvh + 1) * rep) {
                        let qo = b * tq * qStride + h * hs
                        for (rows, keys) in blocks where keys > 0 {
                            let r0 = rows.lowerBound
                            probabilities(s, allowed: allowed, rows: rows, keys: keys, q: Q + qo, k: K + ko, scores: P,
                                          lse: L + (b * s.heads + h) * tq, computeLSE: false)
                            if let dv {   // dV += Pᵀ dO
                                BLAS.sgemm(transA: true, transB: false, m: keys, n: hs, k: rows.count, a: P, lda: keys,
                                           b: G + qo + r0 * qStride, ldb: qStride, beta: 1, c: dv + ko, ldc: kStride)
                            }
                            guard dq != nil || dk != nil else { continue }
                            // dP = dO Vᵀ;  D = rowsum(dO ⊙ O);  dS = P ⊙ (dP − D)
                            BLAS.sgemm(transA: false, transB: true, m: rows.count, n: keys, k: hs,
                                       a: G + qo + r0 * qStride, lda: qStride, b: V + ko, ldb: kStride,
                                       beta: 0, c: dS, ldc: keys)
                            for i in rows {
                                let d = vectorDot(G + qo + i * qStride, O + qo + i * qStride, hs)
                                let prow = P + (i - r0) * keys, drow = dS + (i - r0) * keys
                                for j in 0..<keys { drow[j] = prow[j] * (drow[j] - d) }
                            }
                            if let dq {   // dQ += dS K · scale
                                BLAS.sgemm(transA: false, transB: false, m: rows.count, n: hs, k: keys, alpha: s.scale,
                                           a: dS, lda: keys, b: K + ko, ldb: kStride, beta: 1,
                                           c: dq + qo + r0 * qStride, ldc: qStride)
                            }
                            if let dk {   // dK += dSᵀ Q · scale
                                BLAS.sgemm(transA: true, transB: false, m: keys, n: hs, k: rows.count, alpha: s.scale,
                                           a: dS, lda: keys, b: Q + qo + r0 * qStride, ldb: qStride, beta: 1,
                                           c: dk + ko, ldc: kStride)
                            }
                        }
                    }
                }
            }
        } } } } } }
    }
}

extension Tensor {
    /// Grouped-query attention: q `[B, Tq, nh, hs]`, k and v `[B, Tk, nkv, hs]` → the output
    /// `[B, Tq, nh, hs]` (differentiable) and the log-sum-exp of each query row `[B, nh, Tq]`.
    public static func attention(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask)
        -> (out: Tensor, lse: [Float]) {
        precondition(q.rank == 4 && k.rank == 4 && v.shape == k.shape && q.shape[0] == k.shape[0]
                     && q.shape[3] == k.shape[3],
                     "attention: q \(q.shape), k \(k.shape), v \(v.shape) must be [B, T, heads, hs]")
        let s = AttentionKernel.Shape(batch: q.shape[0], queryLength: q.shape[1], keyLength: k.shape[1],
                                      heads: q.shape[2], kvHeads: k.shape[2], headDim: q.shape[3])
        if case .causal(let qp, let kp) = mask {
            precondition(qp.count == s.queryLength && kp.count == s.keyLength, "attention mask positions "
                         + "(\(qp.count), \(kp.count)) do not match lengths (\(s.queryLength), \(s.keyLength))")
        }
        let (o, lse) = AttentionKernel.forward(s, mask: mask, q: q.data, k: k.data, v: v.data)
        let out = result(q.shape, o, parents: [q, k, v]) { out in
            var dq: [Float]? = q.requiresGrad ? [Float](repeating: 0, count: q.count) : nil
            var dk: [Float]? = k.requiresGrad ? [Float](repeating: 0, count: k.count) : nil
            var dv: [Float]? = v.requiresGrad ? [Float](repeating: 0, count: v.count) : nil
            func with(_ a: inout [Float]?, _ body: (UnsafeMutablePointer<Float>?) -> Void) {
                if a == nil { body(nil) } else { a!.withUnsafeMutableBufferPointer { body($0.baseAddress!) } }
            }
            with(&dq) { pdq in with(&dk) { pdk in with(&dv) { pdv in
                AttentionKernel.backward(s, mask: mask, q: q.data, k: k.data, v: v.data, out: o, lse: lse,
                                         gradOut: out.grad!, dq: pdq, dk: pdk, dv: pdv)
            } } }
            if let dq { q.accumulateGrad(dq) }
            if let dk { k.accumulateGrad(dk) }
            if let dv { v.accumulateGrad(dv) }
        }
        return (out, lse)
    }
}
