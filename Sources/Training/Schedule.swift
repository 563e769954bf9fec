// The learning-rate schedule and gradient clipping: the two small rules every step applies
// between backward and the optimizer.

import Foundation
import TensorCore

/// Linear warmup from 0 to `peak` over `warmupSteps`, then cosine decay to `minimum` at
/// `totalSteps` (nanoGPT's get_lr, with step counted from 1 so the first step is not lr 0).
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public var peak: Double
    public var minimum: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Double, minimum: Double, warmupSteps: Int, totalSteps: Int) {
        (self.peak, self.minimum, self.warmupSteps, self.totalSteps) = (peak, minimum, warmupSteps, totalSteps)
    }

    /// The rate for optimizer step `step` (1-based).
    public func rate(at step: Int) -> Double {
        if step <= warmupSteps { return peak * Double(step) / Double(max(warmupSteps, 1)) }
        if step >= totalSteps { return minimum }
        let progress = Double(step - warmupSteps) / Double(max(totalSteps - warmupSteps, 1))   // (0, 1)
        return minimum + 0.5 * (1 + cos(Double.pi * progress)) * (peak - minimum)
    }
}

public enum GradientClipping {
    /// Σ g² over `parameters` (those with a gradient), in double precision.
    public static func localSquaredNorm(_ parameters: [Tensor]) -> Double {
        var total = 0.0
        for p in parameters {
            guard let g = p.grad else { continue }
            total += g.withUnsafeBufferPointer { Double(vectorDot($0.baseAddress!, $0.baseAddress!, $0.count)) }
        }
        return total
    }

    /// Scales every gradient by maxNorm / norm when the global norm exceeds maxNorm, as
    /// torch.nn.utils.clip_grad_norm_ does (with its 1e-6 guard). Returns the norm before clipping.
    @discardableResult
    public static func clip(_ parameters: [Tensor], maxNorm: Double, globalSquaredNorm: Double) -> Double {
        let norm = globalSquaredNorm.squareRoot()
        let coefficient = maxNorm / (norm + 1e-6)
        guard maxNorm > 0, coefficient < 1 else { return norm }
        let c = Float(coefficient)
        for p in parameters where p.grad != nil {
            p.grad!.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= c } }
        }
        return norm
    }
}
