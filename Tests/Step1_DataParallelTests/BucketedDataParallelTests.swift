// Tasks 1.4 and 1.5: bucketed data parallelism with overlap. Launched from the gradient hooks
// during backward, waited once at the end; equal to the single-process gradients for every dp,
// accumulation and bucket size, and bit for bit equal across bucket sizes.

import ExerciseKit
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class BucketedDataParallelTests: XCTestCase {
    /// Task 1.4: each bucket is launched from a hook, before the backward pass ends.
    func testBucketsAreLaunchedDuringBackward() throws {
        let setup = DataParallelSetup(dp: 2, microBatch: 2, strategy: .bucketed(megabytes: 0.05))
        guard let results = try checkGradients(setup, task: "Step1.4") else { return }
        let r = results[0]
        XCTAssertGreaterThan(r.bucketSizes.count, 2, "0.05 MB buckets: the lesson model needs several")
        XCTAssertEqual(r.traffic.total().calls, r.bucketSizes.count, "one all-reduce per bucket per step")
        let timeline = try XCTUnwrap(r.timeline)
        let backward = try XCTUnwrap(timeline.spans.first { $0.label == "backward" })
        let first = try XCTUnwrap(timeline.spans.first { $0.label == "bucket 0" })
        XCTAssertLessThan(first.start, backward.end,
                          "bucket 0 (the last layers) must be launched from its hook while backward still runs:\n"
                          + timeline.render(marked: false))
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

    /// The in-process backend sums element by element in rank order, so packing gradients into
    /// buckets of any size cannot change a single bit: compare exactly, with naive as well.
    func testBucketSizeNeverChangesTheResult() throws {
        var setup = DataParallelSetup(dp: 3, accumulation: 4, microBatch: 1, strategy: .naive)
        guard let naive = try checkGradients(setup, task: "Step1.5") else { return }
        for mb in [0.001, 0.01, 0.05, 0.2, 25] {
            setup.strategy = .bucketed(megabytes: mb)
            guard let bucketed = try checkGradients(setup, task: "Step1.5") else { return }
            for (a, b) in zip(naive, bucketed) {
                for (name, g) in a.gradients where g != b.gradients[name] {
                    XCTFail("rank \(a.rank): \(name) with \(mb) MB buckets differs from naive: buckets must not change values")
                }
            }
        }
    }
}
