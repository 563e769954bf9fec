// Helpers shared by the tensor-parallel tests: run on in-process ranks, compare with the
// reference and fail with the rank, tensor, max |Δ|, where, and the likely cause; and turn an
// unfinished exercise into one failing test that names its task instead of a crash.

import Distributed
import LessonKit
import Llama
import Step2_TensorParallel
import TensorCore
import XCTest

/// Relative tolerance of every comparison: 1e-5 of the largest reference value. A split matmul
/// and an all-reduce add the same float32 terms in another order (a few ulp of the largest
/// partial sums); a missing all-reduce, a wrong shard or a doubled gradient is off by 1e-2 or more.
let tolerance: Float = ReferenceCheck.relativeTolerance

/// Runs `body` on `tp` in-process ranks; any rank's error fails the test with its rank.
func onRanks<T>(_ n: Int, file: StaticString = #filePath, line: UInt = #line,
                _ body: @escaping (Communicator) throws -> T) throws -> [T] {
    do { return try InProcessRanks.run(n, timeout: 60, body) } catch {
        XCTFail("\(error)", file: file, line: line)
        throw error
    }
}

/// One check on one rank.
struct Check: Sendable {
    var rank: Int
    var comparison: Comparison
}

/// Compares a rank's values with the reference's, attaching a hint for a failure.
func check(_ rank: Int, _ name: String, got: [Float], want: [Float], shape: [Int]? = nil,
           hint: String) -> Check {
    // No gradient at all (an unfinished backward) or the wrong size: compare zeros, say so.
    let sized = got.count == want.count ? got : [Float](repeating: 0, count: want.count)
    let note = got.count == want.count ? "" : "got \(got.count) values, want \(want.count); "
    return Check(rank: rank, comparison: ReferenceCheck.compare(name, got: sized, want: want, relative: tolerance,
                                                                shape: shape).withHint(note + hint))
}

/// Fails once per failing check with `rank r: FAIL name max|Δ| … at [i, j] (got, want) hint: …`.
func assertPass(_ checks: [Check], _ context: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(checks.isEmpty, "nothing was compared", file: file, line: line)
    for c in checks where !c.comparison.passed {
        XCTFail("\(context)rank \(c.rank): \(c.comparison)", file: file, line: line)
    }
}

/// Starts a test of exercise tasks: forgets earlier TODOs.
func beginTasks() { Todo.reset() }

/// Fails (once, with the task's id, title and lesson section) when a TODO of `prefixes` was
/// reached; returns true when the caller should stop checking values.
func unfinished(_ prefixes: [String], file: StaticString = #filePath, line: UInt = #line) -> Bool {
    let pending = prefixes.flatMap { Todo.pending($0) }
    guard !pending.isEmpty else { return false }
    for task in Set(pending).sorted(by: { $0.id < $1.id }) { XCTFail("\(task)", file: file, line: line) }
    return true
}

/// The full reference gradient of every parameter, by HF name.
func referenceGradients(_ problem: LessonProblem) -> (loss: Float, gradients: [String: [Float]]) {
    problem.reference()
}

/// A small batch of values in [-1, 1), seeded.
func randomValues(_ count: Int, seed: UInt64, _ stream: String) -> [Float] {
    let rng = CounterRNG(seed: seed, stream: stream)
    return (0..<count).map { rng.uniform($0) * 2 - 1 }
}
