// Checkpoints: everything needed to continue a run exactly where it stopped.
//
// A checkpoint is a directory `step-000100/` holding
//   config.json + model.safetensors   a Hugging Face model directory (transformers loads it)
//   optimizer.safetensors             AdamW's two moments per parameter
//   trainer_state.json                step, tokens seen, data position, schedule, loss history
// It is written under a temporary name in the same folder and renamed when complete, so a crash
// never leaves a half checkpoint, and an existing checkpoint is never overwritten.

import Formats
import Foundation
import Llama
import TensorCore

/// The run's position and history, saved beside the weights.
public struct TrainerState: Codable, Sendable, Equatable {
    public var format = 1
    /// Optimizer steps completed.
    public var step: Int
    /// Tokens consumed over all ranks.
    public var tokensSeen: Int
    /// Where the data loader stands (shared by all data-parallel ranks: it counts windows globally).
    public var loader: LoaderState
    public var seed: Int
    public var schedule: LearningRateSchedule
    /// AdamW's step count per parameter (torch keeps one per parameter).
    public var optimizerSteps: [Int]
    /// The logged loss of every step so far (the loss curve continues across a resume).
    public var losses: [Float]
    /// How text maps to token ids: "byte" for the byte-level tokenizer, "external" for token files.
    public var tokenizer: String
}

/// What a checkpoint holds, for the whole model whatever the parallel layout that trained it:
/// a tensor-parallel run gathers its shards into this before writing and slices it after reading,
/// so any layout can resume any checkpoint.
public struct CheckpointContents {
    public var config: LlamaConfig
    /// Every parameter in full, in `namedParameters` order.
    public var parameters: [(name: String, shape: [Int], values: [Float])]
    /// AdamW's state for each parameter, same order.
    public var optimizer: [AdamW.State]
    public var trainer: TrainerState

    public init(config: LlamaConfig, parameters: [(name: String, shape: [Int], values: [Float])],
                optimizer: [AdamW.State], trainer: TrainerState) {
        (self.config, self.parameters, self.optimizer, self.trainer) = (config, parameters, optimizer, trainer)
    }

    /// A single-process model's contents (its parameters are whole).
    public init(model: LlamaForCausalLM, optimizer: AdamW, trainer: TrainerState) {
        self.init(config: model.config, parameters: model.namedParameters.map { ($0.0, $0.1.shape, $0.1.data) },
                  optimizer: optimizer.state, trainer: trainer)
    }

    /// Puts the contents into a single-process model and its optimizer.
    public func install(into model: LlamaForCausalLM, optimizer: AdamW) throws {
        for ((name, p), saved) in zip(model.namedParameters, parameters) {
            guard name == saved.name, p.count == saved.values.count else {
                throw TrainingError.checkpoint("the checkpoint's \(saved.name) (\(saved.shape)) does not fit the model's "
                                               + "\(name) (\(p.shape)): its config.json and weights disagree")
            }
            p.data = saved.values
        }
        try optimizer.restore(self.optimizer)
    }
}

public enum Checkpoint {
    /// `step-000100`: sorts by step.
    public static func directoryName(step: Int) -> String { String(format: "step-%06ld", step) }

