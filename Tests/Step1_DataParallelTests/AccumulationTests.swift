// Task 1.2: gradient accumulation without synchronisation. Only the last micro-batch of a step
// reduces; the result equals the single-process gradient of the global batch, and the
// traffic is 1/A of syncing after every micro-batch.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class AccumulationTests: XCTestCase {
    func testOnlyTheLastMicroBatchSynchronises() {
        beginTasks()
        let rule = (0..<4).map { shouldSynchronize(microBatch: $0, of: 4) }
        let single = shouldSynchronize(microBatch: 0, of: 1)
        if unfinished("Step1.2") { return }
        expectEqual(rule, [false, false, false, true], "with A = 4 only micro-batch 3 (the last) may synchronise")
        expect(single, "with one micro-batch, that micro-batch is the last: it must synchronise")
    }

    func testAccumulatedGradientsEqualSingleProcess() throws {
        for dp in 1...4 {
            guard try checkGradients(DataParallelSetup(dp: dp, accumulation: 4, microBatch: 1, strategy: .naive),
                                     task: "Step1.2") != nil else { return }
        }
    }

    /// One sync per step instead of A: same gradients, a quarter of the calls and bytes.
    func testNoSyncSavesTraffic() throws {
        let noSync = DataParallelSetup(dp: 2, accumulation: 4, strategy: .naive)
        var every = noSync
        every.strategy = .naive(everyMicroBatch: true)
        guard let a = try checkGradients(noSync, task: "Step1.2"),
              let b = try checkGradients(every, task: "Step1.2") else { return }
        let tensors = a[0].gradients.count, floats = a[0].gradients.values.reduce(0) { $0 + $1.count }
        let (once, four) = (a[0].traffic.total(), b[0].traffic.total())
        expectEqual(once.calls, tensors, "no-sync: all-reduces per step (one per tensor)")
        expectEqual(once.bytes, 4 * floats, "no-sync: bytes per step (each gradient once)")
        expectEqual(four.calls, 4 * tensors, "syncing every micro-batch: all-reduces per step (A per tensor)")
        expectEqual(four.bytes, 4 * once.bytes, "syncing every micro-batch: bytes per step")
    }
}
