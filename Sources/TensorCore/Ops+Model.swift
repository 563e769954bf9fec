// The fused ops of a Llama block: embedding lookup, RMSNorm, rotary position embedding and
// softmax cross-entropy, each a forward kernel with its hand-written backward right under it.
// Legend: N = rows (tokens), C = features, V = vocabulary, B = batch, T = sequence,
// nh = heads, hs = head size.

import Foundation

extension Tensor {
    /// Looks up rows of `weight` `[V, C]` for `ids` (any shape S) → `[S.., C]`.
    /// Backward scatters each row's gradient back to its token's row (a token seen twice adds up).
    public static func embedding(_ ids: [Int], shape idsShape: [Int], weight: Tensor) -> Tensor {
        precondition(weight.rank == 2, "embedding weight must be [V, C], got \(weight.shape)")
        precondition(idsShape.reduce(1, *) == ids.count, "ids shape \(idsShape) ≠ \(ids.count) ids")
        let (vocab, c) = (weight.shape[0], weight.shape[1])
        for id in ids { precondition(id >= 0 && id < vocab, "token id \(id) outside the vocabulary 0..<\(vocab)") }
        let y = weight.withValues { w in uninitializedFloats(ids.count * c) { py in
            for (r, id) in ids.enumerated() { (py + r * c).update(from: w + id * c, count: c) }   // [N, C]
        } }
        return result(idsShape + [c], y, parents: [weight]) { out in
            out.withGrad { g in weight.accumulateGrad { gw in
                for (r, id) in ids.enumerated() {
                    let dst = gw + id * c, src = g + r * c
                    for j in 0..<c { dst[j] += src[j] }
                }
            } }
        }
    }

    /// RMSNorm as Llama computes it: y = w ⊙ x / sqrt(mean(x²) + eps), over the last dim.
    /// x `[.., C]`, weight `[C]`. Rows are independent, so they are split across cores.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) -> Tensor {
        let (n, c) = x.rowsAndColumns
        precondition(weight.shape == [c], "rmsNorm: weight \(weight.shape) does not match features \(c)")
        let grain = max(1, 16_384 / max(c, 1))
        var inv = [Float](repeating: 0, count: n)          // [N] 1 / rms, saved for backward
        let y = inv.withUnsafeMutableBufferPointer { pinv in
            x.withValues { px in weight.withValues { w in uninitializedFloats(n * c) { py in
                parallelRanges(n, grain: grain) { rows in
                    for r in rows {
                        let row = px + r * c, out = py + r * c
                        let ir = 1 / (vectorDot(row, row, c) / Float(c) + eps).squareRoot()
                        pinv[r] = ir
                        for j in 0..<c { out[j] = w[j] * (row[j] * ir) }
                    }
                }
            } } }
        }
        return result(x.shape, y, parents: [x, weight]) { out in
            out.withGrad { g in x.withValues { px in weight.withValues { w in
                // dx = r · (w⊙g) − r³/C · x · Σ(w⊙g⊙x);  dw = Σ_rows g ⊙ x · r
                x.accumulateGrad { gx in
                    parallelRanges(n, grain: grain) { rows in
                        for r in rows {
                            let row = px + r * c, gr = g + r * c, ir = inv[r]
                            var lanes = SIMD16<Float>(repeating: 0), tail: Float = 0   // Σ w⊙g⊙x
                            forEach16(0..<c) { j in lanes += load16(w + j) * load16(gr + j) * load16(row + j) }
                                scalar: { j in tail += w[j] * gr[j] * row[j] }
                            let dot = lanes.sum() + tail
                            let k = ir * ir * ir * dot / Float(c)
                            for j in 0..<c { gx[r * c + j] += ir * w[j] * gr[j] - k * row[j] }
                        }
                    }
                }
                weight.accumulateGrad { gw in
                    // Each core sums its rows into its own partial; partials are added in a fixed
                    // order, so the result does not depend on thread timing.
                    let parts = max(1, min(coreCount, n / grain))
                    var partial = [Float](repeating: 0, count: parts * c)
                    partial.withUnsafeMutableBufferPointer { pp in
                        parallelFor(parts) { part in
                            let acc = pp.baseAddress! + part * c
                            for r in (part * n / parts)..<((part + 1) * n / parts) {
                                let row = px + r * c, gr = g + r * c, ir = inv[r]
                                for j in 0..<c { acc[j] += gr[j] * row[j] * ir }
                            }
                        }
                        for part in 0..<parts { for j in 0..<c { gw[j] += pp[part * c + j] } }
                    }
                }
            } } }
        }
    }
}

/// cos and sin of the rotary angles for a list of positions, as Hugging Face Llama computes
/// them: inv_freq[i] = 1 / θ^(2i / hs) in float32, angle = position · inv_freq[i], and the
/// same angle used for dimension i and i + hs/2 (the rotate-half convention).
public struct RoPETable: Sendable {
    public let headDim: Int
    public let positions: [Int]
    /// `[T, hs/2]` each.
    public let cos: [Float], sin: [Float]

