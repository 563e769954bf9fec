// What the training loop relies on: AdamW steps on shards, dp × tp on 4 ranks, the model built
// straight from the seed, the divisibility error, full parameters from shards, the global
// gradient norm, and the traffic formula.
// Legend: B = batch rows, T = sequence, tp/dp = group sizes.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import Training
import XCTest

final class TrainingLoopTests: XCTestCase {
    /// Parameters after 3 AdamW steps (ε = 1e-3, see TensorParallelLesson.hyper for why).
    func testThreeAdamWStepsTP2AndTP4() throws {
        if try tasksNotReady() { return }
        for tp in [2, 4] {
            beginTasks()
            let runs = try onRanks(tp) { comm in
                try TensorParallelCheck.training(LessonProblem(), comm: comm, steps: 3, hyper: TensorParallelLesson.hyper)
            }
            if unfinished(["Step2."]) { return }
            assertPass(runs.enumerated().flatMap { r, run in run.checks.map { Check(rank: r, comparison: $0) } },
                       "tp \(tp): ")
        }
    }

    /// dp 2 × tp 2 on 4 ranks: each dp replica takes half the rows, tp cuts each replica's model,
    /// gradients are averaged over the dp group with a plain all-reduce. Gradient shards and the
    /// parameters after 3 AdamW steps must equal the single-process full-batch run.
    func testDataParallel2TimesTensorParallel2() throws {
        if try tasksNotReady() { return }
        beginTasks()
        let problem = LessonProblem(), hyper = TensorParallelLesson.hyper
        let reference = problem.reference()
        let after = problem.referenceAfterSteps(3, hyper: hyper)
        let checks = try onRanks(4) { world -> [Check] in
            let grid = try ProcessGrid(dp: 2, pp: 1, cp: 1, tp: 2, world: world)
            let model = problem.makeModel()
            let group = try applyTensorParallel(to: model, group: grid.tpGroup)
            let half = problem.batch / grid.dpSize
            let (x, y) = problem.rows((grid.dpRank * half)..<((grid.dpRank + 1) * half))
            let optimizer = AdamW(parameters: model.parameters, hyper: hyper)
            let specs = tensorParallelSpecs(of: model, group: grid.tpGroup)
            var out = [Check]()
            for step in 0..<3 {
                let loss = model.lossFunction(model.logits(x, batch: half, length: problem.length), y)
                loss.backward()
                try group.check()
                for p in model.parameters where p.grad != nil { try grid.dpGroup.allReduce(&p.grad!, op: .average) }
                var mean = [loss.item]
                try grid.dpGroup.allReduce(&mean, op: .average)
                out.append(check(world.rank, "loss step \(step + 1)", got: mean, want: [after.losses[step]],
                                 hint: "the mean over dp replicas of each half-batch loss is the full-batch loss"))
                if step == 0 {
                    for (name, p) in model.namedParameters {
                        out.append(check(world.rank, "grad \(name) (\(grid))", got: p.grad ?? [],
                                         want: specs[name]!.slice(reference.gradients[name]!), shape: p.shape,
                                         hint: "average over dp (not sum) after the tp backward"))
                    }
                }
                optimizer.step()
                optimizer.zeroGrad()
            }
            for (name, p) in model.namedParameters {
                out.append(check(world.rank, "\(name) after 3 steps (\(grid))", got: p.data,
                                 want: specs[name]!.slice(after.parameters[name]!), shape: p.shape,
                                 hint: "every rank of a dp group must step on the same averaged gradient"))
            }
            return out
        }
        if unfinished(["Step2."]) { return }
        assertPass(checks.flatMap { $0 })
    }

    /// Building shards from the seed gives the same parameters as cutting the full model.
    func testBuildFromSeedEqualsApplyToFullModel() throws {
        for tied in [false, true] {
            var config = LessonProblem.lessonConfig
            config.tieWordEmbeddings = tied
            let checks = try onRanks(2) { comm -> [Check] in
                let cut = LlamaForCausalLM(config: config, seed: 5)
                try applyTensorParallel(to: cut, group: comm)
                let (built, _) = try makeTensorParallelLlama(config: config, seed: 5, group: comm)
                XCTAssertEqual(built.namedParameters.map(\.0), cut.namedParameters.map(\.0))
                return zip(built.namedParameters, cut.namedParameters).map { a, b in
                    Check(rank: comm.rank, comparison: ReferenceCheck.compare(a.0, got: a.1.data, want: b.1.data, relative: 0))
                }
            }
            assertPass(checks.flatMap { $0 }, tied ? "tied: " : "")
        }
    }

