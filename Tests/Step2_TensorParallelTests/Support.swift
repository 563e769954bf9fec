// What Step 2's tests add to the shared vocabulary (LessonTesting): the reference gradients of the
// lesson problem, and the gate of the block and model tests.

import LessonKit
import LessonTesting
import XCTest

/// The full reference gradient of every parameter, by HF name.
func referenceGradients(_ problem: LessonProblem) -> (loss: Float, gradients: [String: [Float]]) {
    problem.reference()
}

/// For the tests of a block or the whole model: runs every task's own checks at tp 2 first
/// (`TaskChecks`). Fails once per unfinished task, or once naming the first task whose checks fail
/// and the tests that show it, and returns true: the block or model would repeat that failure
/// under another name, many times, or trap on it.
func tasksNotReady(file: StaticString = #filePath, line: UInt = #line) throws -> Bool {
    beginTasks()
    let tasks = try TaskChecks.everyTask()
    if unfinished(["Step2."], file: file, line: line) { return true }
    guard let broken = tasks.first(where: { !TaskChecks.passes($0.checks) }),
          let c = broken.checks.first(where: { !$0.comparison.passed }) else { return false }
    XCTFail("\(broken.task): fix the \(broken.tests) first (\(broken.task)'s own check fails on rank \(c.rank): "
            + "\(c.comparison))", file: file, line: line)
    return true
}
