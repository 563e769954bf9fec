import ArgumentParser
import Foundation
import Llama
import TensorCore
import Training

/// `picotron generate`: sample text from a checkpoint.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample text from a trained checkpoint (byte-level models).",
        discussion: "CHECKPOINT is a step-NNNNNN directory written by `picotron train`, or the folder holding them (its latest is used).")

    @Option(help: "A checkpoint directory, or a save folder (its latest checkpoint is used).")
    var checkpoint: String

    @Option(help: "The text to continue.")
    var prompt: String = "ROMEO:"

    @Option(parsing: .unconditional, help: "How many tokens (bytes) to generate.")
    var maxNewTokens: Int = 300

    @Option(parsing: .unconditional, help: "Sampling temperature; 0 always picks the most likely byte.")
    var temperature: Float = 0.8

    @Option(parsing: .unconditional, help: "Sample among the k most likely bytes (0: all).")
    var topK: Int = 40

    @Option(parsing: .unconditional, help: "Random seed for sampling.")
    var seed: UInt64 = 0

    func validate() throws {
        guard maxNewTokens >= 0 else { throw ValidationError("--max-new-tokens \(maxNewTokens) must be ≥ 0") }
        guard temperature >= 0 else { throw ValidationError("--temperature \(temperature) must be ≥ 0") }
        guard topK >= 0 else { throw ValidationError("--top-k \(topK) must be ≥ 0 (0 means all)") }
        guard !prompt.isEmpty else { throw ValidationError("--prompt is empty; give at least one character to continue") }
    }

    func run() throws {
        let dir = try Checkpoint.resolve(URL(fileURLWithPath: checkpoint))
        let model = try LlamaForCausalLM.load(directory: dir)
        for (name, p) in model.namedParameters {
            if let i = p.data.firstIndex(where: { !$0.isFinite }) {
                throw RunError("\(dir.path): \(name) holds \(describeValue(p.data[i])) at index \(i), so every sample would be "
                                      + "garbage; the run that saved it had diverged: use an earlier checkpoint")
            }
        }
        let tokenizer = ByteTokenizer()
        guard model.config.vocabSize == ByteTokenizer.vocabSize else {
            throw RunError("\(dir.path) has vocab_size \(model.config.vocabSize); generate decodes byte-level "
                                  + "models (vocab 256) only, as `picotron train` makes from text")
        }
        print(prompt, terminator: "")
        fflush(stdout)
        _ = Generation.generate(model, prompt: tokenizer.encode(prompt),
                                options: SamplingOptions(temperature: temperature, topK: topK, seed: seed,
                                                         maxNewTokens: maxNewTokens)) { token in
            putchar(Int32(token))   // bytes as they come: the same C buffer as print, so in order
            fflush(stdout)
        }
        print()
    }
}
