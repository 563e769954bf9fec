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
        beginTasks()
        let small = assignBuckets(sizes: [5, 3, 4, 2, 6], capacity: 8)
        let oversized = assignBuckets(sizes: [10, 1], capacity: 4)
        let oversizedLast = assignBuckets(sizes: [2, 9], capacity: 4)
        let exact = assignBuckets(sizes: [4, 4, 2, 2], capacity: 4)
        if unfinished("Step1.3") { return }
        expectEqual(small, [[4, 3], [2, 1], [0]], "sizes [5, 3, 4, 2, 6], capacity 8: fill from the last tensor")
        expectEqual(oversized, [[1], [0]], "sizes [10, 1], capacity 4: a tensor larger than the capacity goes alone")
        expectEqual(oversizedLast, [[1], [0]], "sizes [2, 9], capacity 4: no empty bucket before an oversized tensor")
        expectEqual(exact, [[3, 2], [1], [0]], "sizes [4, 4, 2, 2], capacity 4: a bucket may be exactly full (<= S)")
    }

    func testEveryTrainableTensorIsInExactlyOneBucket() {
        let sizes = LessonProblem().makeModel().parameters.map(\.count)
        beginTasks()
        let plans = [0.001, 0.02, 0.05, 0.2, 25].map { assignBuckets(sizes: sizes, capacity: bucketCapacity(megabytes: $0)) }
        if unfinished("Step1.3") { return }
        for (mb, plan) in zip([0.001, 0.02, 0.05, 0.2, 25], plans) {   // stop at the first plan with a problem
            let cap = bucketCapacity(megabytes: mb)
            guard expectEqual(plan.flatMap { $0 }, Array(sizes.indices.reversed()),
                              "\(mb) MB: every index once, in reverse"),
                  expect(!plan.contains { $0.isEmpty }, "\(mb) MB: an empty bucket in \(plan)") else { return }
            for (i, b) in plan.enumerated() {
                let filled = b.map { sizes[$0] }.reduce(0, +)
                guard expect(b.count == 1 || filled <= cap,
                             "\(mb) MB: bucket \(i) \(b) holds \(filled) floats, over the capacity \(cap)") else { return }
                // A bucket closes only when the next tensor does not fit.
                guard let next = plan.dropFirst(i + 1).first?.first else { continue }
                guard expect(filled + sizes[next] > cap, "\(mb) MB: bucket \(i) \(b) closed with \(filled) floats "
                             + "although tensor \(next) (\(sizes[next]) floats) still fit (capacity \(cap))") else { return }
            }
        }
        expectEqual(plans.last!.count, 1, "the lesson model (0.36 MB) fits one 25 MB bucket: buckets")
    }
}
