// Tasks 1.7–1.10, ZeRO-1: the slice a rank owns (every value owned once, padding when dp does not
// divide P), the reduce-scatter (the average on the owned values, zeros elsewhere), the all-gather
// after the sliced AdamW step (every parameter after three steps equal to the single-process run's,
// at dp 2 and 4), and the norm over all slices. Tolerance: 1e-5 of the largest reference value,
// as for plain data parallelism (the ranks sum in another order; a real bug is off by 1e-2 or more).

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class ZeroPartitionTests: XCTestCase {
    func testSlicesCoverEveryValueOnceWithPadding() {
        beginTasks()
        let example = zeroPartition(sizes: [5, 3, 4], ranks: 3, rank: 1)
        if unfinished("Step1.7") { return }
        let none = { (r: Range<Int>) in r.isEmpty ? 0 ..< 0 : r }   // any empty range means "none of it"
        expectEqual(ZeroPartition(total: example.total, sliceLength: example.sliceLength, owned: example.owned,
                                  pieces: example.pieces.map(none)),
                    ZeroPartition(total: 12, sliceLength: 4, owned: 4 ..< 8, pieces: [4 ..< 5, 0 ..< 3, 0 ..< 0]),
                    "sizes [5, 3, 4] on 3 ranks, rank 1: flat values 4..<8 are the last of parameter 0 and all of 1")
        for (sizes, dp) in [([10], 4), ([5, 3, 4, 2, 6], 3), ([7, 1, 1, 9], 4), ([2, 2], 5), ([90432], 2), ([3, 0, 4], 2)] {
            let total = sizes.reduce(0, +), s = (total + dp - 1) / dp
            var owner = [Int](repeating: -1, count: total)
            for r in 0 ..< dp {
                let z = zeroPartition(sizes: sizes, ranks: dp, rank: r)
                guard expectEqual(z.sliceLength, s, "sizes \(sizes), dp \(dp): S = ⌈P/dp⌉ (round up, pad the last)"),
                      expectEqual(z.owned, min(r * s, total) ..< min((r + 1) * s, total),
                                  "sizes \(sizes), dp \(dp), rank \(r): owned = [r·S, (r+1)·S) clamped to P = \(total)")
                else { return }
                var offset = 0
                for (k, n) in sizes.enumerated() {
                    let piece = z.pieces[k]
                    guard expect(piece.lowerBound >= 0 && piece.upperBound <= n,
                                 "sizes \(sizes), dp \(dp), rank \(r): piece \(piece) of parameter \(k) is outside 0..<\(n)")
                    else { return }
                    for j in piece { owner[offset + j] = owner[offset + j] == -1 ? r : -2 }
                    offset += n
                }
            }
            guard expect(!owner.contains(-2), "sizes \(sizes), dp \(dp): a value is owned by two ranks"),
                  expect(!owner.contains(-1), "sizes \(sizes), dp \(dp): flat values \(owner.indices.filter { owner[$0] == -1 }.prefix(5)) are owned by no rank")
            else { return }
            expectEqual(owner, (0 ..< total).map { $0 / s }, "sizes \(sizes), dp \(dp): flat value i belongs to rank i / S")
        }
    }
}

final class ZeroStepTests: XCTestCase {
    /// Runs ZeRO-1 on in-process ranks; a rank's error fails the test naming `task`.
    func run(_ setup: DataParallelSetup, task: String) throws -> [ZeroRankResult] {
        do {
            return try InProcessRanks.run(setup.dp, timeout: 60) { world in
                try runZero(setup, group: try ProcessGrid(dp: setup.dp, pp: 1, cp: 1, tp: 1, world: world).dpGroup)
            }
        } catch {
            failTask("ZeRO-1, dp \(setup.dp), A \(setup.accumulation): \(error)", task: task)
            throw error
        }
    }