    public init(theta: Double, headDim: Int, positions: [Int]) {
        precondition(headDim % 2 == 0, "RoPE needs an even head size, got \(headDim)")
        self.headDim = headDim
        self.positions = positions
        let half = headDim / 2
        let invFreq = (0..<half).map { i -> Float in
            1 / powf(Float(theta), Float(2 * i) / Float(headDim))
        }
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (t, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(p) * invFreq[i]   // float32 product, as transformers does
                c[t * half + i] = Float(Foundation.cos(Double(angle)))
                s[t * half + i] = Float(Foundation.sin(Double(angle)))
            }
        }
        cos = c
        sin = s
    }
}

extension Tensor {
    /// Rotary position embedding on x `[B, T, heads, hs]` (rotate-half convention):
    /// out[i] = x[i]·cos − x[i+h]·sin,  out[i+h] = x[i+h]·cos + x[i]·sin,  h = hs/2.
    /// Backward applies the inverse rotation (the transpose: sin → −sin).
    public func rope(_ table: RoPETable) -> Tensor {
        precondition(rank == 4 && shape[3] == table.headDim && shape[1] == table.positions.count,
                     "rope: x must be [B, T, heads, \(table.headDim)] with T = \(table.positions.count), got \(shape)")
        let (b, t, heads, hs) = (shape[0], shape[1], shape[2], shape[3])
        let half = hs / 2
        func rotate(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, sign: Float, accumulate: Bool) {
            table.cos.withUnsafeBufferPointer { cb in table.sin.withUnsafeBufferPointer { sb in
                parallelRanges(b * t, grain: max(1, 16_384 / max(heads * hs, 1))) { tokens in
                    for token in tokens {   // token = bi · T + ti
                        let ti = token % t
                        let cs = cb.baseAddress! + ti * half, sn = sb.baseAddress! + ti * half
                        for h in 0..<heads {
                            let o = (token * heads + h) * hs
                            for i in 0..<half {
                                let x1 = src[o + i], x2 = src[o + i + half], s = sign * sn[i]
                                let y1 = x1 * cs[i] - x2 * s, y2 = x2 * cs[i] + x1 * s
                                if accumulate { dst[o + i] += y1; dst[o + i + half] += y2 }
                                else { dst[o + i] = y1; dst[o + i + half] = y2 }
                            }
                        }
                    }
                }
            } }
        }
        let y = withValues { px in uninitializedFloats(count) { py in rotate(px, py, sign: 1, accumulate: false) } }
        return Tensor.result(shape, y, parents: [self]) { out in
            out.withGrad { g in self.accumulateGrad { gx in rotate(g, gx, sign: -1, accumulate: true) } }
        }
    }

    /// Mean softmax cross-entropy of `logits` `[N, V]` (or `[.., V]`) against `targets` `[N]`,
    /// skipping rows whose target is `ignoreIndex`, as `torch.nn.functional.cross_entropy`.
    /// With `reduction: .sum` it returns the sum instead (for averaging over several shards).
    /// All rows ignored gives NaN with `.mean`, as PyTorch does (0 / 0).
    public static func crossEntropy(_ logits: Tensor, targets: [Int], ignoreIndex: Int = -100,
                                    reduction: Reduction = .mean) -> Tensor {
        let (n, v) = logits.rowsAndColumns
        precondition(targets.count == n, "crossEntropy: \(targets.count) targets for \(n) rows")
        for t in targets { precondition(t == ignoreIndex || (t >= 0 && t < v), "target \(t) outside 0..<\(v)") }
        let valid = targets.filter { $0 != ignoreIndex }.count
        var lse = [Float](repeating: 0, count: n)          // [N] log Σ exp, saved for backward
        var rowLoss = [Float](repeating: 0, count: n)      // [N]
        lse.withUnsafeMutableBufferPointer { pl in rowLoss.withUnsafeMutableBufferPointer { prl in
            logits.withValues { px in
                parallelRanges(n, grain: max(1, 65_536 / max(v, 1))) { rows in
                    var scratch = [Float](repeating: 0, count: v)
                    scratch.withUnsafeMutableBufferPointer { tmp in
                        for r in rows where targets[r] != ignoreIndex {
                            let row = px + r * v
                            let m = vectorMax(row, v)
                            tmp.baseAddress!.update(from: row, count: v)
                            let s = expShiftedSum(tmp.baseAddress!, v, shift: m)
                            pl[r] = m + Foundation.log(s)
                            prl[r] = pl[r] - row[targets[r]]
                        }
                    }
                }
            }
        } }
        let total = rowLoss.reduce(0.0) { $0 + Double($1) }   // fixed order: deterministic
        let scale: Float = reduction == .mean ? 1 / Float(valid) : 1
        let loss = Float(total) * scale
        return result([], [loss], parents: [logits]) { out in
            let g = out.grad![0] * scale
            logits.withValues { px in logits.accumulateGrad { gl in
                // d/dlogits = (softmax − onehot(target)) · g
                parallelRanges(n, grain: max(1, 65_536 / max(v, 1))) { rows in
                    for r in rows where targets[r] != ignoreIndex {
                        let row = px + r * v, gr = gl + r * v, l = lse[r]
                        scaledExpShifted(row, v, shift: l, scale: g, into: gr, accumulate: true)
                        gr[targets[r]] -= g
                    }
                }
            } }
        }
    }

    /// How a loss over rows is reduced.
    public enum Reduction: Sendable { case mean, sum }
}
