// Attention with its heads split and the SwiGLU MLP with its features split, each against the
// reference layer of the lesson model (8 query heads, 4 key/value heads), tp 1, 2, 4, once every
// task's own checks pass (a failure here is then the block's assembly, not a task).
// Legend: B = batch, T = sequence, C = hidden, tp = ranks.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import XCTest

final class BlockTests: XCTestCase {
    let (b, t) = (2, 5)

    /// Output, ∂L/∂x and every weight-gradient shard of one block, L = Σ y ⊙ R.
    func verify(_ which: String, tp: Int, forward: @escaping (LlamaDecoderLayer, Tensor, RoPETable, AttentionMask) -> Tensor,
                parallelize: @escaping (LlamaDecoderLayer, TensorParallelGroup) throws -> Void) throws {
        let problem = LessonProblem()
        let c = problem.config.hiddenSize, (b, t) = (self.b, self.t)
        let x = randomValues(b * t * c, seed: 30, "x"), r = randomValues(b * t * c, seed: 31, "r")
        let reference = problem.makeModel()
        let rope = reference.rope(positions: Array(0..<t)), mask = AttentionMask.causal(length: t)
        let xRef = Tensor(shape: [b, t, c], data: x, requiresGrad: true)
        let yRef = forward(reference.layers[0], xRef, rope, mask)
        (yRef * Tensor(shape: yRef.shape, data: r)).sum().backward()
        let refGrads = Dictionary(uniqueKeysWithValues: reference.layers[0].namedParameters.map { ($0.0, $0.1.grad ?? []) })
        beginTasks()
        let checks = try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let model = problem.makeModel()
            let layer = model.layers[0]
            try parallelize(layer, group)
            let xt = Tensor(shape: [b, t, c], data: x, requiresGrad: true)
            let y = forward(layer, xt, rope, mask)
            (y * Tensor(shape: y.shape, data: r)).sum().backward()
            try group.check()
            let specs = tensorParallelSpecs(of: model, group: comm)
            var out = [check(comm.rank, "\(which) output", got: y.data, want: yRef.data, shape: [b * t, c],
                             hint: "the row-parallel projection must end with g (Task 2.5)"),
                       check(comm.rank, "\(which) ∂L/∂x", got: xt.grad ?? [], want: xRef.grad!, shape: [b * t, c],
                             hint: "the column-parallel projections' f must sum the ranks' parts (Task 2.1)")]
            for (name, p) in layer.namedParameters where p.grad != nil {
                let spec = specs["model.layers.0." + name]!
                out.append(check(comm.rank, "∂L/∂\(name)", got: p.grad!, want: spec.slice(refGrads[name]!),
                                 shape: p.shape, hint: TensorParallelCheck.hint(name: name, cut: spec.cut, ratio: nil)))
            }
            return out
        }
        if unfinished(["Step2."]) { return }
        assertPass(checks.flatMap { $0 }, "\(which), tp \(tp): ")
    }

    func testAttentionHeadsSplit() throws {
        if try tasksNotReady() { return }
        for tp in [1, 2, 4] {
            try verify("attention", tp: tp, forward: { l, x, rope, mask in l.selfAttn.forward(x, rope: rope, mask: mask) },
                       parallelize: { l, g in try parallelize(l, group: g) })
        }
    }

    func testMLPFeaturesSplit() throws {
        if try tasksNotReady() { return }
        for tp in [1, 2, 4] {
            try verify("mlp", tp: tp, forward: { l, x, _, _ in l.mlp.forward(x) },
                       parallelize: { l, g in try parallelize(l, group: g) })
        }
    }

    /// Each rank computes only its heads: 8/tp query heads, 4/tp key/value heads.
    func testHeadCountsPerRank() throws {
        let shares = try onRanks(4) { comm -> [Int] in
            let layer = LessonProblem().makeModel().layers[0], attn = layer.selfAttn
            try parallelize(layer, group: TensorParallelGroup(comm))
            return [attn.heads, attn.kvHeads, (attn.qProj as! ColumnParallelLinear).weight.shape[0]]
        }
        XCTAssertEqual(shares, Array(repeating: [2, 1, 16], count: 4))
    }
}
