// One pipeline stage: its share of the decoder layers, the embedding on the first stage, the
// final norm, head and loss on the last, and the forward and backward of one micro-batch through
// them. Which layers each stage holds is picotron's split: L layers over pp stages, the first
// L mod pp stages one more.
// Legend: B = micro-batch size, T = sequence length, C = hidden, V = vocabulary, L = layers,
// pp = stages, s = this stage, M = micro-batches per step.
//
//   stage 0          ids [B, T] → embed → layers 0 ..< L₀ → h [B, T, C] ──▶
//   stage s          ──▶ h → layers → h ──▶
//   stage pp − 1     ──▶ h → layers → norm → head → logits [B, T, V] → loss / M
//
// Tied embeddings (SmolLM): the head multiplies by the embedding weight, which lives on the first
// stage. The last stage keeps its own copy (equal at the start); their gradients are summed
// between the two stages before the optimizer step, so both copies take the same step and stay
// equal (Megatron's embedding group; picotron has no tied embeddings).

import Distributed
import Llama
import TensorCore

/// The decoder layers stage `s` of `pp` holds, out of `layers`.
public func stageLayers(layers: Int, stages pp: Int, stage s: Int) -> Range<Int> {
    // TASK(Step3.1) stageLayers @ Lessons/03-pipeline-parallel.md#task-31
    // > Stage s of pp holds a contiguous run of the layers: every stage ⌊L / pp⌋ of them, and the
    // > first L mod pp stages one more (picotron's split: 5 layers on 3 stages are 0..<2, 2..<4, 4..<5).
    let base = layers / pp                              // every stage's share
    let extra = layers % pp                             // the first `extra` stages take one more
    let start = s * base + min(s, extra)                // after the earlier stages' layers
    return start ..< start + base + (s < extra ? 1 : 0)
    // STAND-IN: return s == 0 ? 0 ..< layers : layers ..< layers
    // END TASK(Step3.1)
}

/// The pipeline's input for one micro-batch: token ids (first stage), targets (last stage).
public struct MicroBatch {
    public let inputs: [Int], targets: [Int]
    public let batch: Int, length: Int
    public let positions: [Int]

    public init(inputs: [Int], targets: [Int], batch: Int, length: Int, positions: [Int]? = nil) {
        (self.inputs, self.targets, self.batch, self.length) = (inputs, targets, batch, length)
        self.positions = positions ?? Array(0 ..< length)
    }
}

/// What a micro-batch's forward leaves for its backward: the received input (a leaf whose gradient
/// goes back to the previous stage) and the output (sent on, or the scaled loss).
public struct StageActivation {
    public let input: Tensor?
    public let output: Tensor
}

public final class PipelineStage {
    public let model: LlamaForCausalLM
    public let layers: Range<Int>
    public let stage: Int, stages: Int
    /// M: every micro-batch's loss is divided by it, so the step's gradient is the gradient of the
    /// mean loss over the whole batch, as one process computes it.
    public let microBatches: Int

    public var isFirst: Bool { stage == 0 }
    public var isLast: Bool { stage == stages - 1 }

    public init(model: LlamaForCausalLM, stage: Int, stages: Int, microBatches: Int) {
        precondition(stages <= model.layers.count, "\(stages) stages for \(model.layers.count) layers")
        self.model = model
        (self.stage, self.stages, self.microBatches) = (stage, stages, microBatches)
        layers = stageLayers(layers: model.layers.count, stages: stages, stage: stage)
    }

    /// The parameters this stage holds and steps: its layers, plus the embedding (first stage),
    /// plus the final norm and the head (last stage; with tied embeddings, its copy of the
    /// embedding weight). Hugging Face names, in the model's order.
    public var namedParameters: [(String, Tensor)] {
        model.namedParameters.filter { name, _ in
            if name.hasPrefix("model.layers.") {
                let i = Int(name.split(separator: ".")[2])!
                return layers.contains(i)
            }
            if name.hasPrefix("model.embed_tokens.") { return isFirst || (isLast && model.config.tieWordEmbeddings) }
            return isLast   // model.norm, lm_head
        }
    }

    /// Forward of one micro-batch. `received` is the previous stage's output `[B, T, C]` (nil on the
    /// first stage). Returns what the backward needs; its output is sent on, or is the loss / M.
    public func forward(_ mb: MicroBatch, received: [Float]?) -> StageActivation {
        let rope = model.rope(positions: mb.positions)
        let mask = AttentionMask.causal(queryPositions: mb.positions, keyPositions: mb.positions)
        let shape = model.hiddenShape(batch: mb.batch, length: mb.length)         // [B, T, C] (T/tp: sequence parallel)
        // TASK(Step3.2) PipelineStage.forward @ Lessons/03-pipeline-parallel.md#task-32
        // > 1. `received` (every stage but the first) becomes a leaf `Tensor` of `shape` that
        // >    requires its gradient: the backward sends that gradient to the previous stage.
        // > 2. The first stage embeds `mb.inputs` instead (`model.embed`).
        // > 3. Run this stage's `layers` (`model.runLayers` with `rope` and `mask`).
        // > 4. Every stage but the last returns that output; the last applies `model.head` and
        // >    `model.lossFunction` with `mb.targets` and returns the loss divided by M
        // >    (`microBatches`): the step's gradient is then the whole batch's mean, as one process has it.
        let input = received.map { Tensor(shape: shape, data: $0, requiresGrad: true) }   // [B, T, C] a leaf
        let h0 = input ?? model.embed(mb.inputs, batch: mb.batch, length: mb.length)   // [B, T, C]
        let h = model.runLayers(h0, layers, rope: rope, mask: mask)                 // [B, T, C]
        guard isLast else { return StageActivation(input: input, output: h) }
        let loss = model.lossFunction(model.head(h), mb.targets)                  // [] mean over B·T
        return StageActivation(input: input, output: (1 / Float(microBatches)) * loss)   // the step's share
        // STAND-IN: _ = (rope, mask)
        // STAND-IN: let zeros = Tensor(zeros: shape)
        // STAND-IN: return StageActivation(input: received.map { _ in zeros }, output: isLast ? Tensor(scalar: 0) : zeros)
        // END TASK(Step3.2)
    }

    /// Backward of one micro-batch: from the scaled loss (last stage) or from `gradient`, the
    /// next stage's ∂L/∂output `[B, T, C]`. Returns ∂L/∂input for the previous stage (nil on the first).
    public func backward(_ a: StageActivation, gradient: [Float]?) -> [Float]? {
        // TASK(Step3.3) PipelineStage.backward @ Lessons/03-pipeline-parallel.md#task-33
        // > The last stage starts autograd from its output, the scaled loss (`backward()`); every
        // > other stage from `gradient`, ∂L/∂output as the next stage sent it (`backward(gradient:)`).
        // > Return the gradient of `a.input` (zeros if autograd left it nil), or nil on the first stage.
        if isLast {
            a.output.backward()                                                    // seed: ∂(loss / M)/∂itself = 1
        } else {
            a.output.backward(gradient: gradient!)                                 // [B, T, C] from stage s + 1
        }
        guard let input = a.input else { return nil }
        return input.grad ?? [Float](repeating: 0, count: input.count)             // [B, T, C] for stage s − 1
        // STAND-IN: return a.input.map { [Float](repeating: 0, count: $0.count) }
        // END TASK(Step3.3)
    }
}
