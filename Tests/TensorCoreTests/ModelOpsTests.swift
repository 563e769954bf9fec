// Embedding, RMSNorm and RoPE: forward against naive double formulas written here, backward by
// float32 central differences AND against central differences of the double forward.
// Legend: B = batch, T = sequence, C = hidden, V = vocabulary, nh = heads, hs = head size.

import Foundation
import TensorCore
import XCTest

final class ModelOpsTests: XCTestCase {
    // MARK: Embedding

    func testEmbeddingForwardAndRepeatedIds() {
        let weight = randomTensor([5, 4], "embed", seed: 1)   // [V, C]
        let ids = [1, 3, 1, 0, 3, 3]                          // ids 1 and 3 repeat, 2 and 4 unused
        let y = Tensor.embedding(ids, shape: [2, 3], weight: weight)
        XCTAssertEqual(y.shape, [2, 3, 4])
        for (r, id) in ids.enumerated() {
            XCTAssertEqual(Array(y.data[r * 4 ..< r * 4 + 4]), Array(weight.data[id * 4 ..< id * 4 + 4]), "row \(r)")
        }
        assertGradCheck("embedding", [weight]) { Tensor.embedding(ids, shape: [2, 3], weight: $0[0]) }
    }

    func testEmbeddingGradientAddsRepeatedRows() {
        let weight = randomTensor([4, 2], "embed", seed: 2)
        Tensor.embedding([2, 0, 2, 2], shape: [4], weight: weight)
            .backward(gradient: [1, 2, 10, 20, 100, 200, 1000, 2000])
        // Row 2 is used three times: 1 + 100 + 1000, 2 + 200 + 2000; rows 1 and 3 get nothing.
        XCTAssertEqual(weight.grad, [10, 20, 0, 0, 1101, 2202, 0, 0])
    }

    // MARK: RMSNorm

