// Fused grouped-query attention against a naive double-precision softmax attention written here
// (output and the returned log-sum-exp), backward by float32 central differences and against
// central differences of the double forward. Masks: causal, none, causal with Tq ≠ Tk by positions.
// Legend: B = batch, Tq/Tk = query/key length, nh = query heads, nkv = key/value heads, hs = head size.

import Foundation
import TensorCore
import XCTest

final class AttentionTests: XCTestCase {
    struct Case {
        var b = 2, tq = 5, tk = 5, nh = 4, nkv = 2, hs = 8
        var mask: AttentionMask
        var qShape: [Int] { [b, tq, nh, hs] }
        var kShape: [Int] { [b, tk, nkv, hs] }

        func inputs(seed: UInt64) -> [Tensor] {
            [randomTensor(qShape, "q", seed: seed), randomTensor(kShape, "k", seed: seed + 1),
             randomTensor(kShape, "v", seed: seed + 2)]
        }
        func allowed(_ i: Int, _ j: Int) -> Bool {
            if case .causal(let qp, let kp) = mask { return kp[j] <= qp[i] }
            return true
        }

        /// Softmax attention in double, one (batch, head, query) at a time; query head h reads
        /// key/value head h / (nh / nkv), as Hugging Face's repeat_kv. lse is `[B, nh, Tq]`.
        func reference(_ q: [Double], _ k: [Double], _ v: [Double]) -> (out: [Double], lse: [Double]) {
            var out = [Double](repeating: 0, count: b * tq * nh * hs)
            var lse = [Double](repeating: 0, count: b * nh * tq)
            for bi in 0..<b { for h in 0..<nh { for i in 0..<tq {
                let kvh = h / (nh / nkv)
                let qo = ((bi * tq + i) * nh + h) * hs
                var scores = [Double]()
                for j in 0..<tk where allowed(i, j) {
                    let ko = ((bi * tk + j) * nkv + kvh) * hs
                    scores.append((0..<hs).reduce(0.0) { $0 + q[qo + $1] * k[ko + $1] } / Double(hs).squareRoot())
                }
                guard let m = scores.max() else { lse[(bi * nh + h) * tq + i] = -.infinity; continue }
                let l = m + log(scores.reduce(0) { $0 + exp($1 - m) })
                lse[(bi * nh + h) * tq + i] = l
                var n = 0
                for j in 0..<tk where allowed(i, j) {
                    let p = exp(scores[n] - l), vo = ((bi * tk + j) * nkv + kvh) * hs
                    for d in 0..<hs { out[qo + d] += p * v[vo + d] }
                    n += 1
                }
            } } }
            return (out, lse)
        }
    }

    /// Scores by sgemm, exp by fastExp (~2 ulp), P·V by sgemm: outputs are weighted means of values
    /// in [-1, 1] and lse is O(1), each a few ulp off the double reference; ~40 ulp allowed.
    let forwardTolerance = Tolerance(relative: 5e-6, absolute: 5e-7)

    func checkForward(_ c: Case, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let x = c.inputs(seed: 1)
        let (out, lse) = Tensor.attention(q: x[0], k: x[1], v: x[2], mask: c.mask)
        XCTAssertEqual(out.shape, c.qShape, file: file, line: line)
        let ref = c.reference(x[0].data.map(Double.init), x[1].data.map(Double.init), x[2].data.map(Double.init))
        assertClose("\(label) out", out.data, ref.out, shape: c.qShape, tolerance: forwardTolerance,
                    file: file, line: line)
        assertClose("\(label) lse", lse, ref.lse, shape: [c.b, c.nh, c.tq], tolerance: forwardTolerance,
                    file: file, line: line)
    }

    func checkBackward(_ c: Case, _ label: String, zeroGradient: Set<Int> = [],
                       file: StaticString = #filePath, line: UInt = #line) {
        let x = c.inputs(seed: 4)
        let f: ([Tensor]) -> Tensor = { Tensor.attention(q: $0[0], k: $0[1], v: $0[2], mask: c.mask).out }
        assertGradCheck(label, x, zeroGradient: zeroGradient, file: file, line: line, f)
        let r = GradCheck.checkAgainstReference(label, x, reference: { c.reference($0[0], $0[1], $0[2]).out }, f)
        assertGradients(r, x, zeroGradient: zeroGradient, file: file, line: line)
    }

    // MARK: Causal GQA, heads 4, kvHeads 2

    func testCausalGQAForward() { checkForward(Case(mask: .causal(length: 5)), "causal GQA") }
    func testCausalGQABackward() { checkBackward(Case(mask: .causal(length: 5)), "causal GQA") }

    // MARK: No mask, Tq ≠ Tk

    func testNoMaskForward() { checkForward(Case(tq: 3, tk: 4, mask: .none), "mask none") }
    func testNoMaskBackward() { checkBackward(Case(tq: 3, tk: 4, mask: .none), "mask none") }

