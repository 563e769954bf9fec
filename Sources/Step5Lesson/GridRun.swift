// One grid of lesson 5, run as `picotron train` runs it: a config, `ParallelPlan.make` (the four
// Steps composed), the `Trainer`'s own steps. Around the run, and without changing it: the
// gradients of step 1 read where the loop computes their norm (synchronised, not yet clipped),
// the ledger of one step, the bytes each rank allocated, the seconds per step.
// Legend: dp, pp, cp, tp = the grid; A = micro-batches per step, B = rows per micro-batch and dp rank,
// T = sequence length (a cp rank holds T/cp of it).

import Distributed
import Foundation
import LessonKit
import Llama
import Parallelism4D
import Step2_TensorParallel
import TensorCore
import Training

/// The run every grid of the lesson trains: the same tokens, model and hyperparameters.
public struct FourDSetup: Sendable {
    public var model = LessonProblem.lessonConfig
    /// Rows of T tokens each step reads, over all dp ranks (B = rows / (dp · A)).
    public var rows = 8
    public var microBatches = 2
    public var length = 32
    public var steps = 3
    public var seed = 7

    public init() {}

    /// The lesson's token stream: 4 steps' worth of rows (the trainer reads them in a seeded order).
    public var dataset: TokenDataset { LessonProblem(config: model, seed: 1234, batch: 4 * rows, length: length).dataset }

    /// `picotron train`'s config for `grid`: what `--dp --pp --cp --tp --mbs --grad-acc --seq-len` set.
    public func config(_ grid: GridLayout) -> PicotronConfig {
        var c = PicotronConfig()
        let d = (grid.dp, grid.pp, grid.cp, grid.tp)
        (c.distributed.dpSize, c.distributed.ppSize, c.distributed.cpSize, c.distributed.tpSize) = d
        c.training.microBatchSize = rows / (grid.dp * microBatches)
        c.training.gradientAccumulationSteps = microBatches
        c.training.seqLength = length
        c.training.totalTrainSteps = steps
        c.training.seed = seed
        c.training.maxGradNorm = 1
        return c
    }

    /// The trainer's options for `grid`, with nothing written to disk.
    public func options(_ grid: GridLayout) -> TrainOptions {
        var o = config(grid).trainOptions(runDir: URL(fileURLWithPath: "."))
        (o.saveDir, o.metricsFile, o.lossCurveFile) = (nil, nil, nil)
        return o
    }

    /// Why `grid` cannot train this setup, or nil.
    public func problem(_ grid: GridLayout) -> String? {
        if rows % (grid.dp * microBatches) != 0 { return "dp \(grid.dp) × A \(microBatches) does not divide \(rows) rows" }
        if length % (2 * grid.cp) != 0 { return "cp \(grid.cp): the zigzag split needs 2·cp to divide T = \(length)" }
        if model.numHiddenLayers < grid.pp { return "pp \(grid.pp) > \(model.numHiddenLayers) layers" }
        if model.numKeyValueHeads % grid.tp != 0 {
            return "tp \(grid.tp) does not divide \(model.numKeyValueHeads) key/value heads"
        }
        return nil
    }
}

/// What one rank measured in one grid's run.
public struct GridResult {
    /// The loss the loop reports each step (the same on every rank).
    public var losses: [Float]
    /// This rank's gradients of step 1 against the single process's (sliced as this rank holds them).
    public var checks: [Comparison]
    /// The ledger of step 2 on this rank.
    public var traffic: CommStats
    /// Bytes this rank allocated: weights, gradients, AdamW moments, and its autograd graphs at the peak.
    public var weights = 0, gradients = 0, moments = 0, activations = 0
    /// Floats of the parameters this rank trains.
    public var heldParameters = 0
    /// `MemoryEstimate` of each pipeline stage (every rank of a stage needs the same).
    public var estimates: [MemoryEstimate]
    /// Seconds of each step after the first.
    public var seconds: [Double]
}

public enum GridRun {
    /// The single process on the same data: B · dp rows per micro-batch, the same A. Its losses and
    /// its gradients of step 1, by name.
    public static func reference(_ s: FourDSetup) throws -> (losses: [Float], gradients: [String: [Float]]) {
        let one = try GridLayout(dp: 1, pp: 1, cp: 1, tp: 1)
        let model = LlamaForCausalLM(config: s.model, seed: UInt64(s.seed))
        let captured = Captured()
        var hooks = ParallelHooks()
        hooks.globalSquaredNorm = capturing(model.namedParameters, into: captured, then: hooks.globalSquaredNorm)
        let trainer = try Trainer(model: model, dataset: s.dataset, options: s.options(one), parallel: hooks)
        let losses = try (0 ..< s.steps).map { _ in try trainer.step().loss }
        return (losses, Dictionary(uniqueKeysWithValues: captured.gradients))
    }

