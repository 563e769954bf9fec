// ConfigOverrides.swift: command-line values that win over the config file's.
//
// The flags themselves live in the executable (swift-argument-parser); this is the plain value they fill,
// so any command (`picotron train`, a lesson) can offer the same overrides and apply them the same way.
import Foundation

/// The common knobs a command line may override; nil leaves the file's value.
public struct ConfigOverrides: Sendable, Equatable {
    /// training.total_train_steps
    public var steps: Int?
    /// training.seed
    public var seed: Int?
    /// training.learning_rate
    public var learningRate: Double?
    /// training.micro_batch_size
    public var microBatchSize: Int?
    /// training.gradient_accumulation_steps
    public var gradAccSteps: Int?
    /// training.seq_length
    public var seqLength: Int?
    /// distributed.dp_size, tp_size, pp_size, cp_size
    public var dp: Int?
    public var tp: Int?
    public var pp: Int?
    public var cp: Int?
    /// checkpoint.save_dir
    public var saveDir: String?
    /// checkpoint.load_path
    public var loadPath: String?
    /// logging.metrics_file
    public var metricsFile: String?

    public init(steps: Int? = nil, seed: Int? = nil, learningRate: Double? = nil, microBatchSize: Int? = nil,
                gradAccSteps: Int? = nil, seqLength: Int? = nil, dp: Int? = nil, tp: Int? = nil, pp: Int? = nil,
                cp: Int? = nil, saveDir: String? = nil, loadPath: String? = nil, metricsFile: String? = nil) {
        (self.steps, self.seed, self.learningRate, self.microBatchSize) = (steps, seed, learningRate, microBatchSize)
        (self.gradAccSteps, self.seqLength) = (gradAccSteps, seqLength)
        (self.dp, self.tp, self.pp, self.cp) = (dp, tp, pp, cp)
        (self.saveDir, self.loadPath, self.metricsFile) = (saveDir, loadPath, metricsFile)
    }

    /// True when no override is set.
    public var isEmpty: Bool { self == ConfigOverrides() }
}

extension PicotronConfig {
    /// Replaces each value the overrides set. Does not validate: call `validate()` afterwards, so a bad
    /// flag is reported with the same rule and fix as a bad file value.
    public mutating func apply(overrides o: ConfigOverrides) {
        if let v = o.steps { training.totalTrainSteps = v }
        if let v = o.seed { training.seed = v }
        if let v = o.learningRate { training.learningRate = v }
        if let v = o.microBatchSize { training.microBatchSize = v }
        if let v = o.gradAccSteps { training.gradientAccumulationSteps = v }
        if let v = o.seqLength { training.seqLength = v }
        if let v = o.dp { distributed.dpSize = v }
        if let v = o.tp { distributed.tpSize = v }
        if let v = o.pp { distributed.ppSize = v }
        if let v = o.cp { distributed.cpSize = v }
        if let v = o.saveDir { checkpoint.saveDir = v }
        if let v = o.loadPath { checkpoint.loadPath = v }
        if let v = o.metricsFile { logging.metricsFile = v }
    }
}
