// Loading and saving a Hugging Face model directory: config.json + model.safetensors
// (or a sharded checkpoint with model.safetensors.index.json). What we save loads back into
// transformers' LlamaForCausalLM.from_pretrained.

import Formats
import Foundation
import TensorCore

extension LlamaForCausalLM {
    /// Loads a Hugging Face Llama directory. Every parameter the config implies must be
    /// present with the shape the config implies; BF16/F16 weights are widened to float32.
    public static func load(directory: URL) throws -> LlamaForCausalLM {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try LlamaConfig.load(from: configURL)
        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        // Build the structure from a seed, then overwrite every parameter from the file.
        let model = LlamaForCausalLM(config: config, seed: 0)
        try model.loadParameters(from: checkpoint)
        return model
    }

    /// Overwrites every parameter with the tensor of the same Hugging Face name.
    public func loadParameters(from checkpoint: SafeTensorsCheckpoint) throws {
        let file = checkpoint.directory.path
        for (name, p) in namedParameters {
            guard checkpoint.contains(name) else {
                throw ModelFileError(.missingTensor, file: file,
                                     problem: "no tensor '\(name)' (the config implies it)",
                                     fix: "check that config.json belongs to these weights")
            }
            let info = try checkpoint.info(name)
            guard info.shape == p.shape else {
                throw ModelFileError(.invalidConfig, file: file,
                                     problem: "tensor '\(name)' has shape \(info.shape), the config implies \(p.shape)",
                                     fix: "check that config.json belongs to these weights")
            }
            p.data = try checkpoint.floats(name)
            p.zeroGrad()
        }
    }

    /// Writes `config.json` and `model.safetensors` (float32) into `directory`, creating it.
    /// Each file is written to a temporary name and renamed, so an interrupted save never
    /// leaves a half-written file under the real name.
    public func save(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try config.save(to: directory)
        let tensors = namedParameters.map { (name: $0.0, shape: $0.1.shape, values: $0.1.data) }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"],
                                    to: directory.appendingPathComponent(SafeTensorsCheckpoint.singleFileName))
    }

    /// Every parameter's gradient under its Hugging Face name (zeros where none was computed).
    public func gradients() -> [(name: String, shape: [Int], values: [Float])] {
        namedParameters.map { name, p in
            (name, p.shape, p.grad ?? [Float](repeating: 0, count: p.count))
        }
    }
}
