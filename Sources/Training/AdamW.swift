// AdamW with PyTorch's semantics (torch.optim.AdamW, single-tensor path):
//   p ← p · (1 − lr·λ)                          decoupled weight decay, applied first
//   m ← m + (1 − β1)·(g − m)                    (torch's lerp)
//   v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
// ### References
// Loshchilov & Hutter, Decoupled Weight Decay Regularization, https://arxiv.org/abs/1711.05101

import TensorCore

public final class AdamW {
    public struct Hyperparameters: Codable, Sendable, Equatable {
        public var lr: Double
        public var beta1: Double
        public var beta2: Double
        public var eps: Double
        public var weightDecay: Double

        /// Defaults are torch's, except weight decay which is picotron's 0.01 too.
        public init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999,
                    eps: Double = 1e-8, weightDecay: Double = 0.01) {
            (self.lr, self.beta1, self.beta2, self.eps, self.weightDecay) = (lr, beta1, beta2, eps, weightDecay)
        }
    }

    /// Per-parameter state: step count and both moments (the names torch uses in its state).
    public struct State: Sendable {
        public var step: Int = 0
        public var expAvg: [Float]
        public var expAvgSq: [Float]

        public init(step: Int = 0, expAvg: [Float], expAvgSq: [Float]) {
            (self.step, self.expAvg, self.expAvgSq) = (step, expAvg, expAvgSq)
        }
    }

    public let parameters: [Tensor]
    /// The values of each parameter this optimizer updates and keeps moments for: all of them, or
    /// with ZeRO-1 (lesson 1) this rank's slice. `state[i]` holds `ranges[i].count` values.
    public let ranges: [Range<Int>]
    public var hyper: Hyperparameters
    public private(set) var state: [State]

    /// - Parameter ranges: the part of each parameter to update (nil: all of each).
    public init(parameters: [Tensor], hyper: Hyperparameters, ranges: [Range<Int>]? = nil) {
        precondition(ranges == nil || ranges!.count == parameters.count, "one range per parameter")
        self.parameters = parameters
        self.ranges = ranges ?? parameters.map { 0 ..< $0.count }
        self.hyper = hyper
        state = self.ranges.map { State(expAvg: [Float](repeating: 0, count: $0.count),
                                        expAvgSq: [Float](repeating: 0, count: $0.count)) }
    }

    /// Bytes of moments this optimizer holds (8 per value it updates).
    public var stateBytes: Int { 4 * state.reduce(0) { $0 + $1.expAvg.count + $1.expAvgSq.count } }

    /// One update with each parameter's current gradient. Parameters without a gradient
    /// (frozen, or unused this step) are skipped, as torch skips `p.grad is None`.
    /// `lr` overrides the learning rate for this step (schedules).
    public func step(lr: Double? = nil) {
        let lr = lr ?? hyper.lr
        let (b1, b2) = (hyper.beta1, hyper.beta2)
        for (i, p) in parameters.enumerated() {
            guard p.requiresGrad, let grad = p.grad else { continue }
            state[i].step += 1
            let t = Double(state[i].step)
            let stepSize = Float(lr / (1 - pow(b1, t)))
            let bc2Sqrt = Float((1 - pow(b2, t)).squareRoot())
            let decay = Float(1 - lr * hyper.weightDecay)
            let (w1, w2, eps) = (Float(1 - b1), Float(b2), Float(hyper.eps))
            let w3 = Float(1 - b2)
            let (lo, n) = (ranges[i].lowerBound, ranges[i].count)
            // Move the moments out of the state array while we write them (no copy, and no
            // overlapping access to `state`), then put them back.
            var m = state[i].expAvg, v = state[i].expAvgSq
            state[i].expAvg = []
            state[i].expAvgSq = []
            grad.withUnsafeBufferPointer { whole in m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in p.data.withUnsafeMutableBufferPointer { weights in
                    // This optimizer's part of the gradient and the weights: values lo ..< lo + n.
                    let (g, w) = (UnsafeBufferPointer(rebasing: whole[lo...]), UnsafeMutableBufferPointer(rebasing: weights[lo...]))
                    parallelRanges(n) { range in for j in range {
                        w[j] *= decay
                        m[j] += w1 * (g[j] - m[j])
                        v[j] = w2 * v[j] + w3 * g[j] * g[j]
                        w[j] -= stepSize * m[j] / (v[j].squareRoot() / bc2Sqrt + eps)
                    } }
                } }
            } }
            state[i].expAvg = m
            state[i].expAvgSq = v
        }
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// Replaces the state (resuming from a checkpoint); counts must match the parameters. A whole
    /// parameter's state given to an optimizer of a part of it (ZeRO-1) keeps that part.
    public func restore(_ newState: [State]) throws {
        guard newState.count == parameters.count else {
            throw TrainingError.checkpoint("optimizer state has \(newState.count) tensors, the model \(parameters.count)")
        }
        var kept = newState
        for (i, (s, p)) in zip(newState, parameters).enumerated() {
            let fits = [p.count, ranges[i].count].contains(s.expAvg.count) && s.expAvgSq.count == s.expAvg.count
            guard fits else {
                throw TrainingError.checkpoint("optimizer state for \(p.name) has \(s.expAvg.count) values, "
                                               + "the parameter \(p.count): the checkpoint is from a different model")
            }
            if s.expAvg.count != ranges[i].count {
                kept[i] = State(step: s.step, expAvg: Array(s.expAvg[ranges[i]]), expAvgSq: Array(s.expAvgSq[ranges[i]]))
            }
        }
        state = kept
    }
}

import Foundation

/// Errors a user can cause in training: the message says what and how to fix it.
public enum TrainingError: Error, CustomStringConvertible, LocalizedError {
    case config(String)
    case data(String)
    case checkpoint(String)
    /// The loss or the gradient norm stopped being finite.
    case diverged(String)
    /// The run would need more memory than the machine has (see `MemoryEstimate`).
    case memory(String)

    public var description: String {
        switch self {
        case .config(let m): return "config: \(m)"
        case .data(let m): return "data: \(m)"
        case .checkpoint(let m): return "checkpoint: \(m)"
        case .diverged(let m): return "diverged: \(m)"
        case .memory(let m): return "memory: \(m)"
        }
    }
    public var errorDescription: String? { description }

    /// The message without its kind.
    public var message: String {
        switch self {
        case .config(let m), .data(let m), .checkpoint(let m), .diverged(let m), .memory(let m): return m
        }
    }
}
