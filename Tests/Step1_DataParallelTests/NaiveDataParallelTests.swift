// Task 1.1: naive data parallelism. Each rank's averaged gradient must equal the gradient of
// the whole global batch on one process, for 1 to 4 ranks. And two planted bugs, to show the
// check has teeth: picotron's all-reduce of the weights (issue #39), and a sum without average.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step1Lesson
import Step1_DataParallel
import TensorCore
import Training
import XCTest

final class NaiveDataParallelTests: XCTestCase {
    func testNaiveGradientsEqualSingleProcess() throws {
        for dp in 1...4 {
            guard try checkGradients(DataParallelSetup(dp: dp, microBatch: 2, strategy: .naive), task: "Step1.1") != nil
            else { return }
        }
    }

    /// picotron issue #39: the hook gets the parameter, and its naive DP all-reduced it. Weights
    /// are equal on every rank, so averaging them changes nothing and the gradients stay local:
    /// the check must fail and say so.
    func testCheckCatchesAllReducingTheWeights() throws {
        let setup = DataParallelSetup(dp: 2, microBatch: 2)
        let results = try runRanks(setup) { model, group in PlantedBug(model, group, reduceWeights: true) }
        let reference = setup.problem.reference().gradients
        for r in results {
            let failed = DataParallelCheck.gradients(r, setup: setup, reference: reference).filter { !$0.passed }
            XCTAssertFalse(failed.isEmpty, "rank \(r.rank): reducing the weights must not pass")
            XCTAssertTrue(failed.allSatisfy { $0.hint?.contains("picotron issue #39") == true },
                          "the hint should name the pitfall: \(failed.first.map(String.init(describing:)) ?? "")")
        }
    }

    /// Summing without dividing by dp gives dp× the gradients; the hint must say "average".
    func testCheckCatchesAMissingAverage() throws {
        let setup = DataParallelSetup(dp: 3, microBatch: 1)
        let results = try runRanks(setup) { model, group in PlantedBug(model, group, reduceWeights: false) }
        let reference = setup.problem.reference().gradients
        let failed = DataParallelCheck.gradients(results[1], setup: setup, reference: reference).filter { !$0.passed }
        XCTAssertFalse(failed.isEmpty)
        XCTAssertTrue(failed.allSatisfy { $0.hint?.contains("did you average") == true }, "\(failed.first!)")
        XCTAssertTrue(failed[0].description.contains("rank 1:") && failed[0].description.contains("max|Δ|"))
    }
}

/// A naive synchronizer with one of two known bugs: all-reducing `param.data` instead of
/// `param.grad` (picotron #39), or summing gradients without averaging.
private final class PlantedBug: GradientSynchronizer {
    let group: Communicator
    let params: [Tensor]
    init(_ model: LlamaForCausalLM, _ group: Communicator, reduceWeights: Bool) {
        self.group = group
        params = model.parameters
        for p in params {
            p.onGradReady { [group] param in
                if reduceWeights {
                    try! group.allReduce(&param.data, op: .average)    // the bug: the weights, not the gradient
                } else {
                    try! group.allReduce(&param.grad!, op: .sum)       // the bug: no division by dp
                }
            }
        }
    }
    deinit { for p in params { p.removeGradReadyHooks() } }
    func beforeBackward(microBatch index: Int, of count: Int) {}
    func finishStep() throws {}
}
