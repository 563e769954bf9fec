// A counter-based random generator: the value at (seed, stream, index) is a pure function of
// those three numbers. Initialising a shard of a weight is therefore exactly the slice of the
// full initialisation, on any rank and in any order (the property Megatron gets by seeding
// model-parallel RNG state carefully; here it holds by construction).

import Foundation

public struct CounterRNG: Sendable {
    public let seed: UInt64
    public let stream: UInt64

    /// A generator for one named stream (e.g. a parameter's name) under a seed.
    public init(seed: UInt64, stream name: String) {
        self.init(seed: seed, stream: CounterRNG.fnv1a(name))
    }

    public init(seed: UInt64, stream: UInt64) {
        self.seed = seed
        self.stream = stream
    }

    /// 64 random bits for `index`: SplitMix64's finalizer over seed, stream and counter.
    @inlinable
    public func bits(_ index: UInt64) -> UInt64 {
        var z = seed &+ (stream &* 0x9E37_79B9_7F4A_7C15) &+ (index &* 0xD1B5_4A32_D192_ED03)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        // A second round decorrelates neighbouring counters further.
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [0, 1) for `index` (24 random bits, exact in float32).
    @inlinable
    public func uniform(_ index: Int) -> Float {
        Float(bits(UInt64(index)) >> 40) * (1 / 16_777_216)
    }

    /// A standard normal value for `index` (Box–Muller on two 32-bit halves of one draw).
    @inlinable
    public func normal(_ index: Int) -> Float {
        let b = bits(UInt64(index))
        let u1 = (Double(b >> 32) + 1) / 4_294_967_297   // (0, 1): log never sees 0
        let u2 = Double(b & 0xFFFF_FFFF) / 4_294_967_296
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    /// Normal values with standard deviation `std` for a `rows × cols` matrix's block
    /// `rowRange × colRange`, indexed as in the full matrix: a shard equals the slice.
    public func normalBlock(std: Float, cols: Int, rowRange: Range<Int>, colRange: Range<Int>) -> [Float] {
        var out = [Float]()
        out.reserveCapacity(rowRange.count * colRange.count)
        for r in rowRange { for c in colRange { out.append(std * normal(r * cols + c)) } }
        return out
    }

    /// FNV-1a: a hash of a name that is the same in every process (Swift's `hashValue` is not).
    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in s.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return h
    }
}
