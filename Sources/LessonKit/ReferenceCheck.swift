// Comparing a parallel run with the single-process reference: the one place that decides
// "equal" for every lesson, its tests and its executable, and says where two results differ.

import Foundation
import Llama
import TensorCore
import Training

/// The result of comparing one tensor (or one rank's shard of it) with the reference.
public struct Comparison: Sendable, CustomStringConvertible {
    public let name: String
    public let maxAbsDiff: Float
    /// Flat index of the largest difference, and both values there.
    public let index: Int
    public let got: Float, want: Float
    /// max |reference|, the scale the tolerance is relative to.
    public let scale: Float
    public let tolerance: Float
    /// The tensor's shape, when known: `where` then prints `[row, col]` instead of a flat index.
    public var shape: [Int]? = nil
    /// The likely cause of a failure, in the student's terms ("did you average?"); set by the lesson.
    public var hint: String? = nil

    public var passed: Bool { maxAbsDiff <= tolerance }

    /// Where the largest difference is: `[3, 17]` with a shape, else `index 53`.
    public var location: String {
        guard let shape, !shape.isEmpty, shape.reduce(1, *) > index else { return "index \(index)" }
        var rest = index, coords = [Int](repeating: 0, count: shape.count)
        for d in shape.indices.reversed() { (coords[d], rest) = (rest % shape[d], rest / shape[d]) }
        return "[" + coords.map(String.init).joined(separator: ", ") + "]"
    }

    /// The same comparison with a hint attached.
    public func withHint(_ hint: String?) -> Comparison {
        var c = self
        c.hint = hint
        return c
    }

    /// `PASS  name  max|Δ| = 1.2e-08` (or FAIL with where, both values, the tolerance and the hint).
    public var description: String {
        let diff = String(format: "%.1e", maxAbsDiff)
        if passed { return "PASS  \(name)  max|Δ| = \(diff)" }
        return "FAIL  \(name)  max|Δ| = \(diff) at \(location) (got \(got), want \(want)), "
            + "tolerance \(String(format: "%.1e", tolerance))" + (hint.map { "\n      hint: \($0)" } ?? "")
    }
}

public enum ReferenceCheck {
    /// Default tolerance, relative to the largest reference value of the tensor. float32 sums
    /// taken in a different order (an all-reduce, a split matmul) differ by a few ulp of the
    /// largest partial sums; 1e-5 is ~100 ulp, and any real error (a missing average, a wrong
    /// shard, a dropped micro-batch) is off by 1e-2 or more.
    public static let relativeTolerance: Float = 1e-5

    /// Compares `got` with `want` element by element.
    public static func compare(_ name: String, got: [Float], want: [Float],
                               relative: Float = relativeTolerance, shape: [Int]? = nil) -> Comparison {
        precondition(got.count == want.count, "\(name): \(got.count) values, reference has \(want.count)")
        var worst = 0, worstDiff: Float = 0, scale: Float = 0
        for i in want.indices {
            let d = abs(got[i] - want[i])
            if d > worstDiff || d.isNaN { (worst, worstDiff) = (i, d.isNaN ? .infinity : d) }
            scale = max(scale, abs(want[i]))
        }
        return Comparison(name: name, maxAbsDiff: worstDiff, index: worst, got: got.isEmpty ? 0 : got[worst],
                          want: want.isEmpty ? 0 : want[worst], scale: scale,
                          tolerance: relative * max(scale, 1e-30), shape: shape)
    }

    /// The factor k with `got ≈ k · want`, if there is one (to within 1e-3 of the largest value),
    /// else nil. Hints use it: gradients 2× the reference on 2 ranks mean "summed, not averaged".
    public static func ratio(got: [Float], want: [Float]) -> Float? {
        precondition(got.count == want.count, "ratio of \(got.count) and \(want.count) values")
        var gw: Double = 0, ww: Double = 0
        for i in want.indices { gw += Double(got[i]) * Double(want[i]); ww += Double(want[i]) * Double(want[i]) }
        guard ww > 0 else { return nil }
        let k = Float(gw / ww)
        var worst: Float = 0, scale: Float = 0
        for i in want.indices { worst = max(worst, abs(got[i] - k * want[i])); scale = max(scale, abs(k * want[i])) }
        return worst <= 1e-3 * max(scale, 1e-30) ? k : nil
    }
}

/// A small model and batch every lesson can build identically on every rank from a seed.
public struct LessonProblem: Sendable {
    public var config: LlamaConfig
    public var seed: UInt64
    /// Global batch: `batch` sequences of `length` tokens; inputs and next-token targets `[B, T]`.
    public var batch: Int, length: Int
    public var inputs: [Int], targets: [Int]

    /// 8 query heads and 4 key/value heads, so tensor parallelism of 1, 2 and 4 all divide.
    public static let lessonConfig = LlamaConfig(
        vocabSize: 128, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
        numAttentionHeads: 8, numKeyValueHeads: 4, rmsNormEps: 1e-5, maxPositionEmbeddings: 256)

    /// Random tokens (seeded) shaped `[batch, length]`; targets are the next tokens.
    public init(config: LlamaConfig = lessonConfig, seed: UInt64 = 1234, batch: Int = 8, length: Int = 16) {
        self.config = config
        self.seed = seed
        (self.batch, self.length) = (batch, length)
        let rng = CounterRNG(seed: seed, stream: "lesson-tokens")
        let stream = (0..<(batch * (length + 1))).map { Int(rng.bits(UInt64($0)) % UInt64(config.vocabSize)) }
        var x = [Int](), y = [Int]()
        for b in 0..<batch {
            let row = stream[(b * (length + 1))..<((b + 1) * (length + 1))]
            x += row.dropLast()
            y += row.dropFirst()
        }
        (inputs, targets) = (x, y)
    }

    /// A fresh single-process model (every rank builds the same one).
    public func makeModel() -> LlamaForCausalLM { LlamaForCausalLM(config: config, seed: seed) }

    /// Rows `rows` of the batch: (inputs, targets), each `[rows.count, T]`.
    public func rows(_ rows: Range<Int>) -> (inputs: [Int], targets: [Int]) {
        (Array(inputs[(rows.lowerBound * length)..<(rows.upperBound * length)]),
         Array(targets[(rows.lowerBound * length)..<(rows.upperBound * length)]))
    }

    /// The single-process reference: loss and every parameter's gradient (by HF name) for
    /// the whole batch, mean over all its tokens.
    public func reference() -> (loss: Float, gradients: [String: [Float]]) {
        let model = makeModel()
        let loss = model.lossFunction(model.logits(inputs, batch: batch, length: length), targets)
        loss.backward()
        var grads = [String: [Float]]()
        for (name, p) in model.namedParameters { grads[name] = p.grad ?? [Float](repeating: 0, count: p.count) }
        return (loss.item, grads)
    }

    /// Parameters (by HF name) after `steps` AdamW steps of the single-process reference on
    /// the whole batch each step.
    public func referenceAfterSteps(_ steps: Int, hyper: AdamW.Hyperparameters) -> (losses: [Float], parameters: [String: [Float]]) {
        referenceAfterSteps(steps, hyper: hyper, frozen: [])
    }
}
