// Task 1.3: bucket assignment. Reverse parameter order (gradients become ready from the last
// layer back), greedy up to the capacity, an oversized tensor alone, every tensor exactly once.

import ExerciseKit
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class BucketTests: XCTestCase {
    func testCapacityIsInMiB() {
        XCTAssertEqual(bucketCapacity(megabytes: 25), 25 * 1024 * 1024 / 4, "25 MB = 25 MiB of float32, as in torch")
        XCTAssertEqual(bucketCapacity(megabytes: 1e-9), 1, "at least one float")
        // Values the command lines refuse still convert without trapping: clamped to [1 float, 1 TiB].
        let most = maxBucketMB * 1024 * 1024 / 4
        for (mb, floats) in [(Double.infinity, most), (1e300, most), (-.infinity, 1), (.nan, 1), (-5, 1)] {
            XCTAssertEqual(bucketCapacity(megabytes: mb), floats, "bucketCapacity(megabytes: \(mb))")
        }
        XCTAssertNil(bucketSizeProblem(megabytes: 25))
        for mb in [0, -1, .infinity, .nan, 1e300] {
            XCTAssertNotNil(bucketSizeProblem(megabytes: mb), "--bucket-mb \(mb) must be refused")
        }
    }

    func testBucketsTakeParametersInReverseOrderUpToCapacity() {
        Todo.reset()
        let small = assignBuckets(sizes: [5, 3, 4, 2, 6], capacity: 8)
        let oversized = assignBuckets(sizes: [10, 1], capacity: 4)
        if unfinished("Step1.3") { return }
        XCTAssertEqual(small, [[4, 3], [2, 1], [0]], "sizes [5, 3, 4, 2, 6], capacity 8: fill from the last tensor")
        XCTAssertEqual(oversized, [[1], [0]], "a tensor larger than the capacity gets a bucket of its own")
    }

    func testEveryTrainableTensorIsInExactlyOneBucket() {
        let sizes = LessonProblem().makeModel().parameters.map(\.count)
        Todo.reset()
        let plans = [0.001, 0.02, 0.05, 0.2, 25].map { assignBuckets(sizes: sizes, capacity: bucketCapacity(megabytes: $0)) }
        if unfinished("Step1.3") { return }
        for (mb, plan) in zip([0.001, 0.02, 0.05, 0.2, 25], plans) {
            XCTAssertEqual(plan.flatMap { $0 }, Array(sizes.indices.reversed()), "\(mb) MB: every index once, in reverse")
            let cap = bucketCapacity(megabytes: mb)
            for b in plan where b.count > 1 {
                XCTAssertLessThanOrEqual(b.map { sizes[$0] }.reduce(0, +), cap, "\(mb) MB: bucket \(b) over capacity")
            }
        }
        XCTAssertEqual(plans.last!.count, 1, "the lesson model (0.36 MB) fits one 25 MB bucket")
    }
}
