// Sampling text from a trained model, so a learner sees what it learned.
// Legend: T = context length, V = vocabulary.

import Foundation
import Llama
import TensorCore

public struct SamplingOptions: Sendable {
    /// Divides the logits; lower is more conservative, 0 picks the most likely token.
    public var temperature: Float = 0.8
    /// Sample among the k most likely tokens only (0: all).
    public var topK = 40
    public var seed: UInt64 = 0
    public var maxNewTokens = 200

    public init(temperature: Float = 0.8, topK: Int = 40, seed: UInt64 = 0, maxNewTokens: Int = 200) {
        (self.temperature, self.topK, self.seed, self.maxNewTokens) = (temperature, topK, seed, maxNewTokens)
    }
}

public enum Generation {
    /// Continues `prompt` by `options.maxNewTokens` tokens, one forward pass per token over the
    /// last `max_position_embeddings` tokens (no key/value cache: simple, and fast enough here).
    /// `onToken` sees each new token as it is chosen.
    public static func generate(_ model: LlamaForCausalLM, prompt: [Int], options: SamplingOptions,
                                onToken: (Int) -> Void = { _ in }) -> [Int] {
        precondition(!prompt.isEmpty, "generation needs at least one prompt token")
        let rng = CounterRNG(seed: options.seed, stream: "sampling")
        let window = model.config.maxPositionEmbeddings
        var tokens = prompt
        Autograd.withoutGrad {
            for i in 0..<options.maxNewTokens {
                let context = Array(tokens.suffix(window))                            // [T]
                let logits = model.logits(context, batch: 1, length: context.count)   // [1, T, V]
                let v = model.config.vocabSize
                let last = Array(logits.data[((context.count - 1) * v)..<(context.count * v)])   // [V]
                let next = sample(last, options: options, uniform: rng.uniform(i))
                tokens.append(next)
                onToken(next)
            }
        }
        return Array(tokens.dropFirst(prompt.count))
    }

    /// Picks a token from one row of logits: greedy at temperature 0, else softmax(logits / t)
    /// restricted to the top k, inverted at the uniform draw `u` ∈ [0, 1).
    public static func sample(_ logits: [Float], options: SamplingOptions, uniform u: Float) -> Int {
        let order = logits.indices.sorted { logits[$0] > logits[$1] }
        guard options.temperature > 0 else { return order[0] }
        let kept = options.topK > 0 ? Array(order.prefix(options.topK)) : order
        let m = logits[kept[0]]
        let weights = kept.map { Foundation.exp(Double((logits[$0] - m) / options.temperature)) }
        let total = weights.reduce(0, +)
        var acc = 0.0
        for (id, w) in zip(kept, weights) {
            acc += w / total
            if Double(u) < acc { return id }
        }
        return kept[kept.count - 1]
    }
}
