// matmul on BLAS against the naive loop kept beside it (Tensor.naiveMatmul), every transpose
// combination, leading dimensions, linear; backward by central differences.
// Legend: op(A) is [M, K] (stored [K, M] when transposed), op(B) is [K, N] (stored [N, K]).

import TensorCore
import XCTest

final class MatmulTests: XCTestCase {
    let (m, k, n) = (3, 5, 4)

    /// sgemm sums K = 5 float products in its own order, the naive loop in double: a few ulp
    /// apart (ulp(1) = 1.2e-7), so ~16 ulp allowed.
    let blasVsNaive = Tolerance(relative: 2e-6, absolute: 2e-7)

    func operands(_ transposeA: Bool, _ transposeB: Bool, seed: UInt64) -> (Tensor, Tensor) {
        (randomTensor(transposeA ? [k, m] : [m, k], "a", seed: seed),
         randomTensor(transposeB ? [n, k] : [k, n], "b", seed: seed + 1))
    }

    func testForwardAllTransposesAgainstNaive() {
        for tA in [false, true] { for tB in [false, true] {
            let (a, b) = operands(tA, tB, seed: 1)
            let c = Tensor.matmul(a, b, transposeA: tA, transposeB: tB)
            XCTAssertEqual(c.shape, [m, n], "transposeA \(tA) transposeB \(tB)")
            let ref = Tensor.naiveMatmul(a.data, b.data, m: m, n: n, k: k, transposeA: tA, transposeB: tB)
            assertClose("matmul tA \(tA) tB \(tB)", c.data, ref, shape: [m, n], tolerance: blasVsNaive)
        } }
    }

    func testNaiveMatmulAgainstHandComputedProduct() {
        // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]]; the reference itself is checked.
        XCTAssertEqual(Tensor.naiveMatmul([1, 2, 3, 4], [5, 6, 7, 8], m: 2, n: 2, k: 2,
                                          transposeA: false, transposeB: false), [19, 22, 43, 50])
        XCTAssertEqual(Tensor.naiveMatmul([1, 3, 2, 4], [5, 7, 6, 8], m: 2, n: 2, k: 2,
                                          transposeA: true, transposeB: true), [19, 22, 43, 50])
    }

    func testBackwardAllTransposes() {
        for tA in [false, true] { for tB in [false, true] {
            let (a, b) = operands(tA, tB, seed: 3)
            assertGradCheck("matmul transposeA \(tA) transposeB \(tB)", [a, b]) {
                Tensor.matmul($0[0], $0[1], transposeA: tA, transposeB: tB)
            }
        } }
    }

    func testBackwardWhenOnlyOneOperandRequiresGrad() {
        for tA in [false, true] { for tB in [false, true] {
            let (a, b) = operands(tA, tB, seed: 5)
            b.requiresGrad = false
            assertGradCheck("matmul only a, tA \(tA) tB \(tB)", [a, b]) {
                Tensor.matmul($0[0], $0[1], transposeA: tA, transposeB: tB)
            }
            XCTAssertNil(b.grad)
            a.requiresGrad = false
            b.requiresGrad = true
            assertGradCheck("matmul only b, tA \(tA) tB \(tB)", [a, b]) {
                Tensor.matmul($0[0], $0[1], transposeA: tA, transposeB: tB)
            }
            XCTAssertNil(a.grad)
        } }
    }

    func testLeadingDimensions() {
        // a [B, T, K] is treated as [B·T, K]; the result keeps the leading dims: [B, T, N].
        let a = randomTensor([2, 3, k], "a", seed: 7)
        for tB in [false, true] {
            let b = randomTensor(tB ? [n, k] : [k, n], "b", seed: 8)
            let c = Tensor.matmul(a, b, transposeB: tB)
            XCTAssertEqual(c.shape, [2, 3, n])
            let ref = Tensor.naiveMatmul(a.data, b.data, m: 6, n: n, k: k, transposeA: false, transposeB: tB)
            assertClose("matmul [2, 3, K] tB \(tB)", c.data, ref, shape: c.shape, tolerance: blasVsNaive)
            assertGradCheck("matmul [2, 3, K] tB \(tB)", [a, b]) { Tensor.matmul($0[0], $0[1], transposeB: tB) }
        }
    }

    func testLinearIsXTimesWeightTransposed() {
        // nn.Linear without bias: x [B, T, in] · Wᵀ, W [out, in].
        let x = randomTensor([2, 3, k], "x", seed: 9), w = randomTensor([n, k], "weight", seed: 10)
        let y = Tensor.linear(x, w)
        XCTAssertEqual(y.shape, [2, 3, n])
        var ref = [Double](repeating: 0, count: 6 * n)
        for r in 0..<6 { for o in 0..<n { for i in 0..<k {
            ref[r * n + o] += Double(x.data[r * k + i]) * Double(w.data[o * k + i])
        } } }
        assertClose("linear", y.data, ref, shape: y.shape, tolerance: blasVsNaive)
        assertGradCheck("linear", [x, w]) { Tensor.linear($0[0], $0[1]) }
    }

    func testLargeOperandsAreCheckedOnASubset() {
        // 24 × 32 = 768 values per operand: the checker samples 400 of each (spread over the whole
        // matrix), so big layers stay cheap to check. Outputs here sum 32 products, so rounding
        // noise is larger; the product is linear in each operand, so central differences have
        // no truncation error at any ε, and ε = 0.1 divides that noise by 10.
        let a = randomTensor([24, 32], "a", seed: 12), b = randomTensor([32, 24], "b", seed: 13)
        let r = GradCheck.check("matmul 24×32 · 32×24", [a, b], eps: 0.1) { Tensor.matmul($0[0], $0[1]) }
        XCTAssertEqual(r.checked, [400, 400])
        assertGradients(r, [a, b])
    }

    func testSameTensorOnBothSides() {
        // x · xᵀ (a Gram matrix): both operand gradients accumulate into x.
        let x = randomTensor([3, 4], "x", seed: 11)
        assertGradCheck("x · xᵀ", [x]) { Tensor.matmul($0[0], $0[0], transposeB: true) }
        assertGradCheck("xᵀ · x", [x]) { Tensor.matmul($0[0], $0[0], transposeA: true) }
    }

    func testEmptyInnerDimensionGivesZeros() {
        // K = 0: the product is all zeros (BLAS.sgemm special-cases k = 0 for this). Stored
        // transposed, a [K, M] = [0, 2] works.
        let b = Tensor(zeros: [0, 3])
        XCTAssertEqual(Tensor.matmul(Tensor(zeros: [0, 2]), b, transposeA: true).data, [Float](repeating: 0, count: 6))
        // Not transposed, a [M, K] = [2, 0] must count M = 2 rows. rowsAndColumns once returned
        // 0 rows when the last dimension was 0, and matmul then built a [2, 3] result from 0 values
        // and trapped in Tensor.init; checked first so a regression fails here instead of trapping.
        let a = Tensor(zeros: [2, 0])
        XCTAssertEqual(a.rowsAndColumns.rows, 2, "rows of a [2, 0] tensor (Tensor.swift, rowsAndColumns)")
        XCTAssertEqual(Tensor(zeros: [2, 3, 0]).rowsAndColumns.rows, 6)
        guard a.rowsAndColumns.rows == 2 else { return }
        XCTAssertEqual(Tensor.matmul(a, b).data, [Float](repeating: 0, count: 6))
    }
}
