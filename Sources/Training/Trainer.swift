// The training loop: micro-batches with gradient accumulation, gradient synchronisation
// (plugged in by the data-parallel lesson), clipping, the learning-rate schedule, AdamW,
// progress lines, metrics, checkpoints and exact resume.
// Legend: B = micro-batch size, T = sequence length, A = gradient-accumulation steps,
// dp = data-parallel ranks; one optimizer step consumes B · A · dp sequences.

import Foundation
import Llama
import TensorCore

/// What to train and how; the `picotron train` command fills it from a config file and flags.
public struct TrainOptions: Sendable {
    public var steps = 300
    public var microBatchSize = 16
    public var gradientAccumulation = 1
    public var sequenceLength = 256
    public var seed = 42
    /// `lr` is the peak learning rate of the schedule.
    public var hyper = AdamW.Hyperparameters(lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)
    public var warmupSteps = 20
    public var minLearningRate = 1e-4
    /// Clip the global gradient norm to this (0: no clipping).
    public var maxGradNorm = 1.0
    public var saveDir: URL?
    /// Save every this many steps (0: only at the end, when `saveDir` is set).
    public var saveFrequency = 0
    public var loadPath: URL?
    public var metricsFile: URL?
    public var lossCurveFile: URL?
    /// Print a progress line every this many steps (and always the first and last).
    public var logFrequency = 1
    /// "byte" when ids are bytes of text (generation can decode them), "external" otherwise.
    public var tokenizer = "byte"
    /// The sgemm peak in GFLOP/s one rank can reach (the machine's measured peak divided among the
    /// ranks sharing it), for MFU (0: MFU not reported).
    public var peakGFLOPSPerRank = 0.0

    public init() {}
}

/// How the loop talks to the other ranks. The defaults are a single process.
public struct ParallelHooks {
    public var dpRank = 0, dpSize = 1
    public var synchronizer: GradientSynchronizer?
    /// Averages a number over the data-parallel group (the logged loss).
    public var averageOverDataParallel: (Float) throws -> Float = { $0 }
    /// Σ g² over the whole model, every parameter counted once (shards summed across ranks).
    public var globalSquaredNorm: ([Tensor]) throws -> Double = { GradientClipping.localSquaredNorm($0) }
    /// Whether this rank prints, writes metrics and writes checkpoints.
    public var isMainRank = true
    /// For a model whose parameters are shards (tensor parallelism): the whole model's
    /// checkpoint contents from this rank's (a collective: every rank calls it), and the way
    /// back, this rank's shards from whole contents. Nil: the parameters are whole.
    public var gatherCheckpoint: ((_ local: CheckpointContents) throws -> CheckpointContents)?
    public var scatterCheckpoint: ((_ whole: CheckpointContents, _ model: LlamaForCausalLM, _ optimizer: AdamW) throws -> Void)?
    public var worldSize = 1

    public init() {}
}

public final class Trainer {
    public let model: LlamaForCausalLM
    public let optimizer: AdamW
    public private(set) var loader: MicroBatchLoader
    public let options: TrainOptions
    public let parallel: ParallelHooks
    public private(set) var state: TrainerState

    /// Prepares a run; with `options.loadPath` it restores model, optimizer, data position and
    /// history from that checkpoint, so the run continues exactly where it stopped.
    public init(model: LlamaForCausalLM, dataset: TokenDataset, options o: TrainOptions,
                parallel: ParallelHooks = ParallelHooks()) throws {
        self.model = model
        self.options = o
        self.parallel = parallel
        optimizer = AdamW(parameters: model.parameters, hyper: o.hyper)
        let schedule = LearningRateSchedule(peak: o.hyper.lr, minimum: o.minLearningRate,
                                            warmupSteps: o.warmupSteps, totalSteps: o.steps)
        var loaderState: LoaderState?
        if let path = o.loadPath {
            let dir = try Checkpoint.resolve(path)
            // Checkpoints hold the whole model; a sharded model takes its slices of it.
            let whole = try Checkpoint.read(from: dir, config: model.config, names: model.namedParameters.map(\.0))
            if let scatter = parallel.scatterCheckpoint {
                try scatter(whole, model, optimizer)
            } else {
                try whole.install(into: model, optimizer: optimizer)
            }
            state = whole.trainer
            guard state.step < o.steps else {
                throw TrainingError.checkpoint("\(dir.path) is at step \(state.step), and the run is \(o.steps) steps: "
                                               + "nothing left to do; raise training.total_train_steps (--steps)")
            }
            loaderState = state.loader
        } else {
            state = TrainerState(step: 0, tokensSeen: 0, loader: LoaderState(seed: o.seed, windowsPerEpoch: 0),
                                 seed: o.seed, schedule: schedule, optimizerSteps: [], losses: [], tokenizer: o.tokenizer)
        }
        state.schedule = schedule
        loader = try MicroBatchLoader(dataset: dataset, microBatchSize: o.microBatchSize, sequenceLength: o.sequenceLength,
                                      vocabSize: model.config.vocabSize, dpRank: parallel.dpRank, dpSize: parallel.dpSize,
                                      seed: o.seed, state: loaderState)
        // Refuse now, not after hours of training, a run that would have to overwrite a checkpoint.
        if let dir = o.saveDir, let old = Checkpoint.existing(in: dir).last {
            if o.loadPath == nil {
                throw TrainingError.checkpoint("\(dir.path) already holds checkpoints (\(old.lastPathComponent)), kept as they are; "
                                               + "resume with checkpoint.load_path (--load-path \(dir.path)) or choose another save_dir")
            }
            if old.lastPathComponent > Checkpoint.directoryName(step: state.step) {
                throw TrainingError.checkpoint("\(dir.path) already holds \(old.lastPathComponent), past the resume point (step "
                                               + "\(state.step)); this run would write over it: choose another save_dir (--out-dir)")
            }
        }
    }

