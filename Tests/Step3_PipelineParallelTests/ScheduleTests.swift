// Pipeline parallelism against the single-process reference: the loss of the whole batch and
// every parameter's gradient on every stage, for pp 2, 3, 4 × micro-batches 1, 2, 4, 8 × AFAB and
// 1F1B, tied and untied, an uneven split; with data parallelism; and the memory each schedule holds.
// Legend: pp = stages, M = micro-batches, B = rows of the whole batch.

import Distributed
import LessonKit
import LessonTesting
import Llama
import Step1_DataParallel
import Step3_PipelineParallel
import TensorCore
import Training
import XCTest

final class ScheduleTests: XCTestCase {
    /// A lesson problem with `layers` decoder layers and a batch of `rows` rows of 8 tokens.
    func problem(layers: Int, tied: Bool = false, rows: Int = 8) -> LessonProblem {
        var c = LessonProblem.lessonConfig
        c.numHiddenLayers = layers
        c.tieWordEmbeddings = tied
        return LessonProblem(config: c, batch: rows, length: 8)
    }

    /// The batch cut into `count` micro-batches of consecutive rows.
    func microBatches(_ p: LessonProblem, _ count: Int) -> [MicroBatch] {
        let b = p.batch / count
        return (0 ..< count).map { m in
            let (x, y) = p.rows((m * b) ..< ((m + 1) * b))
            return MicroBatch(inputs: x, targets: y, batch: b, length: p.length)
        }
    }

    /// Runs one step on pp in-process stages; checks the loss and every gradient of every stage.
    func verify(_ p: LessonProblem, pp: Int, m: Int, engine: PipelineEngine,
                file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        let reference = p.reference()
        let results = try onRanks(pp, file: file, line: line) { comm -> ([Check], Int) in
            let model = p.makeModel()
            let stage = PipelineStage(model: model, stage: comm.rank, stages: pp, microBatches: m)
            let step = PipelineStep(stage: stage, link: PipelineLink(group: comm, count: p.batch / m * p.length
                                                                     * p.config.hiddenSize))
            let loss = try step.run(self.microBatches(p, m), engine: engine)
            var checks = [Check]()
            if let loss {
                checks.append(check(comm.rank, "loss", got: [loss], want: [reference.loss],
                                    hint: "each micro-batch's loss is divided by M, and the step's loss is their mean"))
            }
            for (name, t) in stage.namedParameters {
                checks.append(check(comm.rank, "grad \(name)", got: t.grad ?? [], want: reference.gradients[name]!,
                                    shape: t.shape, hint: "a gradient M times too large: the loss was not divided by M"))
            }
            return (checks, step.peakHeld)
        }
        assertPass(results.flatMap(\.0), "pp \(pp), M \(m), \(engine.rawValue), \(p.config.tieWordEmbeddings ? "tied" : "untied"): ",
                   file: file, line: line)
        return results.map(\.1)
    }

    func testEveryEngineEqualsTheSingleProcessForEverySplit() throws {
        for pp in [2, 3, 4] {
            for m in [1, 2, 4, 8] {
                for engine in PipelineEngine.allCases {
                    _ = try verify(problem(layers: 4), pp: pp, m: m, engine: engine)   // pp 3: layers 2, 1, 1
                }
            }
        }
    }

    func testTiedEmbeddingsSumTheirGradientsAcrossFirstAndLastStage() throws {
        for pp in [2, 4] {
            for engine in PipelineEngine.allCases {
                _ = try verify(problem(layers: 4, tied: true), pp: pp, m: 4, engine: engine)
            }
        }
    }

    func testOneFOneBHoldsAtMostPPMinusStageMicroBatches() throws {
        let p = problem(layers: 4)
        let afab = try verify(p, pp: 4, m: 8, engine: .afab)
        let ofob = try verify(p, pp: 4, m: 8, engine: .oneFOneB)
        XCTAssertEqual(afab, [8, 8, 8, 8], "AFAB holds every micro-batch's activations")
        XCTAssertEqual(ofob, [4, 3, 2, 1], "1F1B holds at most pp − s micro-batches on stage s")
    }

    func testStageLayersSplitAsPicotron() {
        XCTAssertEqual((0 ..< 3).map { stageLayers(layers: 5, stages: 3, stage: $0) }, [0 ..< 2, 2 ..< 4, 4 ..< 5])
        XCTAssertEqual((0 ..< 4).map { stageLayers(layers: 4, stages: 4, stage: $0) }, [0 ..< 1, 1 ..< 2, 2 ..< 3, 3 ..< 4])
        XCTAssertEqual((0 ..< 2).map { stageLayers(layers: 7, stages: 2, stage: $0) }, [0 ..< 4, 4 ..< 7])
    }

