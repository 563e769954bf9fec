// Task 1.6 and the whole step: disjoint shards, the loss averaged over ranks equals the global
// mean, parameters after 3 AdamW steps equal the single-process run's, and a frozen parameter
// is neither reduced nor updated.

import ExerciseKit
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class TrainingStepTests: XCTestCase {
    func testShardsAreDisjointAndCoverTheGlobalBatch() throws {
        let setup = DataParallelSetup(dp: 3, accumulation: 2, microBatch: 2)
        beginTasks()
        let results = try runRanks(setup, task: "Step1.6")
        if unfinished("Step1.6") { return }
        let rows = results.flatMap { $0.rows.flatMap { $0 } }
        expectEqual(rows.sorted(), Array(0..<setup.globalBatch), "G = B·A·dp rows, each read by exactly one rank")
        expectEqual(results[1].rows, [[2, 3], [8, 9]], "rank 1 reads chunks 1 and 1 + dp of B rows")
    }

    /// Equal shards: the mean over ranks of per-rank means is the mean over the global batch.
    func testAveragedLossEqualsSingleProcessLoss() throws {
        for dp in 1...4 {
            let setup = DataParallelSetup(dp: dp, accumulation: 2, microBatch: 1)
            beginTasks()
            let results = try runRanks(setup, task: "Step1.6")
            if unfinished("Step1.6") { return }
            let want = setup.problem.reference().loss
            for r in results {
                guard expect(abs(r.losses[0] - want) <= 1e-5 * abs(want),
                       "dp \(dp), rank \(r.rank): averaged loss \(r.losses[0]) (own \(r.localLoss)), "
                       + "single process \(want): is the loss averaged over the group (sum / dp)?") else { return }
            }
        }
    }

    func testParametersAfterThreeAdamWStepsEqualSingleProcess() throws {
        for (dp, A, strategy) in [(2, 1, DataParallelStrategy.naive), (3, 4, .naive), (2, 4, .bucketed(megabytes: 0.05)),
                                  (4, 1, .bucketed(megabytes: 0.001)), (3, 2, .bucketed(megabytes: 25))] {
            let setup = DataParallelSetup(dp: dp, accumulation: A, microBatch: 1, strategy: strategy, steps: 3)
            beginTasks()
            let results = try runRanks(setup, task: "Step1.6")
            if unfinished("Step1.6") { return }
            let reference = setup.problem.referenceAfterSteps(3, hyper: setup.hyper, frozen: [])
            for r in results {   // stop at the first failing rank
                let params = DataParallelCheck.parameters(r, reference: reference.parameters)
                assertPass(params, rank: r.rank, "\(strategy), dp \(dp), A \(A): ")
                if !params.allSatisfy(\.passed) { return }
                for (step, (got, want)) in zip(r.losses, reference.losses).enumerated() {
                    guard expect(abs(got - want) <= 1e-5 * abs(want),
                                 "\(strategy), dp \(dp), rank \(r.rank): loss at step \(step + 1) is \(got), single "
                                 + "process \(want): is the loss averaged over the group (sum / dp)?") else { return }
                }
            }
        }
    }

    func testFrozenParameterIsNeitherReducedNorUpdated() throws {
        let frozen: Set = ["model.embed_tokens.weight", "model.layers.1.post_attention_layernorm.weight"]
        for strategy in [DataParallelStrategy.naive, .bucketed(megabytes: 0.02)] {
            let setup = DataParallelSetup(dp: 2, accumulation: 2, microBatch: 1, strategy: strategy, steps: 3, frozen: frozen)
            beginTasks()
            let results = try runRanks(setup, task: "Step1.6")
            if unfinished("Step1.6") { return }
            let initial = setup.problem.makeModel().namedParameters
            let trainable = initial.filter { !frozen.contains($0.0) }.reduce(0) { $0 + $1.1.count }
            let reference = setup.problem.referenceAfterSteps(3, hyper: setup.hyper, frozen: frozen)
            for r in results {
                for name in frozen {
                    expect(r.gradients[name] == nil, "\(strategy), rank \(r.rank): frozen \(name) got a gradient")
                    expect(r.parameters[name] == initial.first { $0.0 == name }!.1.data,
                           "\(strategy), rank \(r.rank): frozen \(name) was updated")
                }
                expectEqual(r.traffic.total().bytes, 4 * trainable,
                            "\(strategy), rank \(r.rank): only trainable gradients are reduced (4 B × \(trainable))")
                assertPass(DataParallelCheck.parameters(r, reference: reference.parameters), rank: r.rank, "\(strategy), frozen" + ": ")
            }
        }
    }
}
