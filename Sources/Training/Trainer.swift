// The training loop: micro-batches with gradient accumulation, gradient synchronisation
// (plugged in by the data-parallel lesson), clipping, the learning-rate schedule, AdamW,
// progress lines, metrics, checkpoints and exact resume.
// Legend: B = micro-batch size, T = sequence length, A = gradient-accumulation steps,
// dp = data-parallel ranks; one optimizer step consumes B · A · dp sequences.

import Formats
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
    /// Measures the peak again when MFU would come out above 100% (a reading taken on a busy
    /// machine); returns the new per-rank peak. Nil: MFU above 100% is capped, with a note.
    public var remeasurePeak: (@Sendable () -> Double)?

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
    /// For a model whose parameters are shards or spread over stages (tensor, pipeline parallelism):
    /// the whole model's parameters with their full shapes, in model order (what a checkpoint holds);
    /// how to assemble them one part at a time from this rank's `local` ones (a collective: every rank
    /// calls it; `write` takes each whole part on the main rank); and the way back, this rank's
    /// parameters and optimizer state from a checkpoint. Nil: the parameters are whole.
    public var checkpointLayout: [(name: String, shape: [Int])]?
    public var gatherCheckpoint: ((_ local: CheckpointContents, _ write: CheckpointSink) throws -> Void)?
    public var scatterCheckpoint: ((_ checkpoint: CheckpointReader, _ model: LlamaForCausalLM, _ optimizer: AdamW) throws -> Void)?
    public var worldSize = 1
    /// The parameters this rank trains, by Hugging Face name (nil: all of the model's). A pipeline
    /// stage holds only its layers; the optimizer, clipping and checkpoints see these.
    public var parameters: [(String, Tensor)]?
    /// This rank's part of each micro-batch the loader reads (context parallelism: its tokens of
    /// every sequence, with their positions). Nil: the whole micro-batch.
    public var prepareBatch: ((Batch) -> Batch)?
    /// Runs one step's forwards and backwards of this rank's micro-batches instead of the plain
    /// loop (a pipeline schedule), leaving synchronised gradients; returns this rank's mean loss
    /// of the micro-batches, or nil when it computes none (pipeline stages before the last).
    public var schedule: ((_ microBatches: [Batch], _ model: LlamaForCausalLM) throws -> Float?)?
    /// Whether any rank of the world says yes (an all-reduce of a flag): ranks must agree to stop
    /// after the same step, and a signal reaches them at different moments.
    public var anyRank: (Bool) throws -> Bool = { $0 }
    /// Called on every rank after each step with its number (a benchmark reads its counters here).
    public var afterStep: ((_ step: Int) -> Void)?
    /// ZeRO-1 (lesson 1): the optimizer of `parameters` (AdamW over this rank's slice of them; nil:
    /// AdamW over all of them); what runs after the step's backwards, before the norm (the
    /// gradients' reduce-scatter); and what runs after the update (the parameters' all-gather).
    public var makeOptimizer: ((_ parameters: [(String, Tensor)], _ hyper: AdamW.Hyperparameters) -> AdamW)?
    public var afterBackward: (() throws -> Void)?
    public var afterOptimizerStep: (() throws -> Void)?

    public init() {}
}

public final class Trainer {
    public let model: LlamaForCausalLM
    public let optimizer: AdamW
    /// What this rank trains (`parallel.parameters`, or the whole model).
    public let parameters: [(String, Tensor)]
    public private(set) var loader: MicroBatchLoader
    public let options: TrainOptions
    public let parallel: ParallelHooks
    public private(set) var state: TrainerState
    /// Said once when the run starts: resume notes, leftovers removed, disk-space warnings.
    public private(set) var notes: [String] = []
    /// The step of the newest checkpoint this run wrote (nil: none yet).
    public private(set) var lastSavedStep: Int?
    /// True when a signal (Ctrl-C) ended the run early, after saving (see `StopRequest`).
    public private(set) var stoppedBySignal = false