    /// Tokens one optimizer step consumes over all ranks.
    public var tokensPerStep: Int {
        options.microBatchSize * options.gradientAccumulation * parallel.dpSize * options.sequenceLength
    }

    /// One optimizer step; returns the data-parallel mean loss and the gradient norm.
    public func step() throws -> (loss: Float, gradNorm: Double, lr: Double) {
        let a = options.gradientAccumulation
        let lr = state.schedule.rate(at: state.step + 1)
        var lossSum: Float = 0
        for micro in 0..<a {
            let batch = loader.next()                                                 // [B, T] each
            let logits = model.logits(batch.inputs, batch: batch.batchSize, length: batch.sequenceLength,
                                      positions: batch.positions)                     // [B, T, V]
            let loss = model.lossFunction(logits, batch.targets)                      // mean over B·T
            lossSum += loss.item
            parallel.synchronizer?.beforeBackward(microBatch: micro, of: a)
            loss.backward(seed: 1 / Float(a))   // the step's gradient is the mean over its A micro-batches
        }
        try parallel.synchronizer?.finishStep()
        let norm = GradientClipping.clip(model.parameters, maxNorm: options.maxGradNorm,
                                         globalSquaredNorm: try parallel.globalSquaredNorm(model.parameters))
        optimizer.step(lr: lr)
        optimizer.zeroGrad()
        let loss = try parallel.averageOverDataParallel(lossSum / Float(a))
        state.step += 1
        state.tokensSeen += tokensPerStep
        state.loader = loader.state
        state.losses.append(loss)
        return (loss, norm, lr)
    }

    /// Runs to `options.steps`, printing through `log` on the main rank. Returns every step's metrics.
    @discardableResult
    public func run(log: (String) -> Void) throws -> [StepMetrics] {
        let metrics = try parallel.isMainRank ? options.metricsFile.map { try MetricsWriter(url: $0, append: options.loadPath != nil) } : nil
        let flopsPerToken = Throughput.trainingFlopsPerToken(model.config, sequenceLength: options.sequenceLength)
        var all = [StepMetrics]()
        var elapsed = 0.0, timedSteps = 0
        if state.step > 0 { log("resumed at step \(state.step) (\(state.tokensSeen) tokens seen)") }
        while state.step < options.steps {
            let start = DispatchTime.now().uptimeNanoseconds
            let (loss, norm, lr) = try step()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if !all.isEmpty { elapsed += seconds; timedSteps += 1 }   // the ETA leaves out the warm-up step
            let tps = Double(tokensPerStep) / seconds
            // MFU: each rank's model FLOP rate against the peak one rank can reach.
            let peak = options.peakGFLOPSPerRank
            let mfu = peak > 0 ? tps / Double(parallel.worldSize) * flopsPerToken / 1e9 / peak : 0
            let m = StepMetrics(step: state.step, loss: loss, lr: lr, gradNorm: norm, tokensPerSecond: tps,
                                tokensSeen: state.tokensSeen, mfu: mfu, memoryBytes: Throughput.residentBytes(), seconds: seconds)
            all.append(m)
            try metrics?.write(m)
            let eta = Double(options.steps - state.step) * (timedSteps > 0 ? elapsed / Double(timedSteps) : seconds)
            if parallel.isMainRank && (state.step % max(options.logFrequency, 1) == 0 || state.step == 1
                                       || state.step == options.steps) {
                log(m.line(totalSteps: options.steps, eta: eta))
            }
            guard loss.isFinite else {
                throw TrainingError.data("the loss is \(loss) at step \(state.step): training diverged; "
                                         + "lower the learning rate (--lr) or raise warmup")
            }
            if let dir = options.saveDir,
               state.step == options.steps || (options.saveFrequency > 0 && state.step % options.saveFrequency == 0) {
                try save(to: dir)   // every rank: gathering shards is a collective
                log("checkpoint: \(dir.appendingPathComponent(Checkpoint.directoryName(step: state.step)).path)")
            }
        }
        if parallel.isMainRank, let url = options.lossCurveFile {
            let svg = LossCurve.svg(losses: state.losses, title: "training loss",
                                    uniformLoss: Float(Foundation.log(Double(model.config.vocabSize))))
            try Data(svg.utf8).write(to: url, options: .atomic)
            log("loss curve: \(url.path)")
        }
        return all
    }

    /// Writes a checkpoint of the current state. Every rank calls it; the main rank writes.
    public func save(to dir: URL) throws {
        let local = CheckpointContents(model: model, optimizer: optimizer, trainer: state)
        let whole = try parallel.gatherCheckpoint?(local) ?? local
        guard parallel.isMainRank else { return }
        try Checkpoint.save(whole, to: dir)
    }
}
