// Tasks 4.3–4.7: attention over a sequence cut across cp ranks against attention over the whole
// sequence (cp 2 and 4, both layouts, grouped-query heads), one call at a time: all-gather forward
// and backward, the log-sum-exp merge alone (a fully masked block, an empty row, large scores),
// which blocks the ring skips, the ring's forward, then its backward.
// Legend: B = batch, T = sequence, Tq = query rows, nh / nkv = query / key-value heads, hs = head size.

import LessonKit
import LessonTesting
@testable import Step4_ContextParallel
import TensorCore
import XCTest

final class AttentionTaskTests: XCTestCase {
    /// Runs `attention` for cp 2 and 4 × both layouts; stops at the first failing configuration.
    func verify(_ attention: ContextAttention, backward: Bool, task: String, keep: (Check) -> Bool = { _ in true },
                file: StaticString = #filePath, line: UInt = #line) {
        let c = AttentionCase()
        for cp in [2, 4] {
            for layout in ContextLayout.allCases {
                beginTasks()
                guard let checks = c.run(cp: cp, layout: layout, attention: attention, backward: backward, task: task,
                                         file: file, line: line) else { return }
                if unfinished(task, file: file, line: line) { return }
                let kept = checks.filter(keep)
                assertPass(kept, "cp \(cp), \(layout): ", file: file, line: line)
                if !kept.allSatisfy(\.comparison.passed) { return }
            }
        }
    }

    /// Task 4.3: all-gather attention's output, dQ, and the reduce-scattered dK and dV.
    func testStep4_3_allGatherAttentionEqualsTheWholeSequence() {
        verify(.allgather, backward: true, task: "Step4.3")
    }

    /// Task 4.4: two halves of the keys merged equal all of them; a block no query may see, merging
    /// into a row that saw nothing, a row that saw nothing in either, and scores near e^200.
    func testStep4_4_mergingTwoHalvesEqualsAttendingToAll() {
        beginTasks()
        let (b, t, nh, nkv, hs) = (2, 4, 2, 1, 4), row = nkv * hs
        let q = randomValues(b * t * nh * hs, seed: 3, "q")                                  // [B, Tq, nh, hs]
        let k = randomValues(b * 2 * t * row, seed: 4, "k"), v = randomValues(b * 2 * t * row, seed: 5, "v")
        let whole = AttentionKernel.Shape(batch: b, queryLength: t, keyLength: 2 * t, heads: nh, kvHeads: nkv, headDim: hs)
        let half = AttentionKernel.Shape(batch: b, queryLength: t, keyLength: t, heads: nh, kvHeads: nkv, headDim: hs)
        let all = AttentionKernel.forward(whole, mask: .none, q: q, k: k, v: v)
        let keys = { (x: [Float], part: Int) -> [Float] in                                 // [B, T, nkv, hs] of one half
            var out = [Float]()
            for bi in 0 ..< b { let start = (2 * bi + part) * t * row; out += x[start ..< start + t * row] }
            return out
        }
        let first = AttentionKernel.forward(half, mask: .none, q: q, k: keys(k, 0), v: keys(v, 0))
        let second = AttentionKernel.forward(half, mask: .none, q: q, k: keys(k, 1), v: keys(v, 1))
        let (o, l) = (first.out, first.lse), noLSE = [Float](repeating: -.infinity, count: l.count)
        let (garbage, zeros) = ([Float](repeating: 7, count: o.count), [Float](repeating: 0, count: o.count))
        let merged = { (o: [Float], l: [Float], o2: [Float], l2: [Float]) -> (o: [Float], lse: [Float]) in
            var (o, l) = (o, l)
            mergeAttention(&o, &l, o2, l2, batch: b, queries: t, heads: nh, headDim: hs)
            return (o, l)
        }
        let halves = merged(o, l, second.out, second.lse)
        let futureBlock = merged(o, l, garbage, noLSE)                  // every key in the future: lse −∞
        let intoNothing = merged(zeros, noLSE, o, l)                    // the first block a row sees
        let nothing = merged(zeros, noLSE, garbage, noLSE)              // a row that saw no key in either
        let big = merged(o, l.map { $0 + 200 }, second.out, second.lse.map { $0 + 200 })   // e^200 overflows float32
        if unfinished("Step4.4") { return }
        assertPass([check(0, "merged output", got: halves.o, want: all.out, hint: "O = e^(lse₁−lse)·O₁ + e^(lse₂−lse)·O₂"),
                    check(0, "merged lse", got: halves.lse, want: all.lse, hint: "m + log(e^(lse₁−m) + e^(lse₂−m))"),
                    check(0, "merged with a skipped block", got: futureBlock.o + futureBlock.lse, want: o + l,
                          hint: "a block with lse −∞ weighs e^(−∞) = 0"),
                    check(0, "merged into an empty row", got: intoNothing.o + intoNothing.lse, want: o + l,
                          hint: "a row with lse −∞ so far weighs 0: the result is the new block's"),
                    check(0, "a row that saw no key", got: nothing.o, want: zeros,
                          hint: "both lse −∞: m = −∞ and e^(lse − m) is NaN; leave the row as it is"),
                    check(0, "merged with scores near e^200", got: big.o + big.lse, want: all.out + all.lse.map { $0 + 200 },
                          hint: "subtract the running max m before exp, or e^lse overflows to +∞")])
        if !nothing.lse.allSatisfy({ $0 == -.infinity }) {
            failTask("a row that saw no key in either block must keep lse −∞, got \(nothing.lse.prefix(4))…")
        }
    }