    /// dp 2 × pp 2 on 4 ranks: each dp replica pipelines half the batch; the bucketed all-reduce
    /// averages after the step's last backward; every gradient equals the single process's.
    func testDataParallelTimesPipelineParallel() throws {
        let p = problem(layers: 4, rows: 8)
        let reference = p.reference()
        for engine in PipelineEngine.allCases {
            let checks = try onRanks(4) { world -> [Check] in
                let grid = try ProcessGrid(dp: 2, pp: 2, cp: 1, tp: 1, world: world)
                let model = p.makeModel()
                let stage = PipelineStage(model: model, stage: grid.ppRank, stages: 2, microBatches: 2)
                let sync = BucketedDataParallel(parameters: stage.namedParameters, group: grid.dpGroup, bucketMB: 0.01)
                let step = PipelineStep(stage: stage, link: PipelineLink(group: grid.ppGroup, count: 2 * p.length * p.config.hiddenSize),
                                        synchronizer: sync)
                let half = self.microBatches(p, 2)[grid.dpRank]   // this replica's 4 rows …
                let rows = MicroBatch(inputs: half.inputs, targets: half.targets, batch: half.batch, length: half.length)
                let split = (0 ..< 2).map { k in   // … as 2 micro-batches of 2 rows
                    MicroBatch(inputs: Array(rows.inputs[(k * 2 * p.length) ..< ((k + 1) * 2 * p.length)]),
                               targets: Array(rows.targets[(k * 2 * p.length) ..< ((k + 1) * 2 * p.length)]),
                               batch: 2, length: p.length)
                }
                _ = try step.run(split, engine: engine)
                sync.detach()
                return stage.namedParameters.map { name, t in
                    check(world.rank, "grad \(name)", got: t.grad ?? [], want: reference.gradients[name]!, shape: t.shape,
                          hint: "dp must average once, after the step's last backward")
                }
            }
            assertPass(checks.flatMap { $0 }, "dp 2 × pp 2, \(engine.rawValue): ")
        }
    }
}

final class InterleavedTests: XCTestCase {
    /// Runs interleaved 1F1B with v chunks per stage on pp ranks and checks every gradient.
    func verify(layers: Int, pp: Int, v: Int, m: Int, tied: Bool = false) throws -> [Int] {
        var c = LessonProblem.lessonConfig
        c.numHiddenLayers = layers
        c.tieWordEmbeddings = tied
        let p = LessonProblem(config: c, batch: 16, length: 8)
        let reference = p.reference()
        let results = try onRanks(pp) { comm -> ([Check], Int) in
            let model = p.makeModel()
            let chunks = (0 ..< v).map { k in PipelineStage(model: model, stage: k * pp + comm.rank, stages: pp * v, microBatches: m) }
            let step = PipelineStep(chunks: chunks, link: PipelineLink(group: comm, count: p.batch / m * p.length * c.hiddenSize))
            let b = p.batch / m
            let micro = (0 ..< m).map { i -> MicroBatch in
                let (x, y) = p.rows((i * b) ..< ((i + 1) * b))
                return MicroBatch(inputs: x, targets: y, batch: b, length: p.length)
            }
            let loss = try step.run(micro, engine: .interleaved)
            var checks = loss.map { [check(comm.rank, "loss", got: [$0], want: [reference.loss], hint: "")] } ?? []
            for (name, t) in step.namedParameters {
                checks.append(check(comm.rank, "grad \(name)", got: t.grad ?? [], want: reference.gradients[name]!,
                                    shape: t.shape, hint: "interleaved order or chunk assignment"))
            }
            return (checks, step.peakHeld)
        }
        assertPass(results.flatMap(\.0), "interleaved pp \(pp), v \(v), M \(m): ")
        return results.map(\.1)
    }

    func testInterleavedEqualsTheSingleProcess() throws {
        for (pp, v) in [(2, 2), (2, 3), (4, 2)] {
            for m in [pp, 2 * pp, 4 * pp] where pp * v <= 8 {
                _ = try verify(layers: 8, pp: pp, v: v, m: m)
            }
        }
        _ = try verify(layers: 8, pp: 2, v: 2, m: 4, tied: true)
        _ = try verify(layers: 6, pp: 2, v: 2, m: 2)   // an uneven split: chunks of 2, 2, 1, 1 layers
    }
}
