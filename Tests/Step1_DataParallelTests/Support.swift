// What Step 1's tests add to the shared vocabulary (LessonTesting): run a data-parallel setup on
// in-process ranks, check every rank's gradients against the single-process reference, assert
// with the running task first, and watch what a bucketed synchronizer hands to the network.

import Distributed
import ExerciseKit
import Foundation
import LessonKit
import LessonTesting
import Llama
import Step1Lesson
import Step1_DataParallel
import Training
import XCTest

/// Runs `setup` on `setup.dp` in-process ranks (the dp group of a dp × 1 × 1 × 1 grid). A rank's
/// error fails the test naming `task` (the task whose code ran), then is rethrown.
func runRanks(_ setup: DataParallelSetup, task: String? = nil,
              synchronizer: ((LlamaForCausalLM, Communicator) -> GradientSynchronizer)? = nil) throws
    -> [DataParallelRankResult]
{
    do {
        return try InProcessRanks.run(setup.dp, timeout: 60) { world in
            let grid = try ProcessGrid(dp: setup.dp, pp: 1, cp: 1, tp: 1, world: world)
            return try runDataParallel(setup, group: grid.dpGroup, synchronizer: synchronizer)
        }
    } catch {
        XCTFail((task.map { "\($0): " } ?? "") + "\(setup.strategy), dp \(setup.dp), A \(setup.accumulation): \(error)")
        throw error
    }
}

/// Forgets earlier TODOs, runs the setup and checks the gradients of step 1 on every rank against
/// the reference. Returns the results when they passed; nil after a TODO failure or a failed check
/// (callers stop there: one failing configuration is enough to read, a flood is not).
@discardableResult
func checkGradients(_ setup: DataParallelSetup, task: String,
                    synchronizer: ((LlamaForCausalLM, Communicator) -> GradientSynchronizer)? = nil,
                    file: StaticString = #filePath, line: UInt = #line) throws -> [DataParallelRankResult]? {
    beginTasks()
    let results = try runRanks(setup, task: task, synchronizer: synchronizer)
    if unfinished(task, file: file, line: line) { return nil }
    let reference = setup.problem.reference(frozen: setup.frozen).gradients
    let context = "\(setup.strategy), dp \(setup.dp), A \(setup.accumulation): "
    let checks = results.flatMap { r in
        DataParallelCheck.gradients(r, setup: setup, reference: reference).map { Check(rank: r.rank, comparison: $0) }
    }
    assertPass(checks, context, limit: 2, file: file, line: line)   // the first two, then how many more
    return checks.allSatisfy(\.comparison.passed) ? results : nil
}

/// Fails, naming the running task, unless `condition` holds. Returns `condition`.
@discardableResult
func expect(_ condition: Bool, _ message: @autoclosure () -> String,
            file: StaticString = #filePath, line: UInt = #line) -> Bool {
    if !condition { failTask(message(), file: file, line: line) }
    return condition
}

/// Fails, naming the running task, unless `got == want`; prints both. Returns whether they are equal.
@discardableResult
func expectEqual<T: Equatable>(_ got: T, _ want: T, _ message: @autoclosure () -> String,
                               file: StaticString = #filePath, line: UInt = #line) -> Bool {
    if got != want { failTask("\(message()): got \(got), want \(want)", file: file, line: line) }
    return got == want
}

/// A rank's data-parallel group as a bucketed synchronizer sees it, with a window on what it is
/// handed: each non-blocking all-reduce's buffer, a copy of its values at launch (what Task 1.4
/// packed) and whether backward had ended. It can also hold each result back for `delay` seconds
/// (a slow network: the result lands in the bucket only when someone waits for it, so reading a
/// bucket early reads this rank's own values), or post a mismatched call after a peer posted its
/// own (a failed reduction, for Task 1.5's error path). Everything else goes straight through.
final class WatchedGroup: Communicator {
    struct Launch { let buffer: ObjectIdentifier; let values: [Float]; let afterBackward: Bool }
    let inner: Communicator
    let delay: Double
    /// Shared by the ranks of one run: rank 0 signals once it posted; rank 1 then posts `.max`.
    let mismatch: DispatchSemaphore?
    private(set) var launches: [Launch] = []
    /// Set by `WatchedSynchronizer.finishStep`: launches from then on were not made by a hook.
    var backwardEnded = false

