// Tasks 3.5–3.8: the schedules on in-process stages against the single-process reference: the
// loss and every gradient of every stage, the activations each stage held at most, and the order
// in which data parallelism hears of the backwards. A schedule that deadlocks fails in
// `stageTimeout` seconds with the stage, what it waited for and what it had run.
// Legend: pp = stages, s = a stage, M = micro-batches, v = chunks per stage.

import Distributed
import LessonKit
import LessonTesting
import Llama
@testable import Step3_PipelineParallel
import XCTest

final class ScheduleTaskTests: XCTestCase {
    /// Runs one engine for each (pp, M) and checks gradients, the activations held (`held(pp, s, M)`)
    /// and data parallelism's order. `task` is the one under test. Returns false after a failure.
    @discardableResult
    func checkEngine(_ engine: PipelineEngine, task: String, cases: [(pp: Int, m: Int)], tied: Bool = false,
                     held: ((Int, Int, Int) -> Int)?, heldRule: String,
                     file: StaticString = #filePath, line: UInt = #line) throws -> Bool {
        let p = pipelineProblem(layers: 4, tied: tied)
        let reference = p.reference()
        for (pp, m) in cases {
            beginTasks()
            let reports = try runStages(pp, reference: reference, hint: "a gradient M times too large or too small: the "
                                        + "loss / M, or a micro-batch's backward run twice or not at all",
                                        pipelineSetup(p, pp: pp, m: m, engine: engine))
            if unfinished(task, file: file, line: line) { return false }
            let context = "\(engine.rawValue), pp \(pp), M \(m)\(tied ? ", tied" : ""): "
            if stopped(reports, context, file: file, line: line) { return false }
            if syncedTooEarly(reports, m: m, context, file: file, line: line) { return false }
            if let held {
                let got = reports.map(\.peakHeld), want = (0 ..< pp).map { held(pp, $0, m) }
                if got != want {
                    failTask("\(context)stages held at most \(got) micro-batches' activations, want \(want): \(heldRule)",
                             file: file, line: line)
                    return false
                }
            }
            guard passes(reports.flatMap(\.checks), context, file: file, line: line) else { return false }
        }
        return true
    }

    /// Task 3.5: AFAB equals the single process, holds all M micro-batches on every stage, and runs
    /// micro-batch M − 1's backward last (data parallelism all-reduces during it).
    func testStep3_5_allForwardAllBackward() throws {
        try checkEngine(.afab, task: "Step3.5", cases: [(2, 1), (2, 4), (3, 2), (4, 4)], held: { _, _, m in m },
                        heldRule: "AFAB runs every forward before the first backward")
    }

    /// Task 3.6: 1F1B equals the single process and stage s holds at most min(pp − s, M) micro-batches.
    func testStep3_6_oneForwardOneBackward() throws {
        try checkEngine(.oneFOneB, task: "Step3.6", cases: [(2, 1), (2, 4), (3, 2), (3, 8), (4, 1), (4, 4), (4, 8)],
                        held: { pp, s, m in min(pp - s, m) },
                        heldRule: "stage s warms up with pp − s − 1 forwards, then one forward, one backward")
    }

    /// Task 3.7: tied embeddings: the first stage's embedding and the last stage's copy for the head
    /// end with the same, summed gradient, for both engines; with data parallelism too (dp 2 × pp 2,
    /// Step 1's bucketed all-reduce, which writes each average when its all-reduce lands: the sum must come after).
    func testStep3_7_tiedEmbeddingGradientsSummedAfterDataParallelism() throws {
        for engine in [PipelineEngine.afab, .oneFOneB] {
            let cases = [(pp: 2, m: 2), (4, 4)]
            guard try checkEngine(engine, task: "Step3.7", cases: cases, tied: true, held: nil, heldRule: "") else { return }
        }
        let p = pipelineProblem(layers: 4, tied: true)
        let reference = p.reference()
        for engine in [PipelineEngine.afab, .oneFOneB] {
            beginTasks()
            let hint = "data parallelism's finishStep, then the tied sum"
            let reports = try runStages(4, reference: reference, checkLoss: false, hint: hint) { world in
                let grid = try ProcessGrid(dp: 2, pp: 2, cp: 1, tp: 1, world: world)
                let stage = PipelineStage(model: p.makeModel(), stage: grid.ppRank, stages: 2, microBatches: 2)
                let sync = AveragingSynchronizer(parameters: stage.namedParameters, group: grid.dpGroup)
                let micro = microBatches(p, 2, rows: (grid.dpRank * 4) ..< ((grid.dpRank + 1) * 4))   // 2 of 2 rows
                let link = PipelineLink(group: grid.ppGroup, count: messageCount(p, micro[0]))
                let step = PipelineStep(stage: stage, link: link, synchronizer: sync)
                return StageSetup(step: step, micro: micro, engine: engine, recorder: nil)
            }
            if unfinished("Step3.7") { return }
            let context = "dp 2 × pp 2, \(engine.rawValue), tied: "
            if stopped(reports, context) { return }
            guard passes(reports.flatMap(\.checks), context) else { return }
        }
    }

