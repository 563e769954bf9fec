// Tasks 2.3–2.6: column- and row-parallel linear layers against one nn.Linear, tp 1, 2, 4 (the checks
// are in TaskChecks). Loss L = Σ y ⊙ R with a fixed random R, so every gradient is a plain product.
// Legend: N = rows, in/out = full features, tp = ranks.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import XCTest

final class LinearTests: XCTestCase {
    let (n, inF, outF) = (5, 12, 8)

    /// Task 2.3: each rank computes its output columns y_r = x W_rᵀ, or all of them gathered; x
    /// goes through the shared f; the backward hands both gradients on.
    func testStep2_3_columnParallelForward() throws {
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = try TaskChecks.columnForward(tp: tp)
            if unfinished("Step2.3") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }

    /// Task 2.4: dx = dy_r W_r (this rank's part) and dW_r = dy_rᵀ x, called directly.
    func testStep2_4_columnParallelBackward() throws {
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = TaskChecks.columnBackward(tp: tp).checks
            if unfinished("Step2.4") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }

    /// Task 2.5: each rank's partial product x_r W_rᵀ, summed by g, is the full output; the
    /// backward hands both gradients on.
    func testStep2_5_rowParallelForward() throws {
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = try TaskChecks.rowForward(tp: tp)
            if unfinished("Step2.5") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }

    /// Task 2.6: dx_r = dy W_r and dW_r = dyᵀ x_r, no communication, called directly.
    func testStep2_6_rowParallelBackward() throws {
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = TaskChecks.rowBackward(tp: tp).checks
            if unfinished("Step2.6") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }

    /// A shard built from the seed equals the slice of the full seeded weight, bit for bit.
    func testShardFromSeedEqualsSliceOfFullInit() throws {
        let f = ParameterFactory(seed: 99, std: 0.02)
        let full = f.normal("w", outF, inF)
        let checks = try onRanks(4) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let col = try ColumnParallelLinear(factory: f, name: "w", out: self.outF, in: self.inF, group: group)
            let row = try RowParallelLinear(factory: f, name: "w", out: self.outF, in: self.inF, group: group)
            return [Check(rank: comm.rank, comparison: ReferenceCheck.compare("column shard", got: col.weight.data,
                                                                              want: col.spec.slice(full.data), relative: 0)),
                    Check(rank: comm.rank, comparison: ReferenceCheck.compare("row shard", got: row.weight.data,
                                                                              want: row.spec.slice(full.data), relative: 0))]
        }
        assertPass(checks.flatMap { $0 })
    }
}