    init(_ inner: Communicator, delay: Double = 0, mismatch: DispatchSemaphore? = nil) {
        (self.inner, self.delay, self.mismatch) = (inner, delay, mismatch)
    }

    var rank: Int { inner.rank }
    var size: Int { inner.size }
    var name: String { inner.name }
    var ledger: CommLedger { inner.ledger }

    func iallReduce(_ buffer: FloatBuffer, op: ReduceOp) throws(CommError) -> CommRequest<FloatBuffer> {
        launches.append(Launch(buffer: ObjectIdentifier(buffer), values: buffer.array, afterBackward: backwardEnded))
        if let mismatch {
            if rank == 0 { defer { mismatch.signal() }; return try inner.iallReduce(buffer, op: op) }
            _ = mismatch.wait(timeout: .now() + 10)
            return try inner.iallReduce(buffer, op: .max)
        }
        guard delay > 0 else { return try inner.iallReduce(buffer, op: op) }
        let shadow = FloatBuffer(buffer.array)
        let delay = self.delay
        return try inner.iallReduce(shadow, op: op).map { reduced in
            Thread.sleep(forTimeInterval: delay)
            buffer.assign(reduced.array)
            return buffer
        }
    }

    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws(CommError) {
        try inner.allReduce(buffer, op: op)
    }
    func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>)
        throws(CommError) { try inner.allGather(input, into: output) }
    func reduceScatter(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                       op: ReduceOp) throws(CommError) { try inner.reduceScatter(input, into: output, op: op) }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws(CommError) {
        try inner.broadcast(buffer, root: root)
    }
    func send(_ buffer: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws(CommError) {
        try inner.send(buffer, to: peer, tag: tag)
    }
    func recv(into buffer: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws(CommError) {
        try inner.recv(into: buffer, from: peer, tag: tag)
    }
    func isend(_ buffer: FloatBuffer, to peer: Int, tag: Int) throws(CommError) -> CommRequest<Void> {
        try inner.isend(buffer, to: peer, tag: tag)
    }
    func irecv(into buffer: FloatBuffer, from peer: Int, tag: Int) throws(CommError) -> CommRequest<FloatBuffer> {
        try inner.irecv(into: buffer, from: peer, tag: tag)
    }
    func barrier() throws(CommError) { try inner.barrier() }
    func split(color: Int, key: Int, name: String) throws(CommError) -> Communicator {
        try inner.split(color: color, key: key, name: name)
    }
}

/// A bucketed synchronizer on a `WatchedGroup`, which it tells when backward has ended.
final class WatchedSynchronizer: GradientSynchronizer {
    let inner: BucketedDataParallel
    let group: WatchedGroup
    init(_ inner: BucketedDataParallel, _ group: WatchedGroup) { (self.inner, self.group) = (inner, group) }
    func beforeBackward(microBatch index: Int, of count: Int) {
        group.backwardEnded = false
        inner.beforeBackward(microBatch: index, of: count)
    }
    func finishStep() throws {
        group.backwardEnded = true
        try inner.finishStep()
    }
}

/// The watched synchronizers of one run, by rank (the ranks are threads).
final class Watchers: @unchecked Sendable {
    private let lock = NSLock()
    private var byRank: [Int: WatchedSynchronizer] = [:]
    subscript(rank: Int) -> WatchedSynchronizer? { lock.lock(); defer { lock.unlock() }; return byRank[rank] }
    func add(_ w: WatchedSynchronizer) { lock.lock(); byRank[w.group.rank] = w; lock.unlock() }
}
