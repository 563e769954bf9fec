// The memory estimate, against the same formula written out here term by term for the `micro` preset,
// and the refusal it drives: a run too large is refused with its numbers, a small run is not.

import Foundation
import XCTest
import Llama
@testable import Training

final class MemoryEstimateTests: XCTestCase {
    // micro: V = 256, C = 128, I = 344, L = 4, 4 heads and 2 kv heads of 32 → qd = 128, kvd = 64; untied.
    let micro = LlamaConfig.micro

    func testParametersOfOneRankAreTheModelsOwnCount() {
        let e = MemoryEstimate(model: micro, microBatchSize: 16, sequenceLength: 128)
        XCTAssertEqual(e.parametersPerRank, Double(micro.parameterCount), "tp 1 holds every parameter")
        XCTAssertEqual(e.parametersPerRank, 791_680)
    }

    func testEachComponentMatchesTheFormulaForASmallConfig() {
        let (V, C, I, L, qd, kvd) = (256.0, 128.0, 344.0, 4.0, 128.0, 64.0)
        let (B, T, tp) = (16.0, 128.0, 2.0)
        let N = B * T
        let cut = 2 * V * C + L * (C * qd + 2 * C * kvd + qd * C + 3 * C * I)   // embedding, head, layers' matrices
        let replicated = L * 2 * C + C                                        // RMSNorm weights
        let p = cut / tp + replicated
        let perToken = L * (6 * C + 3 * qd / tp + 3 * kvd / tp + 3 * I / tp) + 2 * C + 3 * V / tp
        let e = MemoryEstimate(model: micro, microBatchSize: 16, sequenceLength: 128, tp: 2, dp: 2)
        XCTAssertEqual(e.parametersPerRank, p)
        XCTAssertEqual(e.weights, 4 * p)
        XCTAssertEqual(e.gradients, 4 * p)
        XCTAssertEqual(e.optimizer, 8 * p, "AdamW keeps two float32 moments per parameter")
        XCTAssertEqual(e.activations, 4 * N * perToken + 16 * N, accuracy: 1e-6 * e.activations)
        XCTAssertEqual(e.communication, 4 * p, "a model smaller than a bucket: one bucket of all its gradients")
        XCTAssertEqual(e.perRank, 20 * p + e.activations, accuracy: 1)
        XCTAssertEqual(MemoryEstimate(model: micro, microBatchSize: 16, sequenceLength: 128, tp: 2).communication, 0,
                       "no buckets without data parallelism")
    }

    /// ZeRO-1 slices AdamW's moments over the dp · cp ranks: 8P/(dp·cp); the all-gather receives 4P.
    func testZeroOneDividesTheOptimizerByTheAveragingRanks() {
        let plain = MemoryEstimate(model: micro, microBatchSize: 4, sequenceLength: 64, dp: 2, cp: 2)
        let zero = MemoryEstimate(model: micro, microBatchSize: 4, sequenceLength: 64, dp: 2, cp: 2, zeroStage: 1)
        let p = plain.parametersPerRank
        XCTAssertEqual(plain.optimizer, 8 * p)
        XCTAssertEqual(zero.optimizer, 8 * p / 4, "8P/(dp·cp)")
        XCTAssertEqual(zero.communication, 4 * p, "the all-gathered parameters")
        XCTAssertEqual(MemoryEstimate(model: micro, microBatchSize: 4, sequenceLength: 64, zeroStage: 1).optimizer, 8 * p,
                       "one rank: nothing to slice over")
    }