    func testReduceScatterLeavesTheAverageOnTheOwnedSlice() throws {
        for (dp, A) in [(2, 1), (4, 2), (3, 1)] {
            let setup = DataParallelSetup(dp: dp, accumulation: A, microBatch: 1)
            beginTasks()
            let results = try run(setup, task: "Step1.8")
            if unfinished("Step1.8") { return }
            let names = setup.problem.makeModel().namedParameters.map(\.0)
            let reference = setup.problem.reference().gradients
            let checks = results.flatMap { r in
                ZeroCheck.gradients(r, names: names, reference: reference).map { Check(rank: r.rank, comparison: $0) }
            }
            assertPass(checks, "ZeRO-1, dp \(dp), A \(A): ", limit: 2)
            if !checks.allSatisfy(\.comparison.passed) { return }
        }
    }

    func testParametersAfterThreeStepsEqualSingleProcess() throws {
        for (dp, A) in [(2, 1), (4, 1), (2, 2), (5, 1)] {   // 5 does not divide P = 90432: padding
            let setup = DataParallelSetup(dp: dp, accumulation: A, microBatch: 1, steps: 3)
            beginTasks()
            let results = try run(setup, task: "Step1.9")
            if unfinished("Step1.9") { return }
            let reference = setup.problem.referenceAfterSteps(3, hyper: setup.hyper, frozen: [])
            for r in results {
                let losses = zip(r.losses, reference.losses).map { abs($0 - $1) }.max() ?? .nan
                guard expect(losses <= 1e-5 * abs(reference.losses[0]), "ZeRO-1, dp \(dp), rank \(r.rank): losses "
                             + "\(r.losses), single process \(reference.losses)") else { return }
                let params = reference.parameters.keys.sorted().map { name in
                    ReferenceCheck.compare("rank \(r.rank): \(name) after 3 steps", got: r.parameters[name]!,
                                           want: reference.parameters[name]!)
                        .withHint("values this rank does not own come from their owner's all-gathered slice: is "
                                  + "every parameter's p.data replaced by flat values o ..< o + n of the gathered buffer?")
                }
                assertPass(params, rank: r.rank, "ZeRO-1, dp \(dp), A \(A): ")
                if !params.allSatisfy(\.passed) { return }
                let owned = r.partition.owned.count
                guard expectEqual(r.stateBytes, 8 * owned, "dp \(dp), rank \(r.rank): AdamW's moments hold 8 bytes per "
                                  + "owned value (8P/dp in all)") else { return }
            }
        }
    }

    func testTrafficIsAReduceScatterAndAnAllGatherOfTheSlices() throws {
        let setup = DataParallelSetup(dp: 4, accumulation: 1, microBatch: 1, steps: 1)
        beginTasks()
        let results = try run(setup, task: "Step1.9")
        if unfinished("Step1.9") { return }
        let s = results[0].partition.sliceLength
        for r in results {
            let t = r.traffic
            func bytes(_ op: CommOp) -> Int { t.entries.filter { $0.key.op == op }.reduce(0) { $0 + $1.value.bytes } }
            guard expectEqual(bytes(.reduceScatter), 4 * 4 * s, "rank \(r.rank): the reduce-scatters of "
                              + "the padded flat gradients, 4 B × dp·S in all rounds"),
                  expectEqual(bytes(.allGather), 4 * s, "rank \(r.rank): the all-gathers of the "
                              + "rank's slice, 4 B × S in all rounds")
            else { return }
        }
    }

    func testGlobalNormAddsTheSlices() throws {
        for dp in [2, 4] {
            let setup = DataParallelSetup(dp: dp, accumulation: 1, microBatch: 2)
            beginTasks()
            let results = try run(setup, task: "Step1.10")
            if unfinished("Step1.10") { return }
            let want = setup.problem.reference().gradients.values.reduce(0.0) { sum, g in
                g.reduce(sum) { $0 + Double($1) * Double($1) }
            }
            for r in results {
                guard expect(abs(r.squaredNorm - want) <= 1e-5 * want, "dp \(dp), rank \(r.rank): Σ g² = \(r.squaredNorm), "
                             + "single process \(want): the squares of every slice add up (an all-reduce sum of the "
                             + "local Σ g²); clipping with this rank's own would scale each slice differently")
                else { return }
            }
        }
    }
}
