// Tasks 2.7 and 2.8: the vocab-parallel embedding and cross-entropy against the ordinary ones.
// Legend: N = tokens, C = hidden, V = vocabulary, tp = ranks.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import XCTest

final class VocabTests: XCTestCase {
    let (v, c) = (16, 6)

    /// Task 2.7: tokens outside a rank's shard contribute zeros, the all-reduce (g) fills in the
    /// owner's rows; backward touches only owned rows.
    func testStep2_7_vocabParallelEmbedding() throws {
        let (v, c) = (self.v, self.c)
        let w = randomValues(v * c, seed: 20, "E")
        let ids = [0, 15, 3, 8, 8, 12, 7, 4, 1, 11]                                 // [2, 5], 8 twice
        let r = randomValues(ids.count * c, seed: 21, "R")
        let wt = Tensor(shape: [v, c], data: w, requiresGrad: true)
        let h = Tensor.embedding(ids, shape: [2, 5], weight: wt)
        (h * Tensor(shape: h.shape, data: r)).sum().backward()
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = try onRanks(tp) { comm -> [Check] in
                let group = TensorParallelGroup(comm)
                let emb = try VocabParallelEmbedding(sliceOf: Tensor(shape: [v, c], data: w), group: group)
                let y = emb.forward(ids, shape: [2, 5])                                // [2, 5, C]
                (y * Tensor(shape: y.shape, data: r)).sum().backward()
                try group.check()
                return [check(comm.rank, "embedding output", got: y.data, want: h.data, shape: [ids.count, c],
                              hint: "a token outside this rank's rows must give a zero row, then g sums the ranks"),
                        check(comm.rank, "∂L/∂E_r", got: emb.weight.grad ?? [], want: emb.spec.slice(wt.grad!),
                              shape: emb.spec.shardShape,
                              hint: "only the owner adds a token's gradient, at row id − r·V/tp (8 appears twice: add both)")]
            }
            if unfinished("Step2.7") { return }
            assertPass(checks.flatMap { $0 }, "tp \(tp): ")
        }
    }

    /// Task 2.8: the loss and each rank's logit-column gradient, with ignored rows and a large
    /// logit (the max must be global, or exp overflows on the rank that lacks it).
    func testStep2_8_vocabParallelCrossEntropy() throws {
        let (v, n) = (self.v, 6)
        var x = randomValues(n * v, seed: 22, "logits").map { $0 * 3 }                // [N, V]
        x[2 * v + 13] = 90                                                             // exp(90) overflows float32
        let targets = [3, 13, 13, -100, 0, 9]
        let xt = Tensor(shape: [n, v], data: x, requiresGrad: true)
        let loss = Tensor.crossEntropy(xt, targets: targets)
        loss.backward()
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = try onRanks(tp) { comm -> [Check] in
                let group = TensorParallelGroup(comm)
                let cut = ShardSpec(cut: .columns, fullShape: [n, v], rank: comm.rank, size: tp)
                let shard = Tensor(shape: [n, v / tp], data: cut.slice(x), requiresGrad: true)
                let l = vocabParallelCrossEntropy(shard, targets: targets, vocab: cut.range, group: group)
                l.backward()
                try group.check()
                return [check(comm.rank, "loss", got: [l.item], want: [loss.item],
                              hint: "loss = m + log Σ exp(x − m) − x_target with m, Σ and x_target over all ranks"),
                        check(comm.rank, "∂L/∂logits_r", got: shard.grad ?? [], want: cut.slice(xt.grad!), shape: [n, v / tp],
                              hint: "(softmax − one-hot)/valid rows, for this rank's columns; ignored rows get 0")]
            }
            if unfinished("Step2.8") { return }
            assertPass(checks.flatMap { $0 }, "tp \(tp): ")
        }
    }
}
