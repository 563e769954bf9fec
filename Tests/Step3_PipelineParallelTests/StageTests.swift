// Tasks 3.1–3.3: the split of the layers, and one stage's forward and backward of a micro-batch,
// in one process: the test hands each stage's output to the next stage itself (no schedule, no
// messages), and compares with the single-process model.
// Legend: pp = stages, s = a stage, L = layers, M = micro-batches, B = rows of a micro-batch,
// T = tokens per row, C = hidden.

import LessonKit
import LessonTesting
import Llama
@testable import Step3_PipelineParallel
import TensorCore
import XCTest

final class StageTests: XCTestCase {
    /// Task 3.1: picotron's split, against its formula (a list of counts, the first L mod pp one
    /// larger, and each stage starting where the previous one ends).
    func testStep3_1_stageLayersSplitAsPicotron() {
        beginTasks()
        var wrong: [String] = []
        for layers in 1 ... 9 {
            for pp in 1 ... layers {
                let counts = (0 ..< pp).map { layers / pp + ($0 < layers % pp ? 1 : 0) }
                for s in 0 ..< pp {
                    let start = counts[..<s].reduce(0, +)
                    let got = stageLayers(layers: layers, stages: pp, stage: s)
                    if got != start ..< start + counts[s] {
                        wrong.append("stageLayers(layers: \(layers), stages: \(pp), stage: \(s)) = \(got), "
                                     + "want \(start ..< start + counts[s])")
                    }
                }
            }
        }
        if unfinished("Step3.1") { return }
        for w in wrong.prefix(3) {
            failTask("\(w) (every stage ⌊L / pp⌋ layers, the first L mod pp stages one more, contiguous)")
        }
    }

    /// One micro-batch through every stage's forward, each stage's output handed to the next.
    /// Stops at a stage that returns the wrong number of values (before anything would read them)
    /// and says which.
    func chain(_ stages: [PipelineStage], _ mb: MicroBatch, _ p: LessonProblem)
        -> (acts: [StageActivation], problem: String?) {
        var acts: [StageActivation] = []
        for stage in stages {
            let a = stage.forward(mb, received: acts.last?.output.data)
            let want = stage.isLast ? 1 : mb.batch * mb.length * p.config.hiddenSize
            guard a.output.count == want else {
                let shape = stage.isLast ? "the loss, one value" : "[B, T, C] = \([mb.batch, mb.length, p.config.hiddenSize])"
                return (acts, "stage \(stage.stage)'s forward returned \(a.output.shape) (\(a.output.count) values), "
                        + "want \(shape)")
            }
            acts.append(a)
        }
        return (acts, nil)
    }

    /// Task 3.2: each stage's output is the single model's hidden state after that stage's last
    /// layer; the last stage returns the micro-batch's loss divided by M; a received input is a
    /// leaf that requires its gradient.
    func testStep3_2_forwardRunsTheStageLayersAndScalesTheLoss() throws {
        let p = pipelineProblem(layers: 4, rows: 4)
        for (pp, m) in [(2, 4), (3, 2), (4, 1)] {                         // pp 3: layers 2, 1, 1
            beginTasks()
            let stages = (0 ..< pp).map { PipelineStage(model: p.makeModel(), stage: $0, stages: pp, microBatches: m) }
            let micro = microBatches(p, m)
            let chains = micro.map { chain(stages, $0, p) }
            if unfinished("Step3.2") { return }
            let context = "pp \(pp), M \(m): "
            if let problem = chains.compactMap(\.problem).first {
                failTask(context + problem)
                return
            }
            let reference = p.makeModel()
            var checks: [Check] = []
            for (i, (mb, acts)) in zip(micro, chains.map(\.acts)).enumerated() {
                let rope = reference.rope(positions: mb.positions)
                let mask = AttentionMask.causal(queryPositions: mb.positions, keyPositions: mb.positions)
                var h = reference.embed(mb.inputs, batch: mb.batch, length: mb.length)      // [B, T, C]
                for (s, a) in acts.enumerated() {
                    if s > 0 {
                        guard let input = a.input, input.isLeaf, input.requiresGrad,
                              input.data == acts[s - 1].output.data else {
                            let got = a.input.map { "leaf \($0.isLeaf), requiresGrad \($0.requiresGrad)" } ?? "nil"
                            failTask("\(context)stage \(s)'s input must be a leaf Tensor of the received values that "
                                     + "requires its gradient (input: \(got))")
                            return
                        }
                    }
                    guard !stages[s].isLast else { continue }
                    h = reference.runLayers(h, stages[s].layers, rope: rope, mask: mask)
                    checks.append(check(s, "h after stage \(s), micro-batch \(i)", got: a.output.data, want: h.data,
                                        shape: a.output.shape, hint: "stage \(s) runs layers \(stages[s].layers) on what it "
                                        + "received (the first stage embeds the tokens)"))
                }
            let rows = (i * mb.batch) ..< ((i + 1) * mb.batch)
                let loss = p.gradients(rows: rows).loss
                checks.append(check(pp - 1, "output of the last stage, micro-batch \(i)", got: acts[pp - 1].output.data,
                                    want: [loss / Float(m)], hint: "the micro-batch's loss divided by M = \(m)"))
            }
            guard passes(checks, context) else { return }
        }
    }

    /// Task 3.3: the forwards of M micro-batches, then their backwards from the last stage to the
    /// first, each stage's returned gradient handed to the previous one: every gradient of every
    /// stage equals the single process's for the whole batch.
    func testStep3_3_backwardReturnsTheInputGradient() throws {
        let p = pipelineProblem(layers: 4, rows: 4)
        let reference = p.reference()
        for (pp, m) in [(2, 4), (3, 2), (4, 1)] {
            beginTasks()
            let stages = (0 ..< pp).map { PipelineStage(model: p.makeModel(), stage: $0, stages: pp, microBatches: m) }
            let context = "pp \(pp), M \(m): "
            var missing: String?
            for mb in microBatches(p, m) {
                let (acts, problem) = chain(stages, mb, p)
                if let problem { missing = problem; break }
                var gradient: [Float]?
                for s in stride(from: pp - 1, through: 0, by: -1) {
                    gradient = stages[s].backward(acts[s], gradient: gradient)
                    if s > 0, gradient?.count != mb.batch * mb.length * p.config.hiddenSize {
                        missing = "stage \(s)'s backward returned \(gradient.map { "\($0.count) values" } ?? "nil") for its "
                            + "input, want ∂L/∂input [B, T, C] = \(mb.batch * mb.length * p.config.hiddenSize) values"
                        break
                    }
                }
                if missing != nil { break }
            }
            if unfinished("Step3.3") { return }
            if let missing {
                failTask(context + missing)
                return
            }
            guard passes(stages.flatMap { stage in
                stage.namedParameters.map { name, t in
                    check(stage.stage, "grad \(name)", got: t.grad ?? [], want: reference.gradients[name]!, shape: t.shape,
                          hint: "the last stage starts from its scaled loss, the others from the gradient they received")
                }
            }, context) else { return }
        }
    }
}
