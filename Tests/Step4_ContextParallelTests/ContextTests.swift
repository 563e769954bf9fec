// Context parallelism against the single process: every rank's logits (its tokens' rows), the whole
// sequence's loss and every gradient, for cp 2 and 4 × contiguous and zigzag × ring and all-gather,
// grouped-query attention, tied and untied, with ignored targets; the log-sum-exp merge alone,
// including a fully masked block; and the picotron bug (no gradient average over cp) caught.
// Legend: B = batch, T = sequence, cp = ranks, Tl = T/cp.

import Distributed
import LessonKit
import LessonTesting
import Llama
import Step4_ContextParallel
import TensorCore
import XCTest

final class ContextTests: XCTestCase {
    /// The lesson problem (8 query heads, 4 key/value heads) with 4 rows of 16 tokens, and some
    /// targets ignored (not the same number on every rank).
    func problem(tied: Bool = false) -> (LessonProblem, [Int]) {
        var c = LessonProblem.lessonConfig
        c.tieWordEmbeddings = tied
        let p = LessonProblem(config: c, batch: 4, length: 16)
        var targets = p.targets
        for i in [0, 1, 2, 5, 17, 40, 63] { targets[i] = LlamaForCausalLM.ignoreIndex }
        return (p, targets)
    }

    func reference(_ p: LessonProblem, _ targets: [Int]) -> (loss: Float, logits: [Float], grads: [String: [Float]]) {
        let model = p.makeModel()
        let logits = model.logits(p.inputs, batch: p.batch, length: p.length)
        let loss = model.lossFunction(logits, targets)
        loss.backward()
        return (loss.item, logits.data, Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.grad!) }))
    }

    /// One step on cp ranks; gradients averaged over the cp group (unless `average` is false).
    func run(_ p: LessonProblem, _ targets: [Int], cp: Int, layout: ContextLayout, attention: ContextAttention,
             average: Bool = true) throws -> [(loss: Float, logits: [Float], positions: [Int], grads: [String: [Float]])] {
        try onRanks(cp) { comm in
            let positions = (0 ..< cp).map { contextPositions(length: p.length, ranks: cp, rank: $0, layout: layout) }
            let mine = positions[comm.rank]
            let model = p.makeModel()
            let group = applyContextParallel(to: model, group: comm, positions: positions, attention: attention)
            let ids = contextShard(p.inputs, batch: p.batch, length: p.length, positions: mine)
            let y = contextShard(targets, batch: p.batch, length: p.length, positions: mine)
            let logits = model.logits(ids, batch: p.batch, length: mine.count, positions: mine)   // [B, Tl, V]
            let loss = model.lossFunction(logits, y)
            loss.backward()
            try group.check()
            var grads = [String: [Float]]()
            for (name, t) in model.namedParameters {
                var g = t.grad!
                if average { try comm.allReduce(&g, op: .average) }
                grads[name] = g
            }
            let total = try comm.allReduced([loss.item], op: .average)[0]   // (1/cp) Σ_r L_r = L
            return (total, logits.data, mine, grads)
        }
    }

    func verify(cp: Int, layout: ContextLayout, attention: ContextAttention, tied: Bool = false,
                file: StaticString = #filePath, line: UInt = #line) throws {
        let (p, targets) = problem(tied: tied)
        let ref = reference(p, targets), v = p.config.vocabSize
        let ranks = try run(p, targets, cp: cp, layout: layout, attention: attention)
        var checks = [Check]()
        for (r, result) in ranks.enumerated() {
            let want = contextShard((0 ..< p.batch * p.length).map { $0 }, batch: p.batch, length: p.length,
                                    positions: result.positions).flatMap { Array(ref.logits[($0 * v) ..< (($0 + 1) * v)]) }
            checks.append(check(r, "logits of this rank's tokens", got: result.logits, want: want,
                                hint: "attention or positions: each token must see every earlier token of the sequence"))
            checks.append(check(r, "loss", got: [result.loss], want: [ref.loss],
                                hint: "each rank's share: cp · (its summed loss) / (all ranks' counted targets)"))
            for (name, g) in result.grads {
                checks.append(check(r, "grad \(name)", got: g, want: ref.grads[name]!, hint: "gradients averaged over cp?"))
            }
        }
        assertPass(checks, "cp \(cp), \(layout.rawValue), \(attention.rawValue)\(tied ? ", tied" : ""): ", file: file, line: line)
    }

    func testEveryLayoutAndAttentionEqualsTheSingleProcess() throws {
        for cp in [2, 4] {
            for layout in ContextLayout.allCases {
                for attention in ContextAttention.allCases {
                    try verify(cp: cp, layout: layout, attention: attention)
                }
            }
        }
        try verify(cp: 2, layout: .zigzag, attention: .ring, tied: true)
    }

    /// picotron averages gradients over cp only when dp > 1: with cp 2, dp 1 each rank steps on
    /// its own share. The per-rank gradients are then far from the single process's.
    func testWithoutTheAverageOverCPTheGradientsAreWrong() throws {
        let (p, targets) = problem()
        let ref = reference(p, targets)
        let ranks = try run(p, targets, cp: 2, layout: .zigzag, attention: .ring, average: false)
        let g = ranks[0].grads["model.layers.0.mlp.up_proj.weight"]!, want = ref.grads["model.layers.0.mlp.up_proj.weight"]!
        let c = ReferenceCheck.compare("grad", got: g, want: want)
        XCTAssertFalse(c.passed, "one rank's gradient alone must not pass for the whole sequence's")
        XCTAssertGreaterThan(c.maxAbsDiff / c.scale, 0.1, "picotron measured up to 91% off at step 1")
    }

    func testMergingTwoHalvesEqualsAttendingToAll() {
        let (b, t, nh, nkv, hs) = (1, 4, 2, 1, 4)
        let q = randomValues(b * t * nh * hs, seed: 3, "q"), k = randomValues(b * 2 * t * nkv * hs, seed: 4, "k")
        let v = randomValues(b * 2 * t * nkv * hs, seed: 5, "v")
        let whole = AttentionKernel.Shape(batch: b, queryLength: t, keyLength: 2 * t, heads: nh, kvHeads: nkv, headDim: hs)
        let half = AttentionKernel.Shape(batch: b, queryLength: t, keyLength: t, heads: nh, kvHeads: nkv, headDim: hs)
        let all = AttentionKernel.forward(whole, mask: .none, q: q, k: k, v: v)
        let row = nkv * hs
        var (o, l) = AttentionKernel.forward(half, mask: .none, q: q, k: Array(k[..<(t * row)]), v: Array(v[..<(t * row)]))
        let second = AttentionKernel.forward(half, mask: .none, q: q, k: Array(k[(t * row)...]), v: Array(v[(t * row)...]))
        mergeAttention(&o, &l, second.out, second.lse, batch: b, queries: t, heads: nh, headDim: hs)
        assertPass([check(0, "merged output", got: o, want: all.out, hint: "the log-sum-exp weights"),
                    check(0, "merged lse", got: l, want: all.lse, hint: "m + log(e^(l1−m) + e^(l2−m))")])
        // A block no query may see (all its keys in the future) changes nothing, and neither does
        // merging into a row that saw nothing yet.
        var (o2, l2) = (o, l)
        mergeAttention(&o2, &l2, [Float](repeating: 7, count: o.count), [Float](repeating: -.infinity, count: l.count),
                       batch: b, queries: t, heads: nh, headDim: hs)
        XCTAssertEqual(o2, o)
        XCTAssertEqual(l2, l)
        var (empty, emptyLSE) = ([Float](repeating: 0, count: o.count), [Float](repeating: -.infinity, count: l.count))
        mergeAttention(&empty, &emptyLSE, o, l, batch: b, queries: t, heads: nh, headDim: hs)
        assertPass([check(0, "merged into nothing", got: empty, want: o, hint: "a −∞ lse weighs 0")])
        // Large scores: merging without the running max would overflow exp.
        var (big, bigLSE) = (o, l.map { $0 + 200 })
        mergeAttention(&big, &bigLSE, o, l.map { $0 + 200 }, batch: b, queries: t, heads: nh, headDim: hs)
        XCTAssertTrue(big.allSatisfy { $0.isFinite } && bigLSE.allSatisfy { $0.isFinite }, "overflow without the max")
    }

    func testPositionsOfBothLayouts() {
        XCTAssertEqual((0 ..< 2).map { contextPositions(length: 8, ranks: 2, rank: $0, layout: .contiguous) },
                       [[0, 1, 2, 3], [4, 5, 6, 7]])
        XCTAssertEqual((0 ..< 2).map { contextPositions(length: 8, ranks: 2, rank: $0, layout: .zigzag) },
                       [[0, 1, 6, 7], [2, 3, 4, 5]])
    }
}
