// Tensor.custom (a differentiable function with a hand-written backward), and the gradient
// checker's own tests: a checker that cannot fail is worthless, so a deliberately wrong backward
// must be reported, with the argument, the element and both values.

import TensorCore
import XCTest

final class CustomOpTests: XCTestCase {
    /// y = 3x with backward 3g.
    static func triple(_ x: Tensor) -> Tensor {
        Tensor.custom(inputs: [x], shape: x.shape, data: x.data.map { 3 * $0 }) { g in [g.map { 3 * $0 }] }
    }

    func testCustomTripleForwardAndBackward() {
        let x = randomTensor([2, 3], "x", seed: 11)
        let y = Self.triple(x)
        XCTAssertEqual(y.shape, [2, 3])
        XCTAssertEqual(y.data, x.data.map { 3 * $0 })
        XCTAssertTrue(y.requiresGrad)
        assertGradCheck("custom 3x", [x]) { Self.triple($0[0]) }
    }

    func testCustomComposesWithOtherOps() {
        // silu(3x) ⊙ b: custom in the middle of a graph, gradients flow through it both ways.
        let x = randomTensor([4, 3], "x", seed: 12), b = randomTensor([4, 3], "b", seed: 13)
        assertGradCheck("silu(custom 3x) * b", [x, b]) { Self.triple($0[0]).silu() * $0[1] }
    }

    func testCustomReturningNilLeavesThatInputWithoutGradient() {
        // y = 2a; b is an input the function declares but does not differentiate (nil).
        let a = randomTensor([3], "a", seed: 14), b = randomTensor([3], "b", seed: 15)
        func f(_ t: [Tensor]) -> Tensor {
            Tensor.custom(inputs: [t[0], t[1]], shape: [3], data: t[0].data.map { 2 * $0 }) { g in
                [g.map { 2 * $0 }, nil]
            }
        }
        f([a, b]).backward(gradient: [1, -2, 0.5])
        XCTAssertEqual(a.grad, [2, -4, 1])
        XCTAssertNil(b.grad, "custom backward returned nil for b, so b gets no gradient")
        // b does not change y, so its numeric gradient is 0 too: the checker must agree.
        assertGradients(GradCheck.check("custom nil", [a, b], f), [a, b], zeroGradient: [1])
    }

    func testCustomWithoutGradRecordsNothing() {
        let x = randomTensor([2], "x", seed: 16)
        let y = Autograd.withoutGrad { Self.triple(x) }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
    }
}

final class GradCheckerTests: XCTestCase {
    func testCheckerReportsAWrongBackward() {
        // y = x², with the factor 2 forgotten in backward: analytic w·x, numeric 2·w·x.
        let x = randomTensor([2, 3], "x", seed: 21, range: 0.5...1.5)
        let r = GradCheck.check("square", [x]) { t in
            Tensor.custom(inputs: [t[0]], shape: t[0].shape, data: t[0].data.map { $0 * $0 }) { g in
                [zip(g, t[0].data).map { $0 * $1 }]
            }
        }
        XCTAssertFalse(r.passed)
        XCTAssertEqual(r.mismatches.count, 6, "every element is wrong by a factor 2")
        XCTAssertEqual(r.checked, [6])
        let w = GradCheck.projection(count: 6, seed: 1)
        for m in r.mismatches {
            XCTAssertEqual(m.op, "square")
            XCTAssertEqual(m.argument, 0)
            XCTAssertEqual(m.name, "x")
            let wx = Double(w[m.element] * x.data[m.element])
            XCTAssertEqual(m.analytic, wx, accuracy: 1e-6)
            XCTAssertEqual(m.numeric, 2 * wx, accuracy: 1e-3)
        }
    }

    func testCheckerNamesArgumentAndMultiDimensionalIndex() {
        // y = a + 3x, correct except that backward drops the gradient of x's element 13.
        let a = randomTensor([2, 3, 4], "a", seed: 22), x = randomTensor([2, 3, 4], "x", seed: 23)
        let r = GradCheck.check("a + 3x", [a, x]) { t in
            let y = zip(t[0].data, t[1].data).map { $0 + 3 * $1 }
            return Tensor.custom(inputs: [t[0], t[1]], shape: [2, 3, 4], data: y) { g in
                var gx = g.map { 3 * $0 }
                gx[13] = 0
                return [g, gx]
            }
        }
        XCTAssertEqual(r.checked, [24, 24])
        XCTAssertEqual(r.mismatches.count, 1)
        guard let m = r.mismatches.first else { return }
        XCTAssertEqual(m.argument, 1)
        XCTAssertEqual(m.element, 13)
        XCTAssertEqual(m.index, [1, 0, 1])
        XCTAssertEqual(m.analytic, 0)
        XCTAssertTrue(m.description.contains("a + 3x: ∂L/∂(argument 1 'x' [2, 3, 4]) at element 13 = [1, 0, 1]"),
                      m.description)
    }

    func testCheckerCatchesWrongDoubleReference() {
        // The same op against a reference forward that is off by a factor: the double path fails too.
        let x = randomTensor([5], "x", seed: 24)
        let r = GradCheck.checkAgainstReference("3x", [x], reference: { $0[0].map { 3.01 * $0 } }) {
            CustomOpTests.triple($0[0])
        }
        XCTAssertEqual(r.mismatches.count, 5)
        let ok = GradCheck.checkAgainstReference("3x", [x], reference: { $0[0].map { 3 * $0 } }) {
            CustomOpTests.triple($0[0])
        }
        XCTAssertTrue(ok.passed, "\(ok.mismatches)")
    }

    func testCheckerReportsAnOutputWithoutGraph() {
        let x = randomTensor([3], "x", seed: 25, requiresGrad: false)
        let r = GradCheck.check("constant", [x]) { 2 * $0[0] }
        XCTAssertEqual(r.errors, ["output does not require grad"])
    }

    func testCheckerRestoresInputs() {
        let x = randomTensor([4, 4], "x", seed: 26)
        let before = x.data
        _ = GradCheck.check("silu", [x]) { $0[0].silu() }
        XCTAssertEqual(x.data, before, "central differences must put every perturbed value back")
    }

    func testLargeInputsAreCheckedOnARandomSubset() {
        let idx = GradCheck.sampleIndices(1000, 50, seed: 3)
        XCTAssertEqual(idx.count, 50)
        XCTAssertEqual(Set(idx).count, 50)
        XCTAssertEqual(idx, idx.sorted())
        XCTAssertTrue(idx.allSatisfy { (0..<1000).contains($0) })
        XCTAssertGreaterThan(idx.last!, 500, "the subset spreads over the tensor, not only its start")
        XCTAssertEqual(GradCheck.sampleIndices(7, 50, seed: 3), Array(0..<7))
    }

    func testUnravelAndTolerance() {
        XCTAssertEqual(unravel(0, [2, 3, 4]), [0, 0, 0])
        XCTAssertEqual(unravel(23, [2, 3, 4]), [1, 2, 3])
        XCTAssertEqual(unravel(5, [6]), [5])
        let t = Tolerance(relative: 1e-2, absolute: 1e-3)
        XCTAssertTrue(t.accepts(1.0, 1.0105))     // |Δ| 0.0105 ≤ 0.001 + 0.0101
        XCTAssertFalse(t.accepts(1.0, 1.0125))
        XCTAssertTrue(t.accepts(0, 0.0009))
        XCTAssertFalse(t.accepts(0, 0.0011))
    }
}
