// The step-time prediction against the formulas of StepPrediction.swift worked out here by hand for
// the micro preset: V = 256, C = 128, I = 344, L = 4, 4 heads and 2 kv heads of 32 (qd 128, kvd 64).

import XCTest
import Llama
@testable import Training

final class StepPredictionTests: XCTestCase {
    func testEachPartFollowsItsFormulaForASmallGrid() {
        var cfg = PicotronConfig.quickStart
        (cfg.distributed.dpSize, cfg.distributed.tpSize, cfg.distributed.ppSize) = (1, 2, 2)
        cfg.distributed.ppEngine = "1f1b"
        (cfg.training.microBatchSize, cfg.training.gradientAccumulationSteps, cfg.training.seqLength) = (2, 4, 64)
        let model = LlamaConfig.micro
        let p = StepPrediction(config: cfg, model: model, stages: MemoryEstimate.stages(config: cfg, model: model),
                               peakGFLOPS: 100, cores: 2, bandwidthGBps: 10, ranksHere: 4)
        // FLOPs per token, whole model: 6·(L·(2·C·qd + 2·C·kvd + 3·C·I) + V·C) + 6·2·L·heads·hd·T.
        let matrices: Double = 4 * (2 * 128 * 128 + 2 * 128 * 64 + 3 * 128 * 344) + 256 * 128
        let attention: Double = 2 * 4 * 4 * 32 * 64
        let full = 6 * matrices + 6 * attention
        XCTAssertEqual(full, 4_939_776)
        let head: Double = 6 * 256 * 128
        let perLayer = (full - head) / 4
        let n = 2.0 * 64                                          // tokens of a micro-batch (cp 1)
        let stage0 = 4 * n * (2 * perLayer) / 2                   // A·N·(2 layers) / tp
        let stage1 = 4 * n * (2 * perLayer + head) / 2   // … and the head
        XCTAssertEqual(p.totalFLOPs, Double((stage0 + stage1) * 2), accuracy: 1)
        // 4 ranks on 2 cores: a rank gets 100/4 = 25 GFLOP/s; the busiest (stage 1) paces the step.
        XCTAssertEqual(p.compute, stage1 / 25e9, accuracy: 1e-12)
        XCTAssertEqual(p.bubble, 0, "2 ranks per stage keep the 2 cores busy while the other stage waits")
        // The same grid with only 2 of its ranks on this machine: 50 GFLOP/s each, and the bubble shows:
        // 1F1B, A = 4, pp = 2: (A + pp − 1)/A − 1 = 1/4 more.
        let two = StepPrediction(config: cfg, model: model, stages: MemoryEstimate.stages(config: cfg, model: model),
                                 peakGFLOPS: 100, cores: 2, bandwidthGBps: 10, ranksHere: 2)
        XCTAssertEqual(two.compute, stage1 / 50e9, accuracy: 1e-12)
        XCTAssertEqual(two.bubble, stage1 / 50e9 / 4, accuracy: 1e-12)
        // tp: A·(4·L_s + 2)·N·C floats, ring factor 2(tp − 1)/tp = 1; pp: A·2·N·C; 4 bytes at 10 GB/s.
        XCTAssertEqual(p.tensorParallel, 4 * (4 * 2 + 2) * n * 128 * 4 / 10e9, accuracy: 1e-15)
        XCTAssertEqual(p.pipelineParallel, 4 * 2 * n * 128 * 4 / 10e9, accuracy: 1e-15)
        XCTAssertEqual(p.dataParallelExposed, 0, "no data parallelism")
        XCTAssertEqual(p.seconds, p.compute + p.bubble + p.tensorParallel + p.pipelineParallel, accuracy: 1e-15)
        XCTAssertEqual(p.tokensPerSecond, Double(cfg.tokensPerStep) / p.seconds, accuracy: 1e-9)
    }

    func testContextAndDataParallelTrafficFollowTheirFormulas() {
        var cfg = PicotronConfig.quickStart
        (cfg.distributed.dpSize, cfg.distributed.cpSize, cfg.distributed.tpSize, cfg.distributed.ppSize) = (2, 2, 1, 1)
        (cfg.training.microBatchSize, cfg.training.gradientAccumulationSteps, cfg.training.seqLength) = (2, 1, 64)
        let model = LlamaConfig.micro
        let stages = MemoryEstimate.stages(config: cfg, model: model)
        let p = StepPrediction(config: cfg, model: model, stages: stages, peakGFLOPS: 100, cores: 2, bandwidthGBps: 10,
                               ranksHere: 4)
        let n = 2.0 * 64 / 2                                      // a cp rank holds T/cp tokens
        // ring attention: A·L·(2(cp − 1) + 4cp)·N·kvd floats.
        XCTAssertEqual(p.contextParallel, 1 * 4 * (2 + 8) * n * 64 * 4 / 10e9, accuracy: 1e-15)
        // the cp+dp group of 4: 2·3/4 of P floats, hidden behind 2/3 of the compute when shorter.
        let dp = stages[0].parametersPerRank * 1.5 * 4 / 10e9
        XCTAssertEqual(p.dataParallelExposed, max(0, dp - p.compute * 2 / 3), accuracy: 1e-15)
        XCTAssertEqual(p.floats.map(\.group), ["cp", "cp+dp"])
    }
}
