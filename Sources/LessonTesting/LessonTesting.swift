// The words every Step's tests are written in: run code on in-process ranks, compare a rank's
// values with the single-process reference, fail with the rank, the tensor, max |Δ|, where and a
// hint, and turn an unfinished exercise into one failure that names its task (never a crash,
// never a flood: at most a few messages per test).
//
//     beginTasks()
//     let checks = try onRanks(2) { comm in [check(comm.rank, "grad w", got: g, want: ref, hint: "…")] }
//     if unfinished("Step2.3") { return }
//     assertPass(checks)

import Distributed
import ExerciseKit
import LessonKit
import TensorCore
import XCTest

/// Relative tolerance of every comparison: 1e-5 of the largest reference value. Parallel code adds
/// the same float32 terms in another order (a few ulp of the largest partial sums); a missing
/// all-reduce, a wrong shard or a doubled gradient is off by 1e-2 or more.
public let tolerance: Float = ReferenceCheck.relativeTolerance

/// Runs `body` on `n` in-process ranks (a bounded wait: a rank that waits on a peer for
/// `timeout` seconds fails, naming what it waited for); any rank's error fails the test.
public func onRanks<T>(_ n: Int, timeout: Double = 60, file: StaticString = #filePath, line: UInt = #line,
                       _ body: @escaping (Communicator) throws -> T) throws -> [T] {
    do { return try InProcessRanks.run(n, timeout: timeout, body) } catch {
        failTask("\(error)", file: file, line: line)   // the running task's, if a test set one
        throw error
    }
}

/// One comparison on one rank.
public struct Check: Sendable {
    public var rank: Int
    public var comparison: Comparison
    public init(rank: Int, comparison: Comparison) { (self.rank, self.comparison) = (rank, comparison) }
}

/// Compares a rank's values with the reference's, with a hint for a failure. No values at all (an
/// unfinished backward) or the wrong count compares zeros and says so.
public func check(_ rank: Int, _ name: String, got: [Float], want: [Float], shape: [Int]? = nil, hint: String) -> Check {
    let sized = got.count == want.count ? got : [Float](repeating: 0, count: want.count)
    let note = got.count == want.count ? "" : "got \(got.count) values, want \(want.count); "
    return Check(rank: rank, comparison: ReferenceCheck.compare(name, got: sized, want: want, relative: tolerance,
                                                                shape: shape).withHint(note + hint))
}

/// The task the running test checks (set by `unfinished(_:)`): every failure message starts with
/// it, so a student reads which task is wrong first.
nonisolated(unsafe) public private(set) var currentTask: String?

/// Fails once per failing check, `<task>: <context>rank r: FAIL name max|Δ| … at [i, j] (got, want)
/// hint: …`, at most `limit` times, then once with how many more failed.
public func assertPass(_ checks: [Check], _ context: String = "", limit: Int = 4,
                       file: StaticString = #filePath, line: UInt = #line) {
    let context = (currentTask.map { "\($0): " } ?? "") + context
    XCTAssertFalse(checks.isEmpty, "\(context)nothing was compared", file: file, line: line)
    let failed = checks.filter { !$0.comparison.passed }
    for c in failed.prefix(limit) { XCTFail("\(context)rank \(c.rank): \(c.comparison)", file: file, line: line) }
    if failed.count > limit {
        XCTFail("\(context)… and \(failed.count - limit) more checks failed", file: file, line: line)
    }
}

/// `XCTFail` with a task first: `task`, or else the running one.
public func failTask(_ message: String, task: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
    XCTFail(((task ?? currentTask).map { "\($0): " } ?? "") + message, file: file, line: line)
}

/// The same for comparisons of one rank.
public func assertPass(_ comparisons: [Comparison], rank: Int, _ context: String = "", limit: Int = 4,
                       file: StaticString = #filePath, line: UInt = #line) {
    assertPass(comparisons.map { Check(rank: rank, comparison: $0) }, context, limit: limit, file: file, line: line)
}

/// Starts a test of exercise tasks: forgets the TODOs reached before, and the running task.
public func beginTasks() {
    Todo.reset()
    currentTask = nil
}

/// Whether task `id` cannot be checked yet. Fails once, naming the task, its title and the lesson
/// section, when its own TODO or an earlier one of the same step it builds on was reached.
/// Otherwise the test checks task `id` from here on: its failures name it.
public func unfinished(_ id: String, file: StaticString = #filePath, line: UInt = #line) -> Bool {
    currentTask = id
    let step = id.prefix { $0 != "." } + "."
    guard let message = Todo.failure(task: id, prefix: String(step)) else { return false }
    XCTFail(message, file: file, line: line)
    return true
}

/// Whether any TODO of the given steps or tasks (`"Step2."`, `"Step2.3"`) was reached; fails once,
/// with the first such task's message and the ids of the others. For tests that check several
/// tasks together (one failure, not one per task: fourteen such tests would otherwise bury the
/// per-task messages).
public func unfinished(_ prefixes: [String], file: StaticString = #filePath, line: UInt = #line) -> Bool {
    let pending = Set(prefixes.flatMap { Todo.pending($0) })
        .sorted { Todo.order($0.id).lexicographicallyPrecedes(Todo.order($1.id)) }
    guard let first = pending.first else { return false }
    let others = pending.dropFirst().map(\.id)
    XCTFail("\(first)" + (others.isEmpty ? "" : " (not written yet either: \(others.joined(separator: ", ")))"),
            file: file, line: line)
    return true
}

/// `count` values in [-1, 1), from a seed and a stream name (the same on every rank).
public func randomValues(_ count: Int, seed: UInt64, _ stream: String) -> [Float] {
    let rng = CounterRNG(seed: seed, stream: stream)
    return (0..<count).map { rng.uniform($0) * 2 - 1 }
}

/// Collects what a lesson prints (rank 0 emits blocks of lines, possibly from a rank's thread),
/// so a test can check the lines the lesson executable would print.
public final class LessonLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    public init() {}

    /// Adds a block of output, split into lines.
    public func add(_ block: String) {
        lock.lock()
        lines += block.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lock.unlock()
    }

    /// Every line so far.
    public var text: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}