    // MARK: Causal by positions: queries 4, 5, 6 against keys 0 … 6 (a later chunk of a sequence)

    static let chunk = Case(tq: 3, tk: 7, mask: .causal(queryPositions: [4, 5, 6], keyPositions: Array(0..<7)))
    func testCausalChunkForward() { checkForward(Self.chunk, "causal q [4, 5, 6] k 0..<7") }
    func testCausalChunkBackward() { checkBackward(Self.chunk, "causal q [4, 5, 6] k 0..<7") }

    func testCausalChunkEqualsTheLastRowsOfFullCausal() {
        // Queries 4…6 against all 7 keys = rows 4…6 of the ordinary causal attention over 7 tokens.
        let full = Case(tq: 7, tk: 7, mask: .causal(length: 7))
        let x = full.inputs(seed: 7)
        let qTail = x[0].sliced(dim: 1, start: 4, length: 3)
        let whole = Tensor.attention(q: x[0], k: x[1], v: x[2], mask: full.mask)
        let part = Tensor.attention(q: qTail, k: x[1], v: x[2], mask: Self.chunk.mask)
        // Same math, but sgemm over 3 or 7 rows may block the sums differently: allow a few ulp.
        let exact = Tolerance(relative: 1e-6, absolute: 1e-7)
        assertClose("chunk vs full out", part.out.data, whole.out.sliced(dim: 1, start: 4, length: 3).data,
                    shape: [2, 3, 4, 8], tolerance: exact)
        var tail = [Float]()                                    // [B, nh, 3] of whole's [B, nh, 7]
        for bh in 0..<(2 * 4) { tail += whole.lse[(bh * 7 + 4)..<(bh * 7 + 7)] }
        assertClose("chunk vs full lse", part.lse, tail, shape: [2, 4, 3], tolerance: exact)
    }

    // MARK: Edge cases

    func testQueryThatSeesNoKey() {
        // Query positions [1, 3] against keys [2, 3]: the first query sees nothing. Documented result:
        // a zero output row, lse = −∞, and no NaN anywhere, forward or backward (ring attention
        // meets such blocks).
        let c = Case(b: 1, tq: 2, tk: 2, mask: .causal(queryPositions: [1, 3], keyPositions: [2, 3]))
        checkForward(c, "fully masked row")
        let x = c.inputs(seed: 9)
        let (out, lse) = Tensor.attention(q: x[0], k: x[1], v: x[2], mask: c.mask)
        XCTAssertEqual(Array(out.data[0..<32]), [Float](repeating: 0, count: 32), "query 0, all heads")
        XCTAssertEqual(lse[0], -.infinity)
        out.backward(gradient: GradCheck.projection(count: out.count, seed: 3))
        for t in x { XCTAssertTrue(t.grad!.allSatisfy(\.isFinite), "\(t.name) gradient has NaN or ∞") }
        XCTAssertEqual(Array(x[0].grad![0..<32]), [Float](repeating: 0, count: 32), "a query that sees no key")
        checkBackward(c, "fully masked row")
    }

    func testGQAEqualsRepeatedKeyValueHeads() {
        // nkv = 2 with rep = 2 is the same as nkv = 4 with each k/v head repeated (repeat_kv:
        // heads 0, 1 read k/v head 0; heads 2, 3 read head 1), and dk, dv sum over the repeats.
        let c = Case(mask: .causal(length: 5))
        let x = c.inputs(seed: 10)
        func repeated(_ t: Tensor) -> Tensor {   // [B, Tk, 2, hs] → [B, Tk, 4, hs]
            let heads = (0..<2).map { t.sliced(dim: 2, start: $0, length: 1) }
            return Tensor.concat([heads[0], heads[0], heads[1], heads[1]], dim: 2)
        }
        let w = GradCheck.projection(count: x[0].count, seed: 5)
        let gqa = Tensor.attention(q: x[0], k: x[1], v: x[2], mask: c.mask).out
        gqa.backward(gradient: w)
        let grads = x.map { $0.grad! }
        for t in x { t.zeroGrad() }
        let mha = Tensor.attention(q: x[0], k: repeated(x[1]), v: repeated(x[2]), mask: c.mask).out
        mha.backward(gradient: w)
        // Same sums with other strides; dk, dv add the two repeats in another order: a few ulp.
        assertClose("GQA vs repeated out", gqa.data, mha.data, shape: c.qShape,
                    tolerance: Tolerance(relative: 1e-6, absolute: 1e-7))
        for (t, g) in zip(x, grads) {
            assertClose("GQA vs repeated d\(t.name)", g, t.grad!, shape: t.shape,
                        tolerance: Tolerance(relative: 1e-5, absolute: 1e-6))
        }
    }
}
