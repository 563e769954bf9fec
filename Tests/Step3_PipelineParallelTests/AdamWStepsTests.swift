// Three AdamW steps through a pipeline, every engine, tied and untied: each step's loss and every
// parameter of every stage afterwards equal the single process's (lr 1e-2, ε 1e-3: the lessons'
// AdamW, whose ε keeps float32 rounding of near-zero gradients from being amplified by lr/ε).
// A tied embedding's two copies (first and last stage) must stay equal step after step.

import Distributed
import LessonKit
import LessonTesting
import Step3_PipelineParallel
import Training
import XCTest

final class AdamWStepsTests: XCTestCase {
    func testThreeAdamWStepsEqualTheSingleProcess() throws {
        let hyper = AdamW.Hyperparameters(lr: 1e-2, eps: 1e-3)
        for tied in [false, true] {
            var c = LessonProblem.lessonConfig
            (c.numHiddenLayers, c.tieWordEmbeddings) = (4, tied)
            let p = LessonProblem(config: c, batch: 8, length: 8)
            let reference = p.referenceAfterSteps(3, hyper: hyper)
            for (engine, v) in [(PipelineEngine.afab, 1), (.oneFOneB, 1), (.interleaved, 2), (.zeroBubble, 1)] {
                beginTasks()
                // The tasks first: on the exercise track a stand-in may make a rank throw.
                let result = Result { try InProcessRanks.run(2, timeout: 10) { comm -> [Check] in
                    let model = p.makeModel()
                    let chunks = (0 ..< v).map { PipelineStage(model: model, stage: $0 * 2 + comm.rank, stages: 2 * v, microBatches: 4) }
                    let step = PipelineStep(chunks: chunks, link: PipelineLink(group: comm, count: 2 * p.length * c.hiddenSize))
                    let optimizer = AdamW(parameters: step.namedParameters.map(\.1), hyper: hyper)
                    let micro = (0 ..< 4).map { i -> MicroBatch in
                        let (x, y) = p.rows((2 * i) ..< (2 * i + 2))
                        return MicroBatch(inputs: x, targets: y, batch: 2, length: p.length)
                    }
                    var losses = [Float]()
                    for _ in 0 ..< 3 {
                        if let loss = try step.run(micro, engine: engine) { losses.append(loss) }
                        optimizer.step()
                        optimizer.zeroGrad()
                    }
                    var out = losses.isEmpty ? [] : [check(comm.rank, "losses of 3 steps", got: losses, want: reference.losses,
                                                            hint: "each step's loss is the mean of its micro-batches' losses")]
                    for (name, t) in step.namedParameters {
                        out.append(check(comm.rank, "\(name) after 3 steps", got: t.data, want: reference.parameters[name]!,
                                         shape: t.shape, hint: tied && name.contains("embed")
                                            ? "both copies of a tied embedding must take the same step (Task 3.7)"
                                            : "the gradients were right, the update is not: is each parameter in the optimizer once?"))
                    }
                    return out
                } }
                if unfinished(["Step3."]) { return }
                let checks = try result.get()
                assertPass(checks.flatMap { $0 }, "\(engine.rawValue), \(tied ? "tied" : "untied"): ")
            }
        }
    }
}
