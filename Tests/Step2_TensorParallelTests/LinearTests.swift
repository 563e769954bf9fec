// Tasks 2.3–2.6: column- and row-parallel linear layers against one nn.Linear, tp 1, 2, 4.
// Loss L = Σ y ⊙ R with a fixed random R, so every gradient is a plain product to compare.
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

    /// The reference: y = x Wᵀ and the gradients of Σ y ⊙ R.
    func reference() -> (x: [Float], w: [Float], r: [Float], y: [Float], dx: [Float], dw: [Float]) {
        let x = randomValues(n * inF, seed: 10, "x"), w = randomValues(outF * inF, seed: 11, "w")
        let r = randomValues(n * outF, seed: 12, "r")
        let xt = Tensor(shape: [n, inF], data: x, requiresGrad: true)
        let wt = Tensor(shape: [outF, inF], data: w, requiresGrad: true)
        let y = Tensor.linear(xt, wt)
        (y * Tensor(shape: [n, outF], data: r)).sum().backward()
        return (x, w, r, y.data, xt.grad!, wt.grad!)
    }

    /// Runs a column-parallel layer on tp ranks: (output, ∂L/∂x, ∂L/∂W_r) per rank.
    func runColumn(tp: Int) throws -> [(rank: Int, spec: ShardSpec, y: [Float], dx: [Float], dw: [Float])] {
        let ref = reference()
        let (n, inF, outF) = (self.n, self.inF, self.outF)
        return try onRanks(tp) { comm in
            let group = TensorParallelGroup(comm)
            let layer = try ColumnParallelLinear(sliceOf: Tensor(shape: [outF, inF], data: ref.w), group: group)
            let x = Tensor(shape: [n, inF], data: ref.x, requiresGrad: true)
            let y = layer.forward(x)                                                   // [N, out/tp]
            let yCut = ShardSpec(cut: .columns, fullShape: [n, outF], rank: comm.rank, size: tp)
            (y * Tensor(shape: y.shape, data: yCut.slice(ref.r))).sum().backward()
            try group.check()
            return (comm.rank, layer.spec, y.data, x.grad ?? [], layer.weight.grad ?? [])
        }
    }

    /// Task 2.3: each rank computes its output columns y_r = x W_rᵀ.
    func testStep2_3_columnParallelForward() throws {
        let ref = reference()
        for tp in [1, 2, 4] {
            beginTasks()
            let runs = try runColumn(tp: tp)
            if unfinished("Step2.3") { return }
            assertPass(runs.map { r in
                let cut = ShardSpec(cut: .columns, fullShape: [n, outF], rank: r.rank, size: tp)
                return check(r.rank, "column-parallel y_r", got: r.y, want: cut.slice(ref.y), shape: [n, outF / tp],
                             hint: "rank r's output columns are x · W_rᵀ with W_r rows r·out/tp ..< (r+1)·out/tp")
            }, "tp \(tp): ")
        }
    }

    /// Task 2.4: dW_r = dy_rᵀ x on each rank; dx = Σ over ranks of dy_r W_r (through f).
    func testStep2_4_columnParallelBackward() throws {
        let ref = reference()
        for tp in [1, 2, 4] {
            beginTasks()
            let runs = try runColumn(tp: tp)
            if unfinished("Step2.4") { return }
            assertPass(runs.flatMap { r in [
                check(r.rank, "column-parallel ∂L/∂W_r", got: r.dw, want: r.spec.slice(ref.dw), shape: r.spec.shardShape,
                      hint: "dW_r = dy_rᵀ · x: [out/tp, N] · [N, in]"),
                check(r.rank, "column-parallel ∂L/∂x", got: r.dx, want: ref.dx, shape: [n, inF],
                      hint: "dx_r = dy_r · W_r is one rank's part; f's backward sums the parts (Task 2.1)"),
            ] }, "tp \(tp): ")
        }
    }

    /// Runs a row-parallel layer on tp ranks, each reading its input columns x_r.
    func runRow(tp: Int) throws -> [(rank: Int, spec: ShardSpec, y: [Float], dx: [Float], dw: [Float])] {
        let ref = reference()
        let (n, inF, outF) = (self.n, self.inF, self.outF)
        return try onRanks(tp) { comm in
            let group = TensorParallelGroup(comm)
            let layer = try RowParallelLinear(sliceOf: Tensor(shape: [outF, inF], data: ref.w), group: group)
            let xCut = ShardSpec(cut: .columns, fullShape: [n, inF], rank: comm.rank, size: tp)
            let x = Tensor(shape: [n, inF / tp], data: xCut.slice(ref.x), requiresGrad: true)   // [N, in/tp]
            let y = layer.forward(x)                                                           // [N, out]
            (y * Tensor(shape: y.shape, data: ref.r)).sum().backward()
            try group.check()
            return (comm.rank, layer.spec, y.data, x.grad ?? [], layer.weight.grad ?? [])
        }
    }

    /// Task 2.5: each rank's partial product x_r W_rᵀ, summed by g, is the full output.
    func testStep2_5_rowParallelForward() throws {
        let ref = reference()
        for tp in [1, 2, 4] {
            beginTasks()
            let runs = try runRow(tp: tp)
            if unfinished("Step2.5") { return }
            assertPass(runs.map { r in
                check(r.rank, "row-parallel y", got: r.y, want: ref.y, shape: [n, outF],
                      hint: "y = g(x_r · W_rᵀ): the partial products must be summed over ranks (Task 2.2)")
            }, "tp \(tp): ")
        }
    }

    /// Task 2.6: dx_r = dy W_r and dW_r = dyᵀ x_r, no communication.
    func testStep2_6_rowParallelBackward() throws {
        let ref = reference()
        for tp in [1, 2, 4] {
            beginTasks()
            let runs = try runRow(tp: tp)
            if unfinished("Step2.6") { return }
            assertPass(runs.flatMap { r -> [Check] in
                let xCut = ShardSpec(cut: .columns, fullShape: [n, inF], rank: r.rank, size: tp)
                return [
                    check(r.rank, "row-parallel ∂L/∂W_r", got: r.dw, want: r.spec.slice(ref.dw), shape: r.spec.shardShape,
                          hint: "dW_r = dyᵀ · x_r: [out, N] · [N, in/tp]"),
                    check(r.rank, "row-parallel ∂L/∂x_r", got: r.dx, want: xCut.slice(ref.dx), shape: [n, inF / tp],
                          hint: "dx_r = dy · W_r; if it is tp× too large, g's backward all-reduced (it must not)"),
                ]
            }, "tp \(tp): ")
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
