// PicotronConfig+Model.swift: from `model.name` and the overrides to the LlamaConfig to build.
//
// picotron calls `AutoConfig.from_pretrained(name)` (a Hub download), then overrides num_hidden_layers,
// num_attention_heads and num_key_value_heads from the config file and sets max_position_embeddings to
// seq_length. Here the name is a local Hugging Face directory, a built-in preset, or a Hub id from the table of
// published architectures (LlamaConfig+Hub.swift: picotron initialises weights at random, so the architecture is
// all it reads from the Hub); the overrides and max_position_embeddings are applied the same way, plus our
// hidden/intermediate/vocab size extensions.
import Formats
import Foundation
import Llama

extension PicotronConfig {
    /// The built-in presets, for messages.
    static var presetList: String { LlamaConfig.presetNames.joined(separator: ", ") }

    /// Where `model.name` points, before overrides.
    public enum ModelSource: Sendable, Equatable {
        /// A local directory holding a Hugging Face config.json.
        case directory(URL)
        /// A built-in preset, by its canonical name.
        case preset(String)
        /// A published architecture from `LlamaConfig.hubArchitectures`, by its Hub id.
        case hub(String)
    }

    /// Resolves `model.name`: a local directory with config.json first, then a preset by name, then a Hub id
    /// whose last part names a preset ("HuggingFaceTB/SmolLM-135M" → smollm135m), then a Hub id of the table of
    /// published architectures ("HuggingFaceTB/SmolLM-1.7B"). Throws otherwise.
    public func modelSource() throws -> ModelSource {
        let name = model.name
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory) {
            let url = URL(fileURLWithPath: name)
            let file = url.appendingPathComponent("config.json")
            guard isDirectory.boolValue, FileManager.default.fileExists(atPath: file.path) else {
                throw TrainingError.config("model.name \(quoted(name)) exists but is not a directory holding a "
                                           + "config.json; point it at a Hugging Face model directory or use a "
                                           + "preset (\(Self.presetList))")
            }
            return .directory(url)
        }
        let lastPart = name.split(separator: "/").last.map(String.init) ?? name
        for candidate in [name, lastPart] {
            if let preset = LlamaConfig.presets.first(where: { LlamaConfig.preset(named: candidate) == $0.config }) {
                return .preset(preset.name)
            }
        }
        if let entry = LlamaConfig.hubArchitecture(named: name) { return .hub(entry.id) }
        let hub = name.contains("/")
            ? " Hub downloads are not available here: the built-in table of published architectures knows "
                + LlamaConfig.hubArchitectureIds.joined(separator: ", ") + "; for another model, download its "
                + "config.json once where you have network access (e.g. `huggingface-cli download \(name) "
                + "config.json --local-dir models/\(lastPart)`) and set model.name to that local directory"
            : ""
        throw TrainingError.config("model.name \(quoted(name)) is neither a built-in preset (\(Self.presetList)) "
                                   + "nor a local directory with a config.json.\(hub)")
    }

    /// The model to build: `model.name` resolved, then the overrides (picotron's three, our three sizes)
    /// and max_position_embeddings = seq_length; checked for the parallel layout (heads divisible by tp,
    /// at least one layer per pipeline stage). Throws `TrainingError.config` naming the value and the fix.
    public func resolvedModelConfig() throws -> LlamaConfig {
        // Sizes above their limits first: the arithmetic below (divisors, products) assumes them bounded.
        if let problem = modelSizeLimitProblems().first { throw TrainingError.config(problem) }
        let base: LlamaConfig
        switch try modelSource() {
        case .preset(let name):
            base = LlamaConfig.preset(named: name)!
        case .hub(let id):
            base = LlamaConfig.hubArchitecture(named: id)!.config
        case .directory(let url):
            do { base = try LlamaConfig.load(from: url) } catch {
                throw TrainingError.config("model.name \(quoted(model.name)): \(error)")
            }
            // A pretrained model has seen positions up to its max_position_embeddings only.
            if training.seqLength > base.maxPositionEmbeddings {
                throw TrainingError.config("training.seq_length \(training.seqLength) exceeds max_position_embeddings "
                                           + "\(base.maxPositionEmbeddings) of \(url.path); set seq_length to "
                                           + "\(base.maxPositionEmbeddings) or less")
            }
        }
        let hidden = model.hiddenSize ?? base.hiddenSize
        let heads = model.numAttentionHeads ?? base.numAttentionHeads
        // A changed width or head count recomputes head_dim = hidden_size / heads, as picotron's model does.
        let reshaped = model.hiddenSize != nil || model.numAttentionHeads != nil
        if reshaped, hidden % heads != 0 {
            throw TrainingError.config("hidden_size \(hidden) is not divisible by num_attention_heads \(heads), so "
                                       + "heads cannot split the width evenly; choose model.num_attention_heads "
                                       + "among \(divisorList(of: hidden, near: heads))")
        }
        let config = LlamaConfig(
            vocabSize: model.vocabSize ?? base.vocabSize, hiddenSize: hidden,
            intermediateSize: model.intermediateSize ?? base.intermediateSize,
            numHiddenLayers: model.numHiddenLayers ?? base.numHiddenLayers, numAttentionHeads: heads,
            numKeyValueHeads: model.numKeyValueHeads ?? base.numKeyValueHeads,
            headDim: reshaped ? nil : base.headDim, rmsNormEps: base.rmsNormEps, ropeTheta: base.ropeTheta,
            maxPositionEmbeddings: training.seqLength, tieWordEmbeddings: base.tieWordEmbeddings,
            initializerRange: base.initializerRange)
        do { try config.validate(source: "model \(quoted(model.name)) with the config's overrides") } catch {
            throw TrainingError.config("\(error)")
        }
        let tp = distributed.tpSize, pp = distributed.ppSize
        let headCounts = [("num_attention_heads", config.numAttentionHeads),
                          ("num_key_value_heads", config.numKeyValueHeads)]
        for (key, value) in headCounts where value % tp != 0 {
            throw TrainingError.config("\(key) \(value) is not divisible by distributed.tp_size \(tp): tensor "
                                       + "parallelism gives each rank whole heads; choose tp_size among "
                                       + divisorList(of: value, near: tp)
                                       + " or set model.\(key)")
        }
        if config.numHiddenLayers < pp {
            throw TrainingError.config("num_hidden_layers \(config.numHiddenLayers) is fewer than distributed.pp_size "
                                       + "\(pp): each pipeline stage needs at least one layer; lower pp_size or "
                                       + "raise model.num_hidden_layers")
        }
        return config
    }
}