    /// Megatron's order, written another way: the chunk of the i-th forward from
    /// `get_model_chunk_id` (Megatron-LM's schedules.py), its micro-batch by counting the earlier
    /// forwards of that chunk. Backwards take the chunks in the reverse order.
    static func megatronOrder(pp: Int, s: Int, v: Int, m: Int)
        -> (forwards: [[Int]], backwards: [[Int]], warmup: Int) {
        func chunk(_ i: Int, forward: Bool) -> Int {
            let k = (i % (pp * v)) / pp
            return forward ? k : v - k - 1
        }
        func order(forward: Bool) -> [[Int]] {
            var seen = [Int](repeating: 0, count: v)
            return (0 ..< m * v).map { i in
                let k = chunk(i, forward: forward)
                defer { seen[k] += 1 }
                return [seen[k], k]
            }
        }
        return (order(forward: true), order(forward: false), min((pp - s - 1) * 2 + (v - 1) * pp, m * v))
    }

    /// (m, k) pairs as the lesson writes them.
    static func show(_ o: [[Int]]) -> String { o.map { "(\($0[0]), \($0[1]))" }.joined(separator: " ") }

    /// Task 3.8: the interleaved order and warm-up of every stage, then the interleaved schedule
    /// against the single process (an even and an uneven split, tied embeddings), holding at most
    /// warm-up + 1 micro-batch chunks.
    func testStep3_8_interleavedOrder() throws {
        beginTasks()
        var wrong: String?
        for (pp, v, m) in [(2, 2, 4), (2, 3, 2), (4, 2, 8), (3, 2, 3)] {
            for s in 0 ..< pp where wrong == nil {
                let got = interleavedOrder(stages: pp, stage: s, chunks: v, microBatches: m)
                let want = Self.megatronOrder(pp: pp, s: s, v: v, m: m)
                let context = "pp \(pp), v \(v), M \(m), stage \(s): "
                let (forwards, backwards) = (got.forwards.map { [$0.m, $0.k] }, got.backwards.map { [$0.m, $0.k] })
                if forwards != want.forwards {
                    wrong = context + "forwards (m, k) \(Self.show(forwards)), want \(Self.show(want.forwards))"
                } else if backwards != want.backwards {
                    wrong = context + "backwards (m, k) \(Self.show(backwards)), want \(Self.show(want.backwards))"
                        + " (backwards walk the chunks down: chunk v − 1 − k)"
                } else if got.warmup != want.warmup {
                    wrong = context + "warm-up \(got.warmup) forwards, want \(want.warmup) "
                        + "= min(2 (pp − s − 1) + (v − 1) pp, M v)"
                }
            }
        }
        if unfinished("Step3.8") { return }
        if let wrong {
            failTask(wrong)
            return
        }
        let runs = [(layers: 8, pp: 2, v: 2, m: 4, tied: false), (8, 4, 2, 8, false), (6, 2, 2, 2, false), (8, 2, 2, 4, true)]
        for (layers, pp, v, m, tied) in runs {
            let p = pipelineProblem(layers: layers, tied: tied, rows: 16)
            let reports = try runStages(pp, reference: p.reference(), hint: "the interleaved order or the chunks' messages",
                                        interleavedSetup(p, pp: pp, v: v, m: m))
            if unfinished("Step3.8") { return }   // the tasks it runs on: the stage's forward and backward
            let context = "interleaved, \(layers) layers, pp \(pp), v \(v), M \(m)\(tied ? ", tied" : ""): "
            if stopped(reports, context) { return }
            let want = (0 ..< pp).map { min(Self.megatronOrder(pp: pp, s: $0, v: v, m: m).warmup + 1, m * v) }
            if reports.map(\.peakHeld) != want {
                failTask("\(context)stages held at most \(reports.map(\.peakHeld)) micro-batch chunks, want \(want): "
                         + "the warm-up's forwards, then one forward and one backward in turn")
                return
            }
            guard passes(reports.flatMap(\.checks), context) else { return }
        }
    }
}
