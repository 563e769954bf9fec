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
    /// Task 2.1 (lesson: "Build it", Task 2.1): f is the identity forward and sums the ranks'
    /// gradients backward.
    func testStep2_1_copyToRegionAllReducesGradients() throws {
        for tp in [2, 4] {
            beginTasks()
            let checks = try TaskChecks.f(tp: tp)
            if unfinished("Step2.1") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }

    /// Task 2.2: g sums the ranks' values forward and passes the gradient through backward.
    func testStep2_2_reduceFromRegionSumsForward() throws {
        for tp in [2, 4] {
            beginTasks()
            let checks = try TaskChecks.g(tp: tp)
            if unfinished("Step2.2") { return }
            assertPass(checks, "tp \(tp): ")
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
