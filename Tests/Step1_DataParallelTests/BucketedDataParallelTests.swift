// Tasks 1.4 and 1.5: bucketed data parallelism with overlap. Launched from the gradient hooks
// during backward (1.4: checked on what is handed to the network, so it needs nothing of 1.5),
// waited once at the end (1.5): equal to the single-process gradients for every dp,
// accumulation and bucket size, bit for bit equal across bucket sizes, correct on a slow
// network, and a failed reduction is reported.

import Distributed
import ExerciseKit
import Foundation
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class BucketedDataParallelTests: XCTestCase {
    /// Task 1.4: each bucket is launched once, from the hook of its last gradient while backward
    /// still runs, holding this rank's own gradient in every slot. Checked on the values handed to
    /// the all-reduce, so Task 1.5 (the wait) may still be a stand-in. Twice: with the model's
    /// parameter order, and reversed, so the slots of a bucket become ready in an order other
    /// than slot order (a hook that packs "the next slot" instead of its own slot is caught).
    func testBucketsAreLaunchedDuringBackward() throws {
        for reversed in [false, true] {
            let setup = DataParallelSetup(dp: 2, microBatch: 2, strategy: .bucketed(megabytes: 0.05))
            let order = reversed ? "parameters in reverse order" : "model order"
            let watchers = Watchers()
            beginTasks()
            let results = try runRanks(setup, task: "Step1.4") { model, group in
                let watched = WatchedGroup(group)
                let named = reversed ? Array(model.namedParameters.reversed()) : model.namedParameters
                let bucketed = BucketedDataParallel(parameters: named, group: watched, bucketMB: 0.05)
                let w = WatchedSynchronizer(bucketed, watched)
                watchers.add(w)
                return w
            }
            if unfinished("Step1.4") { return }
            for r in results {   // stop at the first rank with a problem: one rank's messages say enough
                guard let w = watchers[r.rank] else { return failTask("rank \(r.rank) made no synchronizer") }
                let buckets = w.inner.buckets
                var ok = expect(buckets.count > 2, "0.05 MB buckets: the lesson model needs several, got "
                                + "\(buckets.count)")
                ok = expectEqual(r.traffic.total().calls, buckets.count,
                                 "\(order), rank \(r.rank): all-reduces in one step (one per bucket)") && ok
                let own = setup.problem.gradients(rowList: r.rows.flatMap { $0 }).gradients
                var checks: [Check] = []
                for b in buckets {
                    let launches = w.group.launches.filter { $0.buffer == ObjectIdentifier(b.buffer) }
                    guard let launch = launches.first else {
                        failTask("\(order), rank \(r.rank): bucket \(b.index) (\(b.slots.count) tensors) was never "
                                 + "launched: count each ready gradient and launch the bucket when the count reaches "
                                 + "its slots")
                        return
                    }
                    ok = expectEqual(launches.count, 1, "\(order), rank \(r.rank): bucket \(b.index)'s launches in "
                                     + "one step (launch once, when the bucket's last gradient is packed)") && ok
                    ok = expect(!launch.afterBackward, "\(order), rank \(r.rank): bucket \(b.index) was launched "
                                + "after backward ended (by finishStep's fallback): launch from the hook that completes "
                                + "the bucket") && ok
                    if !ok { return }
                    for (s, slot) in b.slots.enumerated() {
                        let got = Array(launch.values[slot.offset ..< slot.offset + slot.count])
                        let name = "\(order): bucket \(b.index) slot \(s) (\(slot.name)) at launch"
                        checks.append(check(r.rank, name, got: got, want: own[slot.name]!,
                                            hint: "the bucket must hold this rank's own gradient of each slot when it is "
                                            + "launched: pack the slot of the parameter whose hook fired (slots[s]), and "
                                            + "launch only after the bucket's last gradient is packed"))
                    }
                }
                assertPass(checks)
                if !checks.allSatisfy(\.comparison.passed) { return }
            }
        }
    }

    /// Task 1.5: after the final wait every rank holds the single-process gradients.
    func testBucketedGradientsEqualSingleProcess() throws {
        for dp in 1...4 {
            for accumulation in [1, 4] {
                for mb in [0.001, 0.05, 25] {
                    let setup = DataParallelSetup(dp: dp, accumulation: accumulation, microBatch: 1,
                                                  strategy: .bucketed(megabytes: mb))
                    guard try checkGradients(setup, task: "Step1.5") != nil else { return }
                }
            }
        }
    }

    /// Task 1.5 on a slow network: each result lands in its bucket only when waited for (20 ms
    /// late), so a bucket read before the wait holds this rank's own gradients.
    func testGradientsAreReadOnlyAfterTheWait() throws {
        let setup = DataParallelSetup(dp: 2, microBatch: 2, strategy: .bucketed(megabytes: 0.05))
        try checkGradients(setup, task: "Step1.5") { model, group in
            BucketedDataParallel(parameters: model.namedParameters, group: WatchedGroup(group, delay: 0.02),
                                 bucketMB: 0.05)
        }
    }

    /// Task 1.5: a reduction that fails must make `finishStep` throw (hooks cannot throw; the
    /// error waits for the end of the step). Rank 1 posts a mismatched all-reduce after rank 0
    /// posted its own, so rank 0 learns of the failure only when it waits.
    func testAFailedReductionIsReported() throws {
        let setup = DataParallelSetup(dp: 2, microBatch: 1, strategy: .bucketed(megabytes: 25))
        let posted = DispatchSemaphore(value: 0)
        beginTasks()
        let threw = try InProcessRanks.run(2, timeout: 30) { world -> Bool in
            let model = setup.problem.makeModel()
            var loader = try setup.problem.loader(microBatch: 1, dpRank: world.rank, dpSize: 2)
            let group = WatchedGroup(world, mismatch: posted)
            let sync = BucketedDataParallel(parameters: model.namedParameters, group: group, bucketMB: 25)
            defer { sync.detach() }
            do {
                _ = try accumulateGradients(model: model, loader: &loader, accumulation: 1, synchronizer: sync)
            } catch {
                return true
            }
            return false
        }
        if unfinished("Step1.5") { return }
        expect(threw[0], "rank 0's reduction failed (rank 1 posted a mismatched call) but finishStep did not throw: "
               + "keep the first error of inFlight.wait() in `failure`")
    }

    /// The in-process backend sums element by element in rank order, so packing gradients into
    /// buckets of any size cannot change a single bit: compare exactly, with naive as well.
    func testBucketSizeNeverChangesTheResult() throws {
        var setup = DataParallelSetup(dp: 3, accumulation: 4, microBatch: 1, strategy: .naive)
        guard let naive = try checkGradients(setup, task: "Step1.5") else { return }
        for mb in [0.001, 0.01, 0.05, 0.2, 25] {
            setup.strategy = .bucketed(megabytes: mb)
            guard let bucketed = try checkGradients(setup, task: "Step1.5") else { return }
            let differ = zip(naive, bucketed).flatMap { a, b in
                a.gradients.keys.sorted().filter { a.gradients[$0] != b.gradients[$0] }.map { "rank \(a.rank): \($0)" }
            }
            if let first = differ.first {
                return failTask("\(first) and \(differ.count - 1) more gradients with \(mb) MB buckets differ from "
                                + "naive (bit for bit): buckets must not change values")
            }
        }
    }
}