    /// The checkpoints in `saveDir`, oldest first.
    public static func existing(in saveDir: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: saveDir.path)) ?? []
        return names.filter { $0.hasPrefix("step-") && !$0.hasSuffix(".tmp") }.sorted()
            .map { saveDir.appendingPathComponent($0) }
    }

    /// A checkpoint directory from `path`: a checkpoint itself, or a save folder (its latest
    /// complete checkpoint; a newer folder that is not one, say an empty `step-000009` made by hand,
    /// is passed over and named in `skipped`).
    public static func resolve(_ path: URL) throws -> URL { try resolveNoting(path).directory }

    public static func resolveNoting(_ path: URL) throws -> (directory: URL, skipped: [String]) {
        let fm = FileManager.default
        if missingFiles(in: path).isEmpty { return (path, []) }
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path.path, isDirectory: &isDirectory) else {
            throw TrainingError.checkpoint("\(path.path) does not exist; point checkpoint.load_path at a step-NNNNNN "
                                           + "directory or at the save_dir that holds them")
        }
        guard isDirectory.boolValue else {
            throw TrainingError.checkpoint("\(path.path) is a file; point checkpoint.load_path at a step-NNNNNN "
                                           + "directory or at the save_dir that holds them")
        }
        if path.lastPathComponent.hasPrefix("step-") {   // a checkpoint folder, but not a whole one
            let missing = missingFiles(in: path).joined(separator: ", ")
            let previous = existing(in: path.deletingLastPathComponent())
                .last { $0.lastPathComponent < path.lastPathComponent && missingFiles(in: $0).isEmpty }
            throw TrainingError.checkpoint("\(path.path) is not a complete checkpoint (it lacks \(missing)); "
                                           + (previous.map { "the one before it is whole: --load-path \($0.path)" }
                                              ?? "no earlier checkpoint in its folder is whole"))
        }
        let all = existing(in: path)
        guard let latest = all.last(where: { missingFiles(in: $0).isEmpty }) else {
            throw TrainingError.checkpoint("\(path.path) holds no complete checkpoint (no trainer_state.json and no whole "
                                           + "step-NNNNNN directory); point checkpoint.load_path at one")
        }
        let skipped = all.filter { $0.lastPathComponent > latest.lastPathComponent }.map(\.lastPathComponent)
        return (latest, skipped)
    }

    /// The files of a checkpoint that `directory` lacks (empty: it is whole).
    public static func missingFiles(in directory: URL) -> [String] {
        let fm = FileManager.default
        var missing = ["config.json", "trainer_state.json", "optimizer.safetensors"]
            .filter { !fm.fileExists(atPath: directory.appendingPathComponent($0).path) }
        let weights = [SafeTensorsCheckpoint.singleFileName, "model.safetensors.index.json"]
        if !weights.contains(where: { fm.fileExists(atPath: directory.appendingPathComponent($0).path) }) {
            missing.append(SafeTensorsCheckpoint.singleFileName)
        }
        return missing
    }

    /// Writes `contents` into `saveDir/step-NNNNNN` (see `CheckpointWriter`). Refuses non-finite
    /// weights or moments before writing anything.
    @discardableResult
    public static func save(_ contents: CheckpointContents, to saveDir: URL) throws -> URL {
        if let bad = contents.firstNonFinite() {
            throw TrainingError.checkpoint("not saving \(directoryName(step: contents.trainer.step)): \(bad); the run has "
                                           + "diverged, and the checkpoints already saved are kept as they are")
        }
        let writer = try CheckpointWriter(saveDir: saveDir, step: contents.trainer.step, config: contents.config,
                                          layout: contents.parameters.map { ($0.name, $0.shape) })
        try contents.write { name, part, values, step in try writer.write(name, part, values, step: step) }
        return try writer.finish(trainer: contents.trainer)
    }

    /// Writes a checkpoint of a single-process `model` and `optimizer`.
    @discardableResult
    public static func save(model: LlamaForCausalLM, optimizer: AdamW, state: TrainerState, to saveDir: URL) throws -> URL {
        try save(CheckpointContents(model: model, optimizer: optimizer, trainer: state), to: saveDir)
    }

    /// Reads a whole checkpoint of a model with architecture `config` whose parameters are `names`
    /// (Hugging Face names, in `namedParameters` order: the same under any parallel layout).
    /// Shapes come from the file; equal architectures imply equal shapes.
    public static func read(from directory: URL, config: LlamaConfig, names: [String]) throws -> CheckpointContents {
        let reader = try CheckpointReader(directory: directory, config: config, names: names)
        var contents = CheckpointContents(config: reader.config, parameters: [], optimizer: [], trainer: reader.trainer)
        for name in names {
            let p = try reader.parameter(name)
            contents.parameters.append((name, p.shape, p.values))
            contents.optimizer.append(p.state)
        }
        return contents
    }

    /// Loads a checkpoint into a single-process `model` and `optimizer` of the same architecture.
    public static func load(from directory: URL, into model: LlamaForCausalLM, optimizer: AdamW) throws -> TrainerState {
        let contents = try read(from: directory, config: model.config, names: model.namedParameters.map(\.0))
        try contents.install(into: model, optimizer: optimizer)
        return contents.trainer
    }

    /// The first architectural field in which two configs differ, or nil.
    static func describeDifference(_ a: LlamaConfig, _ b: LlamaConfig) -> String? {
        let fields: [(String, Int, Int)] = [
            ("vocab_size", a.vocabSize, b.vocabSize), ("hidden_size", a.hiddenSize, b.hiddenSize),
            ("intermediate_size", a.intermediateSize, b.intermediateSize),
            ("num_hidden_layers", a.numHiddenLayers, b.numHiddenLayers),
            ("num_attention_heads", a.numAttentionHeads, b.numAttentionHeads),
            ("num_key_value_heads", a.numKeyValueHeads, b.numKeyValueHeads), ("head_dim", a.headDim, b.headDim),
        ]
        if let f = fields.first(where: { $0.1 != $0.2 }) { return "\(f.0) \(f.1) in the checkpoint, \(f.2) now" }
        if a.tieWordEmbeddings != b.tieWordEmbeddings { return "tie_word_embeddings differs" }
        return nil
    }
}
