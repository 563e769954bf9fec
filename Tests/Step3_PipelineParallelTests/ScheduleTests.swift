// Pipeline parallelism against the single-process reference once every task is written: the loss
// of the whole batch and every parameter's gradient on every stage, for pp 2, 3, 4 × micro-batches
// 1, 2, 4, 8 × every engine, tied and untied, an uneven split; with data parallelism; and the
// activations each schedule holds. Each test first checks that no task of Step 3 is a TODO.
// Legend: pp = stages, M = micro-batches, v = chunks per stage.

import Distributed
import LessonKit
import LessonTesting
import Llama
@testable import Step3_PipelineParallel
import TensorCore
import Training
import XCTest

final class ScheduleTests: XCTestCase {
    /// Runs one step on pp in-process stages; checks the loss and every gradient of every stage.
    /// Returns the most micro-batches each stage held, or nil after a failure.
    func verify(_ p: LessonProblem, pp: Int, m: Int, engine: PipelineEngine,
                file: StaticString = #filePath, line: UInt = #line) throws -> [Int]? {
        beginTasks()
        let reports = try runStages(pp, reference: p.reference(),
                                    hint: "a gradient M times too large: the loss was not divided by M",
                                    pipelineSetup(p, pp: pp, m: m, engine: engine, record: false))
        if unfinished(["Step3."], file: file, line: line) { return nil }
        let context = "pp \(pp), M \(m), \(engine.rawValue), \(p.config.tieWordEmbeddings ? "tied" : "untied"): "
        if stopped(reports, context, file: file, line: line) { return nil }
        assertPass(reports.flatMap(\.checks), context, file: file, line: line)
        return reports.map(\.peakHeld)
    }

    func testEveryEngineEqualsTheSingleProcessForEverySplit() throws {
        for pp in [2, 3, 4] {
            for m in [1, 2, 4, 8] {
                for engine in [PipelineEngine.afab, .oneFOneB, .zeroBubble] {
                    let p = pipelineProblem(layers: 4)                        // pp 3: layers 2, 1, 1
                    guard try verify(p, pp: pp, m: m, engine: engine) != nil else { return }
                }
            }
        }
    }

    func testTiedEmbeddingsSumTheirGradientsAcrossFirstAndLastStage() throws {
        for pp in [2, 4] {
            for engine in [PipelineEngine.afab, .oneFOneB, .zeroBubble] {
                let p = pipelineProblem(layers: 4, tied: true)
                guard try verify(p, pp: pp, m: 4, engine: engine) != nil else { return }
            }
        }
    }

    func testOneFOneBHoldsAtMostPPMinusStageMicroBatches() throws {
        let p = pipelineProblem(layers: 4)
        guard let afab = try verify(p, pp: 4, m: 8, engine: .afab),
              let ofob = try verify(p, pp: 4, m: 8, engine: .oneFOneB) else { return }
        XCTAssertEqual(afab, [8, 8, 8, 8], "AFAB holds every micro-batch's activations")
        XCTAssertEqual(ofob, [4, 3, 2, 1], "1F1B holds at most pp − s micro-batches on stage s")
        guard let zb = try verify(p, pp: 4, m: 8, engine: .zeroBubble) else { return }
        XCTAssertEqual(zb, [4, 3, 2, 1], "zb runs 1F1B's order: the same activations held")
    }

    /// dp 2 × pp 2 on 4 ranks: each dp replica pipelines half the batch; the bucketed all-reduce
    /// averages after the step's last backward; every gradient equals the single process's.
    func testDataParallelTimesPipelineParallel() throws {
        let p = pipelineProblem(layers: 4, rows: 8)
        let reference = p.reference()
        for engine in PipelineEngine.allCases {
            beginTasks()
            let hint = "dp must average once, after the step's last backward"
            let reports = try runStages(4, reference: reference, checkLoss: false, hint: hint) { world in
                let grid = try ProcessGrid(dp: 2, pp: 2, cp: 1, tp: 1, world: world)
                let (v, m) = engine == .interleaved ? (2, 2) : (1, 2)
                let model = p.makeModel()
                let chunks = (0 ..< v).map {
                    PipelineStage(model: model, stage: $0 * 2 + grid.ppRank, stages: 2 * v, microBatches: m)
                }
                let sync = AveragingSynchronizer(parameters: chunks.flatMap(\.namedParameters), group: grid.dpGroup)
                let micro = microBatches(p, m, rows: (grid.dpRank * 4) ..< ((grid.dpRank + 1) * 4))   // this replica's
                let link = PipelineLink(group: grid.ppGroup, count: messageCount(p, micro[0]))
                let step = PipelineStep(chunks: chunks, link: link, synchronizer: sync)
                return StageSetup(step: step, micro: micro, engine: engine, recorder: nil)
            }
            if unfinished(["Step3."]) { return }
            let context = "dp 2 × pp 2, \(engine.rawValue): "
            if stopped(reports, context) { return }
            assertPass(reports.flatMap(\.checks), context)
        }
    }
}

final class InterleavedTests: XCTestCase {
    /// Runs interleaved 1F1B with v chunks per stage on pp ranks and checks every gradient.
    func verify(layers: Int, pp: Int, v: Int, m: Int, tied: Bool = false) throws -> Bool {
        beginTasks()
        let p = pipelineProblem(layers: layers, tied: tied, rows: 16)
        let reports = try runStages(pp, reference: p.reference(), hint: "interleaved order or chunk assignment",
                                    interleavedSetup(p, pp: pp, v: v, m: m))
        if unfinished(["Step3."]) { return false }
        let context = "interleaved pp \(pp), v \(v), M \(m)\(tied ? ", tied" : ""): "
        if stopped(reports, context) { return false }
        assertPass(reports.flatMap(\.checks), context)
        return true
    }

    func testInterleavedEqualsTheSingleProcess() throws {
        for (pp, v) in [(2, 2), (2, 3), (4, 2)] {
            for m in [pp, 2 * pp, 4 * pp] where pp * v <= 8 {
                guard try verify(layers: 8, pp: pp, v: v, m: m) else { return }
            }
        }
        guard try verify(layers: 8, pp: 2, v: 2, m: 4, tied: true) else { return }
        _ = try verify(layers: 6, pp: 2, v: 2, m: 2)   // an uneven split: chunks of 2, 2, 1, 1 layers
    }
}