    /// Task 4.5: nil (skip) for a block all in the queries' future, `.none` for one all in their
    /// past, the causal mask by positions otherwise: for hand-picked blocks and every step of the
    /// ring at cp 4 in both layouts.
    func testStep4_5_ringMaskSkipsTheFutureAndUnmasksThePast() {
        beginTasks()
        var cases: [(q: [Int], k: [Int])] = [([4, 5, 6, 7], [0, 1, 2, 3]), ([0, 1, 2, 3], [4, 5, 6, 7]),
                                             ([0, 1, 2, 3], [0, 1, 2, 3]), ([0, 1, 2, 3], [3, 4, 5, 6]),
                                             ([0, 1, 6, 7], [2, 3, 4, 5]), ([2, 3, 4, 5], [0, 1, 6, 7])]
        for layout in ContextLayout.allCases {
            let pos = expectedPositions(length: 16, cp: 4, layout: layout)
            for r in 0 ..< 4 { for owner in 0 ..< 4 where !cases.contains(where: { $0 == (pos[r], pos[owner]) }) {
                cases.append((pos[r], pos[owner]))
            } }
        }
        let got = cases.map { ringMask(queries: $0.q, keys: $0.k) }
        if unfinished("Step4.5") { return }
        var failures = 0
        for ((qp, kp), mask) in zip(cases, got) {
            let future = kp.allSatisfy { key in qp.allSatisfy { key > $0 } }
            let past = kp.allSatisfy { key in qp.allSatisfy { key <= $0 } }
            let want: AttentionMask? = future ? nil : past ? AttentionMask.none : .causal(queryPositions: qp, keyPositions: kp)
            guard Self.describe(mask) != Self.describe(want), failures < 3 else { continue }
            failTask("queries \(qp), keys \(kp): got \(Self.describe(mask)), want \(Self.describe(want))")
            failures += 1
        }
    }

    /// What a `ringMask` answer means, for a failure message.
    static func describe(_ m: AttentionMask?) -> String {
        switch m {
        case nil: return "nil (skipped)"
        case .some(.none): return ".none (no mask)"
        case .some(.causal(let qp, let kp)): return ".causal(queryPositions: \(qp), keyPositions: \(kp))"
        }
    }

    /// Task 4.6: the ring's output (forward only): the blocks pass from rank r to r + 1, so at step j
    /// rank r holds rank (r − j)'s; each is masked, skipped or merged as its positions say.
    func testStep4_6_ringForwardEqualsTheWholeSequence() {
        verify(.ring, backward: false, task: "Step4.6")
    }

    /// Task 4.7: the ring's dQ, and dK and dV brought back to their owners (needs the forward, 4.6).
    func testStep4_7_ringBackwardEqualsTheWholeSequence() {
        verify(.ring, backward: true, task: "Step4.7") { $0.comparison.name != "O" }
    }
}
