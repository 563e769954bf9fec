// LlamaConfig+Hub.swift: the architectures of the Llama-family models people name, by Hub id.
//
// picotron reads a model's architecture with `AutoConfig.from_pretrained(name)` and initialises the weights at
// random; it never loads the pretrained weights. So the architecture is all `create-config` and `train` need, and
// this table holds it for the usual names, copied from each model's published config.json (the id beside each
// entry is the repository whose config.json the numbers come from). Nothing is downloaded. A local directory
// with a config.json still wins over the table (PicotronConfig+Model.swift).
//
// Left out on purpose: rope_scaling (Llama 3.2's "llama3" long-context scaling changes frequencies only beyond
// 8192 positions, which CPU runs never reach) and the tokenizer (training here uses the byte/token corpus).
import Foundation

extension LlamaConfig {
    /// Published architectures by Hub id; `rope_theta` defaults to 10,000 where the config.json has none.
    public static let hubArchitectures: [(id: String, config: LlamaConfig)] = [
        // HuggingFaceTB/SmolLM-135M
        ("HuggingFaceTB/SmolLM-135M", LlamaConfig(
            vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
            numKeyValueHeads: 3, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 2048,
            tieWordEmbeddings: true)),
        // HuggingFaceTB/SmolLM-360M
        ("HuggingFaceTB/SmolLM-360M", LlamaConfig(
            vocabSize: 49152, hiddenSize: 960, intermediateSize: 2560, numHiddenLayers: 32, numAttentionHeads: 15,
            numKeyValueHeads: 5, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 2048,
            tieWordEmbeddings: true)),
        // HuggingFaceTB/SmolLM-1.7B
        ("HuggingFaceTB/SmolLM-1.7B", LlamaConfig(
            vocabSize: 49152, hiddenSize: 2048, intermediateSize: 8192, numHiddenLayers: 24, numAttentionHeads: 32,
            numKeyValueHeads: 32, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 2048,
            tieWordEmbeddings: true)),
        // HuggingFaceTB/SmolLM2-135M (head_dim 64 given)
        ("HuggingFaceTB/SmolLM2-135M", LlamaConfig(
            vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
            numKeyValueHeads: 3, headDim: 64, rmsNormEps: 1e-5, ropeTheta: 100_000, maxPositionEmbeddings: 8192,
            tieWordEmbeddings: true)),
        // HuggingFaceTB/SmolLM2-360M
        ("HuggingFaceTB/SmolLM2-360M", LlamaConfig(
            vocabSize: 49152, hiddenSize: 960, intermediateSize: 2560, numHiddenLayers: 32, numAttentionHeads: 15,
            numKeyValueHeads: 5, rmsNormEps: 1e-5, ropeTheta: 100_000, maxPositionEmbeddings: 8192,
            tieWordEmbeddings: true)),
        // HuggingFaceTB/SmolLM2-1.7B
        ("HuggingFaceTB/SmolLM2-1.7B", LlamaConfig(
            vocabSize: 49152, hiddenSize: 2048, intermediateSize: 8192, numHiddenLayers: 24, numAttentionHeads: 32,
            numKeyValueHeads: 32, rmsNormEps: 1e-5, ropeTheta: 130_000, maxPositionEmbeddings: 8192,
            tieWordEmbeddings: true)),
        // TinyLlama/TinyLlama-1.1B-Chat-v1.0 (the base checkpoints share the architecture)
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", LlamaConfig(
            vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numHiddenLayers: 22, numAttentionHeads: 32,
            numKeyValueHeads: 4, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 2048)),
        // meta-llama/Llama-2-7b-hf (no rope_theta in the file: 10,000)
        ("meta-llama/Llama-2-7b-hf", LlamaConfig(
            vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numHiddenLayers: 32, numAttentionHeads: 32,
            numKeyValueHeads: 32, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 4096)),
        // meta-llama/Llama-2-13b-hf (no rope_theta in the file: 10,000)
        ("meta-llama/Llama-2-13b-hf", LlamaConfig(
            vocabSize: 32000, hiddenSize: 5120, intermediateSize: 13824, numHiddenLayers: 40, numAttentionHeads: 40,
            numKeyValueHeads: 40, rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 4096)),
        // meta-llama/Meta-Llama-3-8B
        ("meta-llama/Meta-Llama-3-8B", LlamaConfig(
            vocabSize: 128_256, hiddenSize: 4096, intermediateSize: 14336, numHiddenLayers: 32,
            numAttentionHeads: 32, numKeyValueHeads: 8, rmsNormEps: 1e-5, ropeTheta: 500_000,
            maxPositionEmbeddings: 8192)),
        // meta-llama/Llama-3.2-1B (head_dim 64 given)
        ("meta-llama/Llama-3.2-1B", LlamaConfig(
            vocabSize: 128_256, hiddenSize: 2048, intermediateSize: 8192, numHiddenLayers: 16, numAttentionHeads: 32,
            numKeyValueHeads: 8, headDim: 64, rmsNormEps: 1e-5, ropeTheta: 500_000, maxPositionEmbeddings: 131_072,
            tieWordEmbeddings: true)),
        // meta-llama/Llama-3.2-3B (head_dim 128 given)
        ("meta-llama/Llama-3.2-3B", LlamaConfig(
            vocabSize: 128_256, hiddenSize: 3072, intermediateSize: 8192, numHiddenLayers: 28, numAttentionHeads: 24,
            numKeyValueHeads: 8, headDim: 128, rmsNormEps: 1e-5, ropeTheta: 500_000, maxPositionEmbeddings: 131_072,
            tieWordEmbeddings: true)),
    ]

    /// The ids, for messages.
    public static var hubArchitectureIds: [String] { hubArchitectures.map(\.id) }

    /// The table's entry for a Hub id, or for its last part alone ("SmolLM-1.7B"); case is ignored, and
    /// "-Instruct" / "-hf" / "-chat" variants share their base model's architecture.
    public static func hubArchitecture(named name: String) -> (id: String, config: LlamaConfig)? {
        func key(_ s: String) -> String {
            var k = (s.split(separator: "/").last.map(String.init) ?? s).lowercased()
            for suffix in ["-instruct", "-chat-v1.0", "-hf", "-chat"] where k.hasSuffix(suffix) {
                k.removeLast(suffix.count)
            }
            return k
        }
        let wanted = key(name)
        return hubArchitectures.first { key($0.id) == wanted }
    }
}