    /// Trains `s.steps` steps of `s` on `grid` over `world` (a collective: every rank calls it).
    public static func run(_ s: FourDSetup, grid layout: GridLayout, world: Communicator,
                           reference: (losses: [Float], gradients: [String: [Float]])) throws -> GridResult {
        let grid = try ProcessGrid(dp: layout.dp, pp: layout.pp, cp: layout.cp, tp: layout.tp, world: world)
        let (cfg, options) = (s.config(layout), s.options(layout))
        let plan = try ParallelPlan.make(grid: grid, config: cfg, modelConfig: s.model, options: options, bucketMB: 25)
        let held = plan.hooks.parameters ?? plan.model.namedParameters
        let captured = Captured()
        var hooks = plan.hooks
        hooks.globalSquaredNorm = capturing(held, into: captured, then: hooks.globalSquaredNorm)
        plan.pipelineStep?.measureMemory = true
        let trainer = try Trainer(model: plan.model, dataset: s.dataset, options: options, parallel: hooks)

        var losses = [Float](), seconds = [Double](), traffic = CommStats()
        for step in 0 ..< s.steps {
            let before = world.stats, start = DispatchTime.now().uptimeNanoseconds
            losses.append(try trainer.step().loss)
            if step > 0 { seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            if step == 1 { traffic = world.stats.since(before) }
        }

        // Step 1's gradients against the reference's, each cut as this rank holds it.
        let specs = grid.tpSize > 1 ? tensorParallelSpecs(of: plan.model, group: grid.tpGroup) : [:]
        let checks = captured.gradients.map { name, got in
            let want = reference.gradients[name]!
            return ReferenceCheck.compare(name, got: got, want: specs[name]?.slice(want) ?? want)
        }
        var result = GridResult(losses: losses, checks: checks, traffic: traffic,
                                estimates: MemoryEstimate.stages(config: cfg, model: s.model), seconds: seconds)
        result.heldParameters = held.reduce(0) { $0 + $1.1.count }
        result.weights = 4 * plan.model.namedParameters.reduce(0) { $0 + $1.1.count }
        result.gradients = captured.gradientBytes
        result.moments = 4 * trainer.optimizer.state.reduce(0) { $0 + $1.expAvg.count + $1.expAvgSq.count }
        result.activations = try plan.pipelineStep.map { $0.peakActivationBytes }
            ?? activationBytes(plan: plan, setup: s, grid: grid)
        return result
    }

    /// The graph one micro-batch's forward keeps for its backward, measured on a forward whose graph
    /// is then dropped (no pipeline: the loop holds one micro-batch at a time).
    static func activationBytes(plan: ParallelPlan, setup s: FourDSetup, grid: ProcessGrid) throws -> Int {
        var loader = try MicroBatchLoader(dataset: s.dataset, microBatchSize: s.rows / (grid.dpSize * s.microBatches),
                                          sequenceLength: s.length, vocabSize: s.model.vocabSize,
                                          dpRank: grid.dpRank, dpSize: grid.dpSize)
        let whole = loader.next()
        let batch = plan.hooks.prepareBatch?(whole) ?? whole                   // [B, T/cp] on a cp rank
        let logits = plan.model.logits(batch.inputs, batch: batch.batchSize, length: batch.sequenceLength,
                                       positions: batch.positions)             // [B, T/cp, V/tp]
        return Tensor.graphBytes([plan.model.lossFunction(logits, batch.targets)])
    }

    /// Reads the gradients of `parameters` the first time the loop asks for their norm, then asks.
    static func capturing(_ parameters: [(String, Tensor)], into box: Captured,
                          then norm: @escaping ([Tensor]) throws -> Double) -> ([Tensor]) throws -> Double {
        { weights in
            if box.gradients.isEmpty {
                box.gradients = parameters.filter { $0.1.count > 0 }.map { ($0.0, $0.1.grad ?? []) }
                box.gradientBytes = 4 * parameters.reduce(0) { $0 + ($1.1.grad?.count ?? 0) }
            }
            return try norm(weights)
        }
    }

    final class Captured {
        var gradients: [(String, [Float])] = []
        var gradientBytes = 0
    }
}
