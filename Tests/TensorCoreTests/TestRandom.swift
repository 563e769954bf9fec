// Deterministic test inputs: every test builds its tensors from fixed seeds.

import Foundation
import TensorCore

/// SplitMix64: test inputs from a generator independent of the `CounterRNG` under test.
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / 9_007_199_254_740_992 }
    mutating func uniform(_ r: ClosedRange<Float>) -> Float {
        r.lowerBound + Float(unit()) * (r.upperBound - r.lowerBound)
    }
    mutating func normal() -> Float {
        Float((-2 * log(1 - unit())).squareRoot() * cos(2 * Double.pi * unit()))
    }
}

/// A tensor of uniform values in `range`, requiring grad by default.
func randomTensor(_ shape: [Int], _ name: String, seed: UInt64, range: ClosedRange<Float> = -1...1,
                  requiresGrad: Bool = true) -> Tensor {
    var rng = TestRandom(seed: seed)
    let data = (0..<shape.reduce(1, *)).map { _ in rng.uniform(range) }
    return Tensor(shape: shape, data: data, requiresGrad: requiresGrad, name: name)
}
