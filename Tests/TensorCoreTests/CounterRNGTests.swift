// CounterRNG: a pure function of (seed, stream, index). Determinism, shards equal slices of the
// full block (the property tensor parallelism relies on to initialise a shard locally), the
// moments of the normal draws, and independence of streams.

import TensorCore
import XCTest

final class CounterRNGTests: XCTestCase {
    func testDeterministic() {
        let a = CounterRNG(seed: 42, stream: "model.layers.0.mlp.up_proj.weight")
        let b = CounterRNG(seed: 42, stream: "model.layers.0.mlp.up_proj.weight")
        for i in [0, 1, 2, 1000, 123_456_789] {
            XCTAssertEqual(a.bits(UInt64(i)), b.bits(UInt64(i)))
            XCTAssertEqual(a.normal(i), b.normal(i))
            XCTAssertEqual(a.normal(i), a.normal(i), "no hidden state: the same index gives the same value")
        }
        // Order does not matter: reading backwards gives the same values.
        let forward = (0..<100).map { a.normal($0) }
        XCTAssertEqual(Array((0..<100).reversed().map { b.normal($0) }.reversed()), forward)
    }

    func testNamedStreamIsFNV1a() {
        // FNV-1a 64 reference values: the hash must not depend on the process (Swift's hashValue does).
        XCTAssertEqual(CounterRNG.fnv1a(""), 0xCBF2_9CE4_8422_2325)
        XCTAssertEqual(CounterRNG.fnv1a("a"), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(CounterRNG.fnv1a("foobar"), 0x8594_4171_F739_67E8)
        XCTAssertEqual(CounterRNG(seed: 1, stream: "w").stream, CounterRNG.fnv1a("w"))
    }

    func testShardEqualsSliceOfFullBlock() {
        // A [rows, cols] weight split by rows (column-parallel linear) or by columns (row-parallel).
        let rng = CounterRNG(seed: 7, stream: "w")
        let (rows, cols) = (8, 12)
        let full = rng.normalBlock(std: 0.02, cols: cols, rowRange: 0..<rows, colRange: 0..<cols)
        XCTAssertEqual(full.count, rows * cols)
        func slice(_ r: Range<Int>, _ c: Range<Int>) -> [Float] {
            r.flatMap { i in c.map { j in full[i * cols + j] } }
        }
        func block(_ r: Range<Int>, _ c: Range<Int>) -> [Float] {
            rng.normalBlock(std: 0.02, cols: cols, rowRange: r, colRange: c)
        }
        XCTAssertEqual(block(2..<5, 0..<cols), slice(2..<5, 0..<cols), "a row shard")
        XCTAssertEqual(block(0..<rows, 4..<8), slice(0..<rows, 4..<8), "a column shard")
        XCTAssertEqual(block(6..<8, 9..<12), slice(6..<8, 9..<12), "a corner")
        // Four row shards put together are the full block.
        let shards = (0..<4).flatMap { block($0 * 2 ..< $0 * 2 + 2, 0..<cols) }
        XCTAssertEqual(shards, full)
        // std scales the standard normal at the same index.
        XCTAssertEqual(full[5 * cols + 3], 0.02 * rng.normal(5 * cols + 3))
    }

    /// Over n = 100 000 draws the sample mean has standard error 1/√n ≈ 0.0032 and the sample
    /// standard deviation ≈ 1/√(2n) ≈ 0.0022. We allow 5 standard errors: a correct generator
    /// fails with probability < 1e-6, while a bias of 0.02 (or a std off by 1.5 %) is caught.
    func testNormalMomentsOver100kDraws() {
        let n = 100_000
        let rng = CounterRNG(seed: 1234, stream: "moments")
        var sum = 0.0, sumSq = 0.0, sum4 = 0.0, beyond3 = 0
        for i in 0..<n {
            let x = Double(rng.normal(i))
            sum += x
            sumSq += x * x
            sum4 += x * x * x * x
            if abs(x) > 3 { beyond3 += 1 }
        }
        let mean = sum / Double(n), std = (sumSq / Double(n) - mean * mean).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 5 / Double(n).squareRoot(), "mean of \(n) normals")
        XCTAssertEqual(std, 1, accuracy: 5 / (2 * Double(n)).squareRoot(), "std of \(n) normals")
        // Shape, not only the first two moments: E[x⁴] = 3 (its standard error is √(96/n) ≈ 0.031),
        // and P(|x| > 3) = 0.0027, i.e. 270 ± 16 of n.
        XCTAssertEqual(sum4 / Double(n), 3, accuracy: 5 * (96 / Double(n)).squareRoot())
        XCTAssertEqual(Double(beyond3), 270, accuracy: 5 * 270.0.squareRoot())
    }

    func testUniformMoments() {
        // Uniform on [0, 1): mean 1/2 (standard error √(1/12n) ≈ 0.0009), values in range.
        let n = 100_000
        let rng = CounterRNG(seed: 99, stream: "uniform")
        var sum = 0.0
        for i in 0..<n {
            let u = rng.uniform(i)
            XCTAssertTrue(u >= 0 && u < 1)
            sum += Double(u)
        }
        XCTAssertEqual(sum / Double(n), 0.5, accuracy: 5 * (1 / (12 * Double(n))).squareRoot())
    }

    func testDifferentStreamsAndSeedsDiffer() {
        let n = 10_000
        let base = CounterRNG(seed: 5, stream: "model.layers.0.self_attn.q_proj.weight")
        let others = [CounterRNG(seed: 5, stream: "model.layers.0.self_attn.k_proj.weight"),
                      CounterRNG(seed: 6, stream: "model.layers.0.self_attn.q_proj.weight"),
                      CounterRNG(seed: 5, stream: 0), CounterRNG(seed: 5, stream: 1)]
        let x = (0..<n).map { Double(base.normal($0)) }
        for other in others {
            let y = (0..<n).map { Double(other.normal($0)) }
            XCTAssertLessThan(zip(x, y).filter { $0 == $1 }.count, 3, "seed \(other.seed) stream \(other.stream)")
            // Independent standard normals: the correlation has standard error 1/√n = 0.01.
            let corr = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } / Double(n)
            XCTAssertEqual(corr, 0, accuracy: 5 / Double(n).squareRoot(), "seed \(other.seed) stream \(other.stream)")
        }
        // Shifted indices of one stream are not correlated either (neighbouring counters).
        let shifted = (1...n).map { Double(base.normal($0)) }
        let lagCorr = zip(x, shifted).reduce(0) { $0 + $1.0 * $1.1 } / Double(n)
        XCTAssertEqual(lagCorr, 0, accuracy: 5 / Double(n).squareRoot(), "index i against i + 1")
    }
}
