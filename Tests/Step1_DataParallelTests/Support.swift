// What Step 1's tests add to the shared vocabulary (LessonTesting): run a data-parallel setup on
// in-process ranks, and check every rank's gradients against the single-process reference.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step1Lesson
import Step1_DataParallel
import Training
import XCTest

/// Runs `setup` on `setup.dp` in-process ranks (the dp group of a dp × 1 × 1 × 1 grid).
func runRanks(_ setup: DataParallelSetup,
              synchronizer: ((LlamaForCausalLM, Communicator) -> GradientSynchronizer)? = nil) throws
    -> [DataParallelRankResult]
{
    try onRanks(setup.dp) { world in
        let grid = try ProcessGrid(dp: setup.dp, pp: 1, cp: 1, tp: 1, world: world)
        return try runDataParallel(setup, group: grid.dpGroup, synchronizer: synchronizer)
    }
}

/// Forgets earlier TODOs, runs the setup and checks the gradients of step 1 on every rank against
/// the reference. Returns the results when they could be checked (nil after a TODO failure).
@discardableResult
func checkGradients(_ setup: DataParallelSetup, task: String,
                    file: StaticString = #filePath, line: UInt = #line) throws -> [DataParallelRankResult]? {
    beginTasks()
    let results = try runRanks(setup)
    if unfinished(task, file: file, line: line) { return nil }
    let reference = setup.problem.reference(frozen: setup.frozen).gradients
    let context = "\(setup.strategy), dp \(setup.dp), A \(setup.accumulation): "
    assertPass(results.flatMap { r in
        DataParallelCheck.gradients(r, setup: setup, reference: reference).map { Check(rank: r.rank, comparison: $0) }
    }, context, file: file, line: line)
    return results
}
