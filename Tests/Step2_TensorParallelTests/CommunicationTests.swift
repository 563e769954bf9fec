// Tasks 2.1 and 2.2: Megatron's f and g, the conjugate pair, on 2 and 4 ranks.
// Each rank feeds its own upstream gradient, so "summed over ranks" and "passed through" differ.
// Legend: N = rows, C = columns.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import XCTest

final class CommunicationTests: XCTestCase {
    let (n, c) = (4, 6)

    /// Task 2.1 (lesson: "Build it", Task 2.1): f is the identity forward and sums the ranks'
    /// gradients backward.
    func testStep2_1_copyToRegionAllReducesGradients() throws {
        for tp in [2, 4] {
            beginTasks()
            let (n, c) = (self.n, self.c)
            let x = randomValues(n * c, seed: 1, "x")                              // [N, C] same on every rank
            let dys = (0..<tp).map { randomValues(n * c, seed: 2, "dy\($0)") }      // [N, C] one per rank
            let want = (0..<(n * c)).map { i in dys.reduce(Float(0)) { $0 + $1[i] } }
            let checks = try onRanks(tp) { comm -> [Check] in
                let group = TensorParallelGroup(comm)
                let xt = Tensor(shape: [n, c], data: x, requiresGrad: true)
                let y = copyToTensorParallelRegion(xt, group)
                y.backward(gradient: dys[comm.rank])
                try group.check()
                return [check(comm.rank, "f(x)", got: y.data, want: x, shape: [n, c],
                              hint: "f's forward is the identity: every rank already has x"),
                        check(comm.rank, "∂L/∂x through f", got: xt.grad ?? [], want: want, shape: [n, c],
                              hint: "f's backward must all-reduce (sum) the gradient over the tp group")]
            }
            if unfinished("Step2.1") { return }
            assertPass(checks.flatMap { $0 }, "tp \(tp): ")
        }
    }

    /// Task 2.2: g sums the ranks' values forward and passes the gradient through backward.
    func testStep2_2_reduceFromRegionSumsForward() throws {
        for tp in [2, 4] {
            beginTasks()
            let (n, c) = (self.n, self.c)
            let xs = (0..<tp).map { randomValues(n * c, seed: 3, "x\($0)") }        // [N, C] one per rank
            let dy = randomValues(n * c, seed: 4, "dy")
            let want = (0..<(n * c)).map { i in xs.reduce(Float(0)) { $0 + $1[i] } }
            let checks = try onRanks(tp) { comm -> [Check] in
                let group = TensorParallelGroup(comm)
                let xt = Tensor(shape: [n, c], data: xs[comm.rank], requiresGrad: true)
                let y = reduceFromTensorParallelRegion(xt, group)
                y.backward(gradient: dy)
                try group.check()
                return [check(comm.rank, "g(x)", got: y.data, want: want, shape: [n, c],
                              hint: "g's forward must all-reduce (sum) the partial results"),
                        check(comm.rank, "∂L/∂x through g", got: xt.grad ?? [], want: dy, shape: [n, c],
                              hint: "g's backward is the identity: an all-reduce there multiplies by tp")]
            }
            if unfinished("Step2.2") { return }
            assertPass(checks.flatMap { $0 }, "tp \(tp): ")
        }
    }

    /// Gather forward, split backward (used when the logits are gathered, picotron's way).
    func testGatherForwardSplitBackward() throws {
        let (n, k, tp) = (3, 2, 4)
        let full = randomValues(n * k * tp, seed: 5, "full")                       // [N, tp·k]
        let dy = randomValues(n * k * tp, seed: 6, "dy")
        let checks = try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let spec = ShardSpec(cut: .columns, fullShape: [n, k * tp], rank: comm.rank, size: tp)
            let x = Tensor(shape: [n, k], data: spec.slice(full), requiresGrad: true)
            let y = gatherFromTensorParallelRegion(x, group)
            y.backward(gradient: dy)
            try group.check()
            return [check(comm.rank, "gathered", got: y.data, want: full, hint: "columns in rank order"),
                    check(comm.rank, "split gradient", got: x.grad!, want: spec.slice(dy), hint: "keep my columns")]
        }
        assertPass(checks.flatMap { $0 })
    }
}