    /// Prepares a run; with `options.loadPath` it restores model, optimizer, data position and
    /// history from that checkpoint, so the run continues exactly where it stopped.
    public init(model: LlamaForCausalLM, dataset: TokenDataset, options o: TrainOptions,
                parallel: ParallelHooks = ParallelHooks()) throws {
        self.model = model
        self.options = o
        self.parallel = parallel
        parameters = parallel.parameters ?? model.namedParameters
        optimizer = parallel.makeOptimizer?(parameters, o.hyper) ?? AdamW(parameters: parameters.map(\.1), hyper: o.hyper)
        let schedule = LearningRateSchedule(peak: o.hyper.lr, minimum: o.minLearningRate,
                                            warmupSteps: o.warmupSteps, totalSteps: o.steps)
        var loaderState: LoaderState?
        if let path = o.loadPath {
            let (dir, skipped) = try Checkpoint.resolveNoting(path)
            if !skipped.isEmpty {
                notes.append("note: resuming from \(dir.lastPathComponent); passed over \(skipped.joined(separator: ", ")), "
                             + "which \(skipped.count == 1 ? "is" : "are") not a complete checkpoint")
            }
            // Checkpoints hold the whole model; a sharded model takes its slices of it.
            let checkpoint = try CheckpointReader(directory: dir, config: model.config, names: model.namedParameters.map(\.0))
            if let scatter = parallel.scatterCheckpoint {
                try scatter(checkpoint, model, optimizer)
            } else {
                try checkpoint.install(into: parameters, optimizer: optimizer)
            }
            state = checkpoint.trainer
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
        // Find out now, not after the last step, whether the work can be kept.
        if parallel.isMainRank, let dir = o.saveDir {
            let removed = Checkpoint.removeStaleTemporaries(in: dir)
            if !removed.isEmpty {
                notes.append("note: removed \(removed.count) unfinished checkpoint folder(s) of interrupted saves in \(dir.path)")
            }
            // Saves at each multiple of save_frequency after the resume point, and at the last step.
            let f = o.saveFrequency
            let saves = f > 0 ? o.steps / f - state.step / f + (o.steps % f == 0 ? 0 : 1) : 1
            let bytes = Checkpoint.estimatedBytes(parameters: model.config.parameterCount)
            if let warning = try Checkpoint.checkRoom(in: dir, bytes: bytes, saves: saves) { notes.append(warning) }
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
        let batches = (0..<a).map { _ in parallel.prepareBatch.map { $0(loader.next()) } ?? loader.next() }   // [B, T] each
        let localLoss: Float
        if let schedule = parallel.schedule {
            localLoss = try schedule(batches, model) ?? 0   // the schedule synchronises, too
        } else {
            var lossSum: Float = 0
            for (micro, batch) in batches.enumerated() {
                let logits = model.logits(batch.inputs, batch: batch.batchSize, length: batch.sequenceLength,
                                          positions: batch.positions)                     // [B, T, V]
                let loss = model.lossFunction(logits, batch.targets)                      // mean over B·T
                lossSum += loss.item
                parallel.synchronizer?.beforeBackward(microBatch: micro, of: a)
                loss.backward(seed: 1 / Float(a))   // the step's gradient is the mean over its A micro-batches
            }
            try parallel.synchronizer?.finishStep()
            localLoss = lossSum / Float(a)
        }
        try parallel.afterBackward?()   // ZeRO-1: after a pipeline's tied-embedding sum, before the norm
        let weights = parameters.map(\.1)
        let norm = GradientClipping.clip(weights, maxNorm: options.maxGradNorm,
                                         globalSquaredNorm: try parallel.globalSquaredNorm(weights))
        let loss = try parallel.averageOverDataParallel(localLoss)
        // Both numbers are the same on every rank (reduced), so every rank stops here together, and
        // the weights are still those of the last good step: never let the optimizer apply NaN.
        guard loss.isFinite, norm.isFinite else {
            throw TrainingError.diverged("at step \(state.step + 1) the loss is \(describeValue(loss)) and the gradient norm \(describeValue(Float(norm))): "
                                         + "training diverged, and the weights were not updated with it; lower the "
                                         + "learning rate (--lr) or raise warmup"
                                         + (lastSavedStep.map { ", and resume from the checkpoint of step \($0)" } ?? ""))
        }
        optimizer.step(lr: lr)
        try parallel.afterOptimizerStep?()
        optimizer.zeroGrad()
        state.step += 1
        state.tokensSeen += tokensPerStep
        state.loader = loader.state
        state.losses.append(loss)
        return (loss, norm, lr)
    }

    /// Runs to `options.steps` (or until a signal asks to stop, see `StopRequest`), printing
    /// through `log` on the main rank. Returns every step's metrics.
    @discardableResult
    public func run(log: (String) -> Void) throws -> [StepMetrics] {
        var metrics: MetricsWriter?
        if parallel.isMainRank, let url = options.metricsFile {
            metrics = try MetricsWriter(url: url, resumingAt: options.loadPath != nil ? state.step : nil)
            if let m = metrics, m.dropped > 0 {
                log("note: dropped \(m.dropped) line(s) past step \(state.step) from \(url.path): that run went on after "
                    + "its last checkpoint, and this one repeats those steps")
            }
        }
        if parallel.isMainRank { notes.forEach(log) }
        let flopsPerToken = Throughput.trainingFlopsPerToken(model.config, sequenceLength: options.sequenceLength)
        var all = [StepMetrics]()
        var elapsed = 0.0, timedSteps = 0
        if state.step > 0 { log("resumed at step \(state.step) (\(state.tokensSeen) tokens seen)") }
        var finalSaveError: Error?
        var peak = options.peakGFLOPSPerRank, remeasured = false, capped = false
        while state.step < options.steps {
            let start = DispatchTime.now().uptimeNanoseconds
            let (loss, norm, lr) = try step()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if !all.isEmpty { elapsed += seconds; timedSteps += 1 }   // the ETA leaves out the warm-up step
            let tps = Double(tokensPerStep) / seconds
            // MFU: each rank's model FLOP rate against the peak one rank can reach.
            let rate = tps / Double(parallel.worldSize) * flopsPerToken / 1e9                 // GFLOP/s per rank
            var mfu = peak > 0 ? rate / peak : 0
            if mfu > 1 {   // the peak reading was low: take it again, and never print more than 100%
                let before = peak
                var said: String?
                if !remeasured, parallel.isMainRank, let again = options.remeasurePeak {   // the ranks share one machine
                    peak = max(peak, again())
                    remeasured = true
                    said = String(format: "measured again: %.1f GFLOP/s per rank, used from now on", peak)
                }
                mfu = min(1, rate / peak)
                if said == nil && mfu >= 1 && !capped {
                    capped = true
                    said = "MFU is capped at 100% from now on (the peak reading is too low; see picotron bench)"
                }
                if let said, parallel.isMainRank {
                    log(String(format: "note: step %ld ran %.1f GFLOP/s per rank, above the sgemm peak of %.1f taken as "
                               + "100%%; %@", state.step, rate, before, said))
                }
            }
            let m = StepMetrics(step: state.step, loss: loss, lr: lr, gradNorm: norm, tokensPerSecond: tps,
                                tokensSeen: state.tokensSeen, mfu: mfu, memoryBytes: Throughput.residentBytes(), seconds: seconds)
            all.append(m)
            do { try metrics?.write(m) } catch {
                // The run is worth more than its log: say so once and train on.
                log("warning: \(error); metrics are no longer written, training goes on")
                metrics = nil
            }
            let eta = Double(options.steps - state.step) * (timedSteps > 0 ? elapsed / Double(timedSteps) : seconds)
            if parallel.isMainRank && (state.step % max(options.logFrequency, 1) == 0 || state.step == 1
                                       || state.step == options.steps) {
                log(m.line(totalSteps: options.steps, eta: eta))
            }
            parallel.afterStep?(state.step)
            let stop = try parallel.anyRank(StopRequest.signal != nil)   // every rank, every step
            let last = state.step == options.steps || stop
            guard let dir = options.saveDir,
                  last || (options.saveFrequency > 0 && state.step % options.saveFrequency == 0) else {
                if stop { stoppedBySignal = true; break } else { continue }
            }
            do {
                try save(to: dir)   // every rank: gathering shards is a collective
            } catch {
                guard parallel.isMainRank else { throw error }
                if !last {   // training state is still here: the next save may succeed
                    log("warning: \(error); training goes on and the next save tries again")
                    continue
                }
                finalSaveError = error
                if stop { stoppedBySignal = true }
                break
            }
            log("checkpoint: \(dir.appendingPathComponent(Checkpoint.directoryName(step: state.step)).path)")
            if stop {
                stoppedBySignal = true
                log("stopped after step \(state.step) of \(options.steps) by signal \(StopRequest.signal ?? 0); continue with "
                    + "--load-path \(dir.path) (and the same settings)")
                break
            }
        }
        if parallel.isMainRank, let url = options.lossCurveFile {
            let svg = LossCurve.svg(losses: state.losses, title: "training loss",
                                    uniformLoss: Float(Foundation.log(Double(model.config.vocabSize))))
            do {
                try OutputFile.write(Data(svg.utf8), to: url)
                log("loss curve: \(url.path)")
            } catch {
                log("warning: could not write the loss curve: \(error)")
            }
        }
        if let finalSaveError {
            let previous = lastSavedStep.map { "the last checkpoint saved is step \($0) (resume with --load-path)" }
                ?? "no checkpoint of this run was saved"
            let reason = (finalSaveError as? TrainingError)?.message ?? "\(finalSaveError)"
            throw TrainingError.checkpoint("the run trained to step \(state.step), but \(reason); \(previous)")
        }
        return all
    }

    /// Writes a checkpoint of the current state. Every rank calls it; the main rank writes, one
    /// parameter part at a time as the ranks assemble it (see Checkpoint+Stream.swift).
    public func save(to dir: URL) throws {
        let local = CheckpointContents(config: model.config, parameters: parameters.map { ($0.0, $0.1.shape, $0.1.data) },
                                       optimizer: optimizer.state, trainer: state)
        var writer: CheckpointWriter?, failure: Error?
        if parallel.isMainRank {
            do {
                writer = try CheckpointWriter(saveDir: dir, step: state.step, config: model.config,
                                              layout: parallel.checkpointLayout ?? local.parameters.map { ($0.name, $0.shape) })
            } catch { failure = error }
        }
        // A failed write stops the writing, never the collective: the other ranks go on assembling.
        let write: CheckpointSink = { name, part, values, step in
            guard failure == nil, let writer else { return }
            do { try writer.write(name, part, values, step: step) } catch { failure = error }
        }
        try (parallel.gatherCheckpoint ?? { try $0.write(to: $1) })(local, write)
        guard parallel.isMainRank else { lastSavedStep = state.step; return }
        if let failure { throw failure }
        try writer?.finish(trainer: state)
        lastSavedStep = state.step
    }
}
