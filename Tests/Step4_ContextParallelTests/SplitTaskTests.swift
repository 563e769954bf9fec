// Tasks 4.1 and 4.2: who holds which tokens (both layouts, cp 2, 3, 4), and each rank's share of
// the loss (cp 2 and 4, ignored targets on some ranks, every target ignored on one), on their own:
// no attention runs.
// Legend: B = batch, T = sequence, Tl = T/cp, V = vocabulary, cp = ranks, r = rank.

import Distributed
import LessonKit
import LessonTesting
import Llama
import Step4_ContextParallel
import TensorCore
import XCTest

final class SplitTaskTests: XCTestCase {
    /// Task 4.1: contiguous runs and zigzag chunk pairs, as global positions.
    func testStep4_1_positionsOfBothLayouts() {
        beginTasks()
        let sizes = [(8, 2), (16, 2), (24, 3), (16, 4), (32, 4)]
        var got = [String: [[Int]]]()
        for (t, cp) in sizes {
            for layout in ContextLayout.allCases {
                got["\(layout) \(t) \(cp)"] = (0 ..< cp).map { contextPositions(length: t, ranks: cp, rank: $0, layout: layout) }
            }
        }
        if unfinished("Step4.1") { return }
        let literal: [ContextLayout: [[Int]]] = [.contiguous: [[0, 1, 2, 3], [4, 5, 6, 7]], .zigzag: [[0, 1, 6, 7], [2, 3, 4, 5]]]
        for (layout, want) in literal where got["\(layout) 8 2"] != want {
            failTask("\(layout), T 8, cp 2: got \(got["\(layout) 8 2"]!), want \(want)")
        }
        for (t, cp) in sizes {
            for layout in ContextLayout.allCases {
                let want = expectedPositions(length: t, cp: cp, layout: layout)
                for r in 0 ..< cp where got["\(layout) \(t) \(cp)"]![r] != want[r] {
                    let hint = layout == .contiguous ? "r·T/cp ..< (r+1)·T/cp"
                        : "chunks r and 2·cp − 1 − r of 2·cp, each T/(2·cp) tokens"
                    failTask("\(layout), T \(t), cp \(cp), rank \(r): got \(got["\(layout) \(t) \(cp)"]![r]), "
                             + "want \(want[r]) (global positions: \(hint))")
                    return
                }
            }
        }
    }

    /// Task 4.2: every rank's loss share on its rows of the same logits; their average must be the
    /// single process's mean, and each rank's gradient of the logits cp times the reference's rows.
    func testStep4_2_lossSharesAverageToTheMean() {
        for cp in [2, 4] {
            beginTasks()
            let p = LessonProblem(batch: 2, length: 8)
            let (b, t, v, tl) = (p.batch, p.length, p.config.vocabSize, p.length / cp)
            let logits = randomValues(b * t * v, seed: 7, "logits").map { 3 * $0 }         // [B, T, V]
            var targets = p.targets                                                          // [B, T]
            for i in [0, 3, 9] { targets[i] = LlamaForCausalLM.ignoreIndex }                 // uneven counts
            if cp == 4 { for bi in 0 ..< b { for i in tl ..< 2 * tl { targets[bi * t + i] = LlamaForCausalLM.ignoreIndex } } }
            let ref = Tensor(shape: [b, t, v], data: logits, requiresGrad: true)
            let refLoss = p.makeModel().lossFunction(ref, targets)                           // the single process's
            refLoss.backward()
            let positions = (0 ..< cp).map { Array(($0 * tl) ..< (($0 + 1) * tl)) }
            let rows = { (x: [Float], r: Int) in contextShard(Array(0 ..< b * t), batch: b, length: t, positions: positions[r])
                .flatMap { x[($0 * v) ..< (($0 + 1) * v)] } }
            let ranks = onRanks(cp, task: "Step4.2") { comm -> (loss: Float, grad: [Float]) in
                let model = p.makeModel()
                let group = applyContextParallel(to: model, group: comm, positions: positions)
                let mine = Tensor(shape: [b, tl, v], data: rows(logits, comm.rank), requiresGrad: true)
                let loss = model.lossFunction(mine, contextShard(targets, batch: b, length: t, positions: positions[comm.rank]))
                loss.backward()
                try group.check()
                return (loss.item, mine.grad ?? [])
            }
            guard let ranks else { return }
            if unfinished("Step4.2") { return }
            let average = ranks.map(\.loss).reduce(0, +) / Float(cp)
            var checks = [check(0, "(1/cp) Σ_r L_r", got: [average], want: [refLoss.item],
                                hint: "L_r = cp · n_r / n · (this rank's mean), n = Σ n_r all-reduced over the group")]
            for (r, result) in ranks.enumerated() {
                checks.append(check(r, "∂L_r/∂logits / cp", got: result.grad.map { $0 / Float(cp) }, want: rows(ref.grad!, r),
                                    hint: "a rank with no counted target returns 0 · logits.sum(): loss 0, gradient 0"))
            }
            assertPass(checks, "cp \(cp): ")
        }
    }
}