    /// pp 2: the busiest stage holds layers 0–1 and one V·C matrix (the embedding; the head is the
    /// other stage's), and its activations are those of the micro-batches its schedule keeps.
    func testAPipelineStageHoldsItsLayersAndItsScheduleSActivations() {
        let model = LlamaForCausalLM(config: micro, seed: 1)
        let stage0 = model.namedParameters.filter { name, _ in
            name.hasPrefix("model.embed_tokens.") || name.hasPrefix("model.layers.0.") || name.hasPrefix("model.layers.1.")
        }.reduce(0) { $0 + $1.1.count }
        let e = MemoryEstimate(model: micro, microBatchSize: 4, sequenceLength: 32, pp: 2)
        XCTAssertEqual(e.parametersPerRank, Double(stage0 + micro.hiddenSize), "stage 0's own, and the final norm's C")
        XCTAssertEqual(MemoryEstimate.heldMicroBatches(engine: "afab", pp: 4, microBatches: 8, virtualStages: 2), 8)
        XCTAssertEqual(MemoryEstimate.heldMicroBatches(engine: "1f1b", pp: 4, microBatches: 8, virtualStages: 2), 4)
        XCTAssertEqual(MemoryEstimate.heldMicroBatches(engine: "interleaved", pp: 4, microBatches: 8, virtualStages: 2), 5.5,
                       "11 chunks of half a stage (lesson-pp measures 11 on stage 0)")
        let one = MemoryEstimate(model: micro, microBatchSize: 4, sequenceLength: 32, pp: 2, heldMicroBatches: 1)
        let afab = MemoryEstimate(model: micro, microBatchSize: 4, sequenceLength: 32, pp: 2, heldMicroBatches: 8)
        XCTAssertEqual(afab.activations, 8 * one.activations, accuracy: 1e-9 * afab.activations)
    }

    /// Each stage on its own: stage 0 the embedding and its layers, the last stage its layers, the final
    /// norm and lm_head (micro is untied), counted here from the model's own parameter names.
    func testEachPipelineStageIsEstimatedOnItsOwn() throws {
        let model = LlamaForCausalLM(config: micro, seed: 1)
        func count(_ keep: (String) -> Bool) -> Double {
            Double(model.namedParameters.filter { keep($0.0) }.reduce(0) { $0 + $1.1.count })
        }
        let stage0 = count { $0.hasPrefix("model.embed_tokens.") || $0.hasPrefix("model.layers.0.") || $0.hasPrefix("model.layers.1.") }
        let stage1 = count { $0.hasPrefix("model.layers.2.") || $0.hasPrefix("model.layers.3.") || $0 == "model.norm.weight"
            || $0 == "lm_head.weight" }
        var cfg = PicotronConfig.quickStart
        (cfg.distributed.ppSize, cfg.distributed.dpSize, cfg.distributed.ppEngine) = (2, 1, "1f1b")
        cfg.training.gradientAccumulationSteps = 4
        let stages = MemoryEstimate.stages(config: cfg, model: micro)
        XCTAssertEqual(stages.map(\.parametersPerRank), [stage0, stage1])
        XCTAssertEqual(stages[0].parametersPerRank + stages[1].parametersPerRank, Double(micro.parameterCount),
                       "the stages hold the model once between them")
        let one = MemoryEstimate(model: micro, microBatchSize: cfg.training.microBatchSize,
                                 sequenceLength: cfg.training.seqLength, pp: 2, stage: 1, heldMicroBatches: 1)
        XCTAssertEqual(stages[1].activations, one.activations, accuracy: 1e-9 * one.activations,
                       "1F1B: the last stage holds one micro-batch")
        XCTAssertEqual(MemoryEstimate.heldMicroBatches(engine: "1f1b", pp: 4, microBatches: 8, virtualStages: 1, stage: 3), 1)
        XCTAssertEqual((0 ..< 4).map { MemoryEstimate.heldMicroBatches(engine: "zb", pp: 4, microBatches: 8, virtualStages: 1, stage: $0) },
                       [5, 4, 3, 2], "zb: 1F1B's and the queued weight-gradient inputs, at most one micro-batch more")
        XCTAssertEqual(MemoryEstimate.heldMicroBatches(engine: "zb", pp: 4, microBatches: 2, virtualStages: 1, stage: 0), 2,
                       "never more micro-batches than the step has")
        XCTAssertEqual(MemoryEstimate.heldMicroBatches(engine: "interleaved", pp: 4, microBatches: 8, virtualStages: 2,
                                                       stage: 3), 2.5, "5 chunks of half a stage (lesson-pp measures 5)")
        // 5 layers in 4 chunks (2, 1, 1, 1): stage 0 holds chunks 0 and 2, stage 1 chunks 1 and 3.
        XCTAssertEqual((0 ..< 2).map { MemoryEstimate.layers(5, pp: 2, virtualStages: 2, stage: $0) }, [3, 2])
        XCTAssertEqual((0 ..< 3).map { MemoryEstimate.layers(5, pp: 3, virtualStages: 1, stage: $0) }, [2, 2, 1])
    }

