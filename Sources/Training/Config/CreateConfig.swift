// CreateConfig.swift: the logic of `picotron create-config`, picotron's create_config.py in Swift.
//
// create_single_config() starts from the template, sets the parallel sizes, the model (filling the layer
// and head counts from the model's own config, as picotron does with AutoConfig), the batch shape, the
// run name and save_dir = <out_dir>/<exp_name>, and writes <out_dir>/<exp_name>/config.json.
// Differences, on purpose: it starts from this project's CPU defaults (float32, use_cpu, gloo), the model
// must be a preset or a local directory (no Hub download), and an existing config is never deleted
// (picotron removes the whole experiment directory) unless `force` is set; only config.json is replaced.
import Formats
import Foundation
import Llama

/// create_config.py's arguments, same names and meanings; defaults are picotron's except model and seq_len.
public struct CreateConfigOptions: Sendable, Equatable {
    public var outDir = "tmp"
    public var expName = "dummy_exp"
    public var tp = 1, cp = 1, dp = 1, pp = 1
    public var ppEngine = "1f1b"
    /// A preset or a local Hugging Face directory (picotron: a Hub id, default SmolLM-360M-Instruct).
    public var modelName = "micro"
    /// nil: the model's own count is written, as picotron does.
    public var numHiddenLayers: Int?
    public var numAttentionHeads: Int?
    public var numKeyValueHeads: Int?
    public var gradAccSteps = 1
    public var mbs = 1
    /// picotron's default is 1024; 256 suits a CPU.
    public var seqLen = 256
    public var subsetName: String?
    public var useWandb = false
    /// Accepted for picotron's command lines; the config always says use_cpu true here.
    public var useCPU = false
    public var useFusedAdam = false
    public var hfToken: String?
    /// Replace an existing <out_dir>/<exp_name>/config.json.
    public var force = false

    public init() {}

    /// `<out_dir>/<exp_name>/config.json`.
    public var configFile: URL {
        URL(fileURLWithPath: outDir).appendingPathComponent(expName).appendingPathComponent("config.json")
    }

    /// Builds the config, checks it (values and model layout), and writes it atomically.
    /// Throws `TrainingError.config` for a bad value, an unknown model, or an existing file without `force`.
    public func run() throws -> (file: URL, config: PicotronConfig) {
        let config = try PicotronConfig(creating: self)
        try config.write(to: configFile, overwrite: force)
        return (configFile, config)
    }
}

extension PicotronConfig {
    /// create_single_config(): the config the options describe, validated, with the model's counts filled in.
    public init(creating o: CreateConfigOptions) throws {
        guard !o.expName.isEmpty, !o.expName.contains("/") else {
            throw TrainingError.config("--exp_name \(quoted(o.expName)) must be a non-empty name without '/'")
        }
        self.init()
        environment.hfToken = o.hfToken
        training.seqLength = o.seqLen
        checkpoint.saveDir = o.outDir.hasSuffix("/") ? o.outDir + o.expName : o.outDir + "/" + o.expName
        dataset.subsetName = o.subsetName
        model.name = o.modelName
        model.numHiddenLayers = o.numHiddenLayers
        model.numAttentionHeads = o.numAttentionHeads
        model.numKeyValueHeads = o.numKeyValueHeads
        model.useFusedAdam = o.useFusedAdam
        (distributed.tpSize, distributed.cpSize, distributed.dpSize, distributed.ppSize) = (o.tp, o.cp, o.dp, o.pp)
        distributed.ppEngine = o.ppEngine
        logging.useWandb = o.useWandb
        logging.runName = o.expName
        training.gradientAccumulationSteps = o.gradAccSteps
        training.microBatchSize = o.mbs
        try validate()
        // picotron writes the model's own counts where no override is given (AutoConfig.from_pretrained).
        let resolved = try resolvedModelConfig()
        model.numHiddenLayers = resolved.numHiddenLayers
        model.numAttentionHeads = resolved.numAttentionHeads
        model.numKeyValueHeads = resolved.numKeyValueHeads
    }

    /// The JSON text: pretty, keys sorted, slashes unescaped, a final newline.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Writes the config to `file` atomically (a temporary file in the same directory, then rename), creating
    /// the directory. Refuses to replace an existing file unless `overwrite`.
    public func write(to file: URL, overwrite: Bool = false) throws {
        let fm = FileManager.default
        if !overwrite, fm.fileExists(atPath: file.path) {
            throw TrainingError.config("\(file.path) already exists; refusing to overwrite it. Pass --force to "
                                       + "replace it, or choose another --exp_name or --out_dir")
        }
        do {
            try fm.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            // A regular file is replaced in one step (a reader sees the old file or the new one, never
            // half); a symbolic link is followed, a device written through (OutputFile).
            try OutputFile.write(try jsonData(), to: file)
        } catch {
            throw TrainingError.config("cannot write \(file.path): \(OutputFile.describe(error)); "
                                       + "check that the directory is writable")
        }
    }

    /// One line: model, layout, batch and steps, e.g.
    /// `model micro (4 layers, 4 heads, 2 kv heads) | dp 2 × pp 1 × cp 1 × tp 2 = 4 ranks | global batch 8 ...`.
    public var summary: String {
        func count(_ v: Int?) -> String { v.map(String.init) ?? "the model's" }
        let shape = "\(count(model.numHiddenLayers)) layers, \(count(model.numAttentionHeads)) heads, "
            + "\(count(model.numKeyValueHeads)) kv heads"
        let d = distributed, t = training
        let pipeline = d.ppSize > 1 ? " (\(d.ppEngine))" : ""
        return "model \(model.name) (\(shape)) | dp \(d.dpSize) × pp \(d.ppSize)\(pipeline) × cp \(d.cpSize) × "
            + "tp \(d.tpSize) = \(worldSize) ranks | global batch \(globalBatchSize) = mbs \(t.microBatchSize) × "
            + "grad_acc \(t.gradientAccumulationSteps) × dp \(d.dpSize), \(tokensPerStep) tokens per step "
            + "(seq_len \(t.seqLength)) | \(t.totalTrainSteps) steps"
    }
}
