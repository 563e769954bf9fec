// Element-wise ops and reductions: forward against plain formulas, backward by central differences.
// Also fastExp, which silu, swiglu, cross-entropy and attention all rest on.

import Foundation
import TensorCore
import XCTest

final class ElementwiseTests: XCTestCase {
    let shape = [3, 4]

    func testAdd() {
        let a = randomTensor(shape, "a", seed: 1), b = randomTensor(shape, "b", seed: 2)
        XCTAssertEqual((a + b).data, zip(a.data, b.data).map { $0 + $1 })
        assertGradCheck("add", [a, b]) { $0[0] + $0[1] }
        assertGradCheck("add a + a", [a]) { $0[0] + $0[0] }   // one tensor, both operands
    }

    func testMul() {
        let a = randomTensor(shape, "a", seed: 3), b = randomTensor(shape, "b", seed: 4)
        XCTAssertEqual((a * b).data, zip(a.data, b.data).map { $0 * $1 })
        assertGradCheck("mul", [a, b]) { $0[0] * $0[1] }
    }

    func testMulWithAConstantOperand() {
        let a = randomTensor(shape, "a", seed: 5), c = randomTensor(shape, "c", seed: 6, requiresGrad: false)
        assertGradCheck("mul by constant", [a, c]) { $0[0] * $0[1] }
        XCTAssertNil(c.grad, "a tensor that does not require grad never gets one")
    }

    func testScalarMul() {
        let a = randomTensor(shape, "a", seed: 7)
        XCTAssertEqual((-2.5 * a).data, a.data.map { -2.5 * $0 })
        assertGradCheck("scalar mul", [a]) { -2.5 * $0[0] }
    }

    func testSum() {
        let a = randomTensor([3, 4, 5], "a", seed: 8)
        let s = a.sum()
        XCTAssertEqual(s.shape, [])
        assertClose("sum", s.data, [a.data.reduce(0.0) { $0 + Double($1) }], shape: [])
        assertGradCheck("sum", [a]) { $0[0].sum() }
    }

    func testMean() {
        let a = randomTensor([3, 4, 5], "a", seed: 9)
        assertClose("mean", a.mean().data, [a.data.reduce(0.0) { $0 + Double($1) } / 60], shape: [])
        assertGradCheck("mean", [a]) { $0[0].mean() }
        a.zeroGrad()
        a.mean().backward()
        XCTAssertEqual(a.grad?.count, 60)
        XCTAssertTrue(a.grad!.allSatisfy { abs($0 - 1.0 / 60) < 1e-8 }, "d mean / dx = 1/n")
    }

    /// x·σ(x) in double.
    static func silu(_ x: Double) -> Double { x / (1 + exp(-x)) }

    func testSilu() {
        let x = randomTensor([4, 5], "x", seed: 10, range: -6...6)
        // fastExp is ~2 ulp, then one division and one multiply: a few 1e-7 relative.
        assertClose("silu", x.silu().data, x.data.map { Self.silu(Double($0)) }, shape: x.shape,
                    tolerance: Tolerance(relative: 1e-6, absolute: 1e-7))
        assertGradCheck("silu", [x]) { $0[0].silu() }
    }

    func testSiluGradientAgainstDoubleReference() {
        let x = randomTensor([4, 5], "x", seed: 11, range: -6...6)
        assertGradients(GradCheck.checkAgainstReference("silu", [x], reference: { $0[0].map(Self.silu) }) {
            $0[0].silu()
        }, [x])
    }

    func testSwiglu() {
        let gate = randomTensor([2, 3, 4], "gate", seed: 12, range: -4...4)
        let up = randomTensor([2, 3, 4], "up", seed: 13, range: -2...2)
        let y = Tensor.swiglu(gate: gate, up: up)
        XCTAssertEqual(y.shape, [2, 3, 4])
        let expected = zip(gate.data, up.data).map { Self.silu(Double($0)) * Double($1) }
        assertClose("swiglu", y.data, expected, shape: y.shape, tolerance: Tolerance(relative: 1e-6, absolute: 1e-7))
        assertGradCheck("swiglu", [gate, up]) { Tensor.swiglu(gate: $0[0], up: $0[1]) }
        assertGradients(GradCheck.checkAgainstReference("swiglu", [gate, up], reference: { x in
            zip(x[0], x[1]).map { Self.silu($0) * $1 }
        }) { Tensor.swiglu(gate: $0[0], up: $0[1]) }, [gate, up])
    }

    func testSwigluEqualsSiluTimesUp() {
        // The fused op and its unfused composition agree in value and gradient.
        let gate = randomTensor([5, 3], "gate", seed: 14, range: -3...3), up = randomTensor([5, 3], "up", seed: 15)
        let fused = Tensor.swiglu(gate: gate, up: up)
        fused.backward(gradient: GradCheck.projection(count: 15, seed: 4))
        let (gg, gu) = (gate.grad!, up.grad!)
        gate.zeroGrad()
        up.zeroGrad()
        let plain = gate.silu() * up
        plain.backward(gradient: GradCheck.projection(count: 15, seed: 4))
        assertClose("swiglu vs silu·up", fused.data, plain.data, shape: [5, 3])
        assertClose("d gate", gg, gate.grad!, shape: [5, 3])
        assertClose("d up", gu, up.grad!, shape: [5, 3])
    }