    /// The ranks sharing a machine are spread over the stages: they need the stages' average each.
    func testAPipelinedRunIsCheckedAgainstTheAverageOfItsStages() throws {
        var cfg = PicotronConfig.quickStart
        (cfg.distributed.ppSize, cfg.distributed.dpSize) = (2, 2)
        let stages = MemoryEstimate.stages(config: cfg, model: micro)
        let average = (stages[0].perRank + stages[1].perRank) / 2
        XCTAssertNil(try MemoryEstimate.check(stages: stages, ranks: 4, available: 4 * average + 1))
        XCTAssertThrowsError(try MemoryEstimate.check(stages: stages, ranks: 4, available: 4 * average - 1)) { error in
            XCTAssertTrue("\(error)".contains("on average over its 2 pipeline stages"), "\(error)")
        }
        XCTAssertEqual(stages[0].communication, 4 * stages[0].parametersPerRank, "a bucket as large as micro's gradients")
        var big = micro
        (big.hiddenSize, big.intermediateSize) = (2048, 8192)
        XCTAssertEqual(MemoryEstimate(model: big, microBatchSize: 1, sequenceLength: 8, dp: 2).communication,
                       25 * 1024 * 1024, "gradients move into the buckets: one 25 MiB bucket is extra")
        XCTAssertEqual(MemoryEstimate(model: big, microBatchSize: 1, sequenceLength: 8, cp: 2).communication,
                       25 * 1024 * 1024, "context parallelism averages over the cp group with the same buckets")
    }

    func testARunLargerThanTheMachineIsRefusedWithItsNumbers() throws {
        let e = MemoryEstimate(model: micro, microBatchSize: 100_000_000, sequenceLength: 128)
        XCTAssertThrowsError(try e.check(ranks: 2, available: 24 * 1024 * 1024 * 1024)) { error in
            let m = "\(error)"
            for part in ["per rank", "activations", "× 2 ranks on this machine", "24.0 GiB", "--mbs", "--force"] {
                XCTAssertTrue(m.contains(part), "the message should say \(part): \(m)")
            }
        }
        let warning = try e.check(ranks: 2, available: Double(1 << 30), force: true)
        XCTAssertTrue(warning?.hasPrefix("warning: this run needs about") == true, warning ?? "nil")
        var wide = micro
        (wide.hiddenSize, wide.headDim, wide.numHiddenLayers) = (1 << 20, 1 << 18, 1000)
        XCTAssertThrowsError(try MemoryEstimate(model: wide, microBatchSize: 1, sequenceLength: 128)
            .check(ranks: 1, available: Double(1 << 40))) { error in
            XCTAssertTrue("\(error)".contains("use a smaller model"), "\(error)")
        }
    }

    func testTheQuickStartFitsThisMachine() throws {
        let cfg = PicotronConfig.quickStart
        let e = MemoryEstimate(config: cfg, model: try cfg.resolvedModelConfig())
        XCTAssertNil(try e.check(ranks: 4), "the quick start on 4 ranks needs \(MemoryEstimate.format(e.perRank)) each")
        XCTAssertGreaterThan(MemoryEstimate.availableMemory, 0)
    }

    func testSizesPrintInBinaryUnits() {
        XCTAssertEqual(MemoryEstimate.format(512), "512 B")
        XCTAssertEqual(MemoryEstimate.format(1536), "1.50 KiB")
        XCTAssertEqual(MemoryEstimate.format(24 * 1024 * 1024 * 1024), "24.0 GiB")
        XCTAssertEqual(MemoryEstimate.format(4.5 * 1024 * 1024 * 1024 * 1024 * 1024), "4.50 PiB")
    }
}