    /// y = w ⊙ x / sqrt(mean(x²) + eps) over the last dimension, in double.
    static func rmsNorm(_ x: [Double], _ w: [Double], eps: Double) -> [Double] {
        let c = w.count
        var y = [Double](repeating: 0, count: x.count)
        for r in 0..<(x.count / c) {
            let row = x[r * c ..< (r + 1) * c]
            let inv = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(c) + eps).squareRoot()
            for j in 0..<c { y[r * c + j] = w[j] * x[r * c + j] * inv }
        }
        return y
    }

    func testRMSNorm() {
        let x = randomTensor([2, 3, 8], "x", seed: 3, range: -2...2)          // [B, T, C]
        let w = randomTensor([8], "weight", seed: 4, range: 0.5...1.5)        // [C]
        let eps: Float = 1e-5
        let y = Tensor.rmsNorm(x, weight: w, eps: eps)
        assertClose("rmsNorm", y.data, Self.rmsNorm(x.data.map(Double.init), w.data.map(Double.init), eps: 1e-5),
                    shape: y.shape)
        assertGradCheck("rmsNorm", [x, w]) { Tensor.rmsNorm($0[0], weight: $0[1], eps: eps) }
        assertGradients(GradCheck.checkAgainstReference("rmsNorm", [x, w], reference: {
            Self.rmsNorm($0[0], $0[1], eps: Double(eps))
        }) { Tensor.rmsNorm($0[0], weight: $0[1], eps: eps) }, [x, w])
    }

    func testRMSNormWithLargeEpsAndSmallInputs() {
        // When eps dominates mean(x²), a backward that forgot eps (or the 1/C) would show.
        let x = randomTensor([3, 6], "x", seed: 5, range: -0.05...0.05), w = randomTensor([6], "weight", seed: 6)
        let eps: Float = 1e-2
        assertClose("rmsNorm eps 1e-2", Tensor.rmsNorm(x, weight: w, eps: eps).data,
                    Self.rmsNorm(x.data.map(Double.init), w.data.map(Double.init), eps: 1e-2), shape: x.shape)
        assertGradients(GradCheck.checkAgainstReference("rmsNorm eps 1e-2", [x, w], reference: {
            Self.rmsNorm($0[0], $0[1], eps: Double(eps))
        }) { Tensor.rmsNorm($0[0], weight: $0[1], eps: eps) }, [x, w])
    }

    // MARK: RoPE

    /// Rotate-half RoPE in double with the exact angle position · θ^(−2i/hs), on x [B, T, nh, hs].
    static func rope(_ x: [Double], shape: [Int], positions: [Int], theta: Double) -> [Double] {
        let (t, heads, hs) = (shape[1], shape[2], shape[3])
        let half = hs / 2
        var y = x
        for o in stride(from: 0, to: x.count, by: hs) {
            let p = Double(positions[(o / (heads * hs)) % t])
            for i in 0..<half {
                let angle = p * pow(theta, -Double(2 * i) / Double(hs))
                let (x1, x2) = (x[o + i], x[o + i + half])
                y[o + i] = x1 * cos(angle) - x2 * sin(angle)
                y[o + i + half] = x2 * cos(angle) + x1 * sin(angle)
            }
        }
        return y
    }

    /// The table forms the angle as a float32 product position · inv_freq (as Hugging Face does),
    /// which rounds to about half an ulp of the angle: ≤ 40 · 0.1 · 6e-8 ≈ 2.4e-7 here (inv_freq[0]
    /// = 1 is exact). cos and sin are O(1): allow 1e-6 absolute.
    let ropeVsExactAngle = Tolerance(relative: 2e-6, absolute: 1e-6)

    func testRoPETableMatchesFormula() {
        let positions = [0, 1, 5, 9, 40]
        let table = RoPETable(theta: 10_000, headDim: 8, positions: positions)
        var c = [Double](), s = [Double]()
        for p in positions { for i in 0..<4 {
            let angle = Double(p) * pow(10_000, -Double(2 * i) / 8)
            c.append(cos(angle))
            s.append(sin(angle))
        } }
        assertClose("RoPETable.cos", table.cos, c, shape: [5, 4], tolerance: ropeVsExactAngle)
        assertClose("RoPETable.sin", table.sin, s, shape: [5, 4], tolerance: ropeVsExactAngle)
    }

    func testRoPEContiguousAndNonContiguousPositions() {
        for positions in [[0, 1, 2, 3, 4], [3, 4, 9, 17, 40]] {
            let shape = [2, 5, 3, 8]                                   // [B, T, nh, hs]
            let x = randomTensor(shape, "x", seed: 7)
            let table = RoPETable(theta: 10_000, headDim: 8, positions: positions)
            let y = x.rope(table)
            let ref = Self.rope(x.data.map(Double.init), shape: shape, positions: positions, theta: 10_000)
            assertClose("rope positions \(positions)", y.data, ref, shape: shape, tolerance: ropeVsExactAngle)
            assertGradCheck("rope positions \(positions)", [x]) { $0[0].rope(table) }
            assertGradients(GradCheck.checkAgainstReference("rope positions \(positions)", [x], reference: {
                Self.rope($0[0], shape: shape, positions: positions, theta: 10_000)
            }) { $0[0].rope(table) }, [x])
        }
    }

    func testRoPEIsARotation() {
        // Each (i, i + hs/2) pair keeps its length, and position 0 is the identity.
        let x = randomTensor([1, 2, 2, 6], "x", seed: 8)
        let y = x.rope(RoPETable(theta: 500, headDim: 6, positions: [0, 7]))
        XCTAssertEqual(Array(y.data[0..<12]), Array(x.data[0..<12]), "position 0 leaves x unchanged")
        for o in stride(from: 12, to: 24, by: 6) { for i in 0..<3 {
            let before = hypot(x.data[o + i], x.data[o + i + 3]), after = hypot(y.data[o + i], y.data[o + i + 3])
            XCTAssertEqual(after, before, accuracy: 1e-6)
        } }
    }

    func testRoPEMatchesShiftedTable() {
        // A chunk of positions 2..<4 rotates exactly as rows 2..<4 of the table for 0..<4 (context parallel).
        let full = RoPETable(theta: 10_000, headDim: 4, positions: [0, 1, 2, 3])
        let part = RoPETable(theta: 10_000, headDim: 4, positions: [2, 3])
        XCTAssertEqual(part.cos, Array(full.cos[4...]))
        XCTAssertEqual(part.sin, Array(full.sin[4...]))
    }
}
