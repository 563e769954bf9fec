// What every Step 1 test does: reset the TODO marker, run a data-parallel setup on in-process
// ranks, fail with the TODO's message if the code under test is unfinished, else compare every
// rank with the single-process reference and report each difference (rank, tensor, max |Δ|,
// where, and a hint).

import Distributed
import LessonKit
import Llama
import Step1_DataParallel
import Training
import XCTest

/// Fails with a TODO message if task `id` (or a Step 1 task it builds on) is unfinished.
/// Returns true when the test may go on and compare with the reference.
func tasksDone(_ id: String, file: StaticString = #filePath, line: UInt = #line) -> Bool {
    guard let message = Todo.failure(task: id, prefix: "Step1.") else { return true }
    XCTFail(message, file: file, line: line)
    return false
}

/// Runs `setup` on `setup.dp` in-process ranks (the dp group of a dp × 1 × 1 × 1 grid).
func runRanks(_ setup: DataParallelSetup,
              synchronizer: ((LlamaForCausalLM, Communicator) -> GradientSynchronizer)? = nil) throws
    -> [DataParallelRankResult]
{
    try InProcessRanks.run(setup.dp) { world in
        let grid = try ProcessGrid(dp: setup.dp, pp: 1, cp: 1, tp: 1, world: world)
        return try runDataParallel(setup, group: grid.dpGroup, synchronizer: synchronizer)
    }
}

/// Fails once per differing tensor (at most `limit` messages), prefixed with the setup.
func assertAllPass(_ comparisons: [Comparison], _ context: String, limit: Int = 4,
                   file: StaticString = #filePath, line: UInt = #line) {
    let failed = comparisons.filter { !$0.passed }
    for c in failed.prefix(limit) { XCTFail("\(context): \(c)", file: file, line: line) }
    if failed.count > limit { XCTFail("\(context): … and \(failed.count - limit) more tensors differ", file: file, line: line) }
}

/// Resets the TODO marker, runs the setup and checks the gradients of step 1 on every rank.
/// Returns the results when they could be checked (nil after a TODO failure).
@discardableResult
func checkGradients(_ setup: DataParallelSetup, task: String,
                    file: StaticString = #filePath, line: UInt = #line) throws -> [DataParallelRankResult]? {
    Todo.reset()
    let results = try runRanks(setup)
    guard tasksDone(task, file: file, line: line) else { return nil }
    let reference = setup.problem.reference(frozen: setup.frozen).gradients
    let context = "\(setup.strategy), dp \(setup.dp), A \(setup.accumulation)"
    for r in results {
        assertAllPass(DataParallelCheck.gradients(r, setup: setup, reference: reference), context, file: file, line: line)
    }
    return results
}