    /// tp must divide the heads, the key/value heads, the MLP and the vocabulary; the message says
    /// which and what would work, and the model is left untouched.
    func testSizesThatDoNotDivideThrow() throws {
        var config = LessonProblem.lessonConfig
        config.numKeyValueHeads = 2
        XCTAssertThrowsError(try checkTensorParallel(config, tp: 4)) { error in
            XCTAssertEqual("\(error)", "tensor parallel size 4 must divide num_key_value_heads 2: use tp 1 or 2")
        }
        let messages = try onRanks(3) { comm -> String in
            let model = LessonProblem().makeModel()
            do {
                try applyTensorParallel(to: model, group: comm)
                return "no error"
            } catch {
                XCTAssertTrue(model.embedTokens is Embedding, "the model must be untouched after the error")
                return "\(error)"
            }
        }
        XCTAssertEqual(Set(messages), ["tensor parallel size 3 must divide num_attention_heads 8: use tp 1, 2 or 4"])
    }

    /// Full parameters and gradients gathered from the shards, and the global gradient norm,
    /// equal the single-process ones (tied and untied).
    func testFullParametersAndGradNorm() throws {
        if try tasksNotReady() { return }
        for tied in [false, true] {
            beginTasks()
            var config = LessonProblem.lessonConfig
            config.tieWordEmbeddings = tied
            let problem = LessonProblem(config: config)
            let reference = problem.makeModel()
            reference.lossFunction(reference.logits(problem.inputs, batch: problem.batch, length: problem.length),
                                   problem.targets).backward()
            let refNorm = reference.parameters.reduce(0.0) { s, p in s + p.grad!.reduce(0.0) { $0 + Double($1 * $1) } }
            let checks = try onRanks(4) { comm -> [Check] in
                let model = problem.makeModel()
                let group = try applyTensorParallel(to: model, group: comm)
                model.lossFunction(model.logits(problem.inputs, batch: problem.batch, length: problem.length),
                                   problem.targets).backward()
                try group.check()
                let params = try gatherFullParameters(of: model, group: comm)
                let grads = try gatherFullParameters(of: model, group: comm, gradients: true)
                let norm = try gradNorm(of: model, group: comm)
                var out = zip(params, reference.namedParameters).map { got, want in
                    Check(rank: comm.rank, comparison: ReferenceCheck.compare("full \(got.name)", got: got.values,
                                                                              want: want.1.data, relative: 0))
                }
                XCTAssertEqual(params.map(\.shape), reference.namedParameters.map(\.1.shape))
                out += zip(grads, reference.namedParameters).map { got, want in
                    check(comm.rank, "full grad \(got.name)", got: got.values, want: want.1.grad!,
                          hint: "columns of a row-parallel weight are reassembled rank by rank")
                }
                out.append(check(comm.rank, "grad norm", got: [norm], want: [Float(refNorm.squareRoot())],
                                 hint: "sum the cut parameters' squares over tp, count the norms once"))
                return out
            }
            if unfinished(["Step2."]) { return }
            assertPass(checks.flatMap { $0 }, tied ? "tied: " : "")
        }
    }

    /// The ledger's counts equal the formula, for the vocab-parallel loss and for gathered logits.
    func testTrafficMatchesFormula() throws {
        if try tasksNotReady() { return }
        for (tp, gather) in [(2, false), (4, false), (2, true)] {
            beginTasks()
            let lines = try onRanks(tp) { comm in
                try TensorParallelTraffic.measure(LessonProblem(), comm: comm, gatherLogits: gather)
            }
            if unfinished(["Step2."]) { return }
            for (r, rank) in lines.enumerated() {
                for l in rank where !l.matches {
                    XCTFail("tp \(tp)\(gather ? " gathered" : ""), rank \(r): \(l.phase) \(l.op): \(l.calls) calls, "
                            + "\(l.bytes) B; formula \(l.formula): \(l.formulaCalls) calls, \(l.formulaBytes) B")
                }
            }
        }
    }
}