    /// fastExp's largest relative error against Foundation.exp (double) on [-80, 80], in units of
    /// ulp = 2^-23 ≈ 1.19e-7. Cephes claims about 2 ulp; measured here 7.8e-8 = 0.65 ulp (a correctly
    /// rounded float32 is ≤ 0.5). The code is plain IEEE float arithmetic, the same on every
    /// machine, so we hold it to 1 ulp: a polynomial coefficient off by 0.4 % already exceeds that.
    func testFastExpAgainstFoundationExp() {
        let bound = Double(Float.ulpOfOne)
        var worst = (error: 0.0, x: Float(0))
        var x: Float = -80
        var rng = TestRandom(seed: 99)
        // A grid with step 1e-3 (160 001 points), then 200 000 uniform points in between.
        for i in 0..<360_001 {
            x = i <= 160_000 ? -80 + Float(i) * 1e-3 : rng.uniform(-80...80)
            let exact = Foundation.exp(Double(x))
            let error = abs(Double(fastExp(x)) - exact) / exact
            if error > worst.error { worst = (error, x) }
        }
        XCTAssertLessThan(worst.error, bound, "fastExp(\(worst.x)) off by \(worst.error) relative "
                          + "(\(worst.error / Double(Float.ulpOfOne)) ulp)")
        XCTAssertEqual(fastExp(0), 1)
    }

    /// The loops call fastExp on 16 different values at once; each lane must get exactly what the
    /// value gets alone (no lane reads another's), clamps and NaN included.
    func testFastExpLanesAreIndependent() {
        var rng = TestRandom(seed: 7)
        var xs: [Float] = [0, -0.0, 1, -1, 88, 88.5, -87.33, -87.5, 200, -200, .infinity, -.infinity, .nan,
                           .leastNormalMagnitude, -.leastNormalMagnitude]
        xs += (0..<100_000).map { _ in rng.uniform(-90...90) }
        xs += [Float](repeating: 0, count: (16 - xs.count % 16) % 16)
        var mismatches: [String] = []
        for start in stride(from: 0, to: xs.count, by: 16) {
            let lanes = SIMD16<Float>(xs[start..<start + 16])
            let vector = fastExp(lanes)
            for i in 0..<16 {
                let (x, scalar) = (xs[start + i], fastExp(xs[start + i]))
                let same = x.isNaN ? vector[i].isNaN && scalar.isNaN : vector[i].bitPattern == scalar.bitPattern
                if !same && mismatches.count < 5 { mismatches.append("x = \(x): lanes \(vector[i]), scalar \(scalar)") }
            }
        }
        XCTAssertEqual(mismatches, [], "a lane of fastExp on SIMD16 differs from the same value alone")
    }

    /// The softmax helpers (16 lanes, then a scalar tail) against their one-line definitions, for
    /// lengths around the lane width.
    func testExpHelpersAgainstTheirDefinitions() {
        var rng = TestRandom(seed: 8)
        for n in [0, 1, 15, 16, 17, 31, 33, 100] {
            let x = (0..<n).map { _ in rng.uniform(-6...6) }
            let dst0 = (0..<n).map { _ in rng.uniform(-1...1) }
            let (shift, scale): (Float, Float) = (0.75, -1.5)
            let exps = x.map { fastExp($0 - shift) }
            var p = x, dst = dst0, fresh = [Float](repeating: 9, count: n)
            let sum = p.withUnsafeMutableBufferPointer { expShiftedSum($0.baseAddress!, n, shift: shift) }
            XCTAssertEqual(p, exps, "expShiftedSum's values, n = \(n)")
            // A float32 sum of n terms below e^(6 − 0.75) ≈ 191: each of its n additions rounds by at
            // most half an ulp of a partial sum ≤ 191 n, so n² · 191 · 2^-24 bounds the error.
            let m = Double(max(n, 1))
            XCTAssertEqual(Double(sum), exps.reduce(0.0) { $0 + Double($1) }, accuracy: m * m * 191 * 0x1p-24, "n = \(n)")
            p = x
            p.withUnsafeMutableBufferPointer { expShifted($0.baseAddress!, n, shift: shift) }
            XCTAssertEqual(p, exps, "expShifted, n = \(n)")
            x.withUnsafeBufferPointer { px in
                dst.withUnsafeMutableBufferPointer { scaledExpShifted(px.baseAddress!, n, shift: shift, scale: scale,
                                                                      into: $0.baseAddress!, accumulate: true) }
                fresh.withUnsafeMutableBufferPointer { scaledExpShifted(px.baseAddress!, n, shift: shift, scale: scale,
                                                                        into: $0.baseAddress!, accumulate: false) }
            }
            XCTAssertEqual(dst, zip(dst0, exps).map { $0 + scale * $1 }, "scaledExpShifted accumulating, n = \(n)")
            XCTAssertEqual(fresh, exps.map { scale * $0 }, "scaledExpShifted writing, n = \(n)")
        }
    }

    func testFastExpClampsInsteadOfOverflowing() {
        // Documented: the input is clamped to [-87.33, 88], so results stay finite and positive.
        XCTAssertTrue(fastExp(200).isFinite)
        XCTAssertGreaterThan(fastExp(200), 1e38)
        XCTAssertGreaterThanOrEqual(fastExp(-200), 0)
        XCTAssertLessThan(fastExp(-200), 2e-38)
    }
}
