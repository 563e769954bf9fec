// Softmax cross-entropy: forward against log-sum-exp computed in double, backward by float32
// central differences and against central differences of the double forward; ignored rows,
// mean and sum reductions, leading dimensions.
// Legend: N = rows (tokens), V = vocabulary.

import Foundation
import TensorCore
import XCTest

final class CrossEntropyTests: XCTestCase {
    /// Σ over kept rows of (log Σⱼ exp(xⱼ) − x[target]), divided by the kept count for `.mean`.
    static func reference(_ logits: [Double], targets: [Int], vocab v: Int, ignoreIndex: Int = -100,
                          mean: Bool) -> Double {
        var total = 0.0, kept = 0
        for (r, t) in targets.enumerated() where t != ignoreIndex {
            let row = logits[r * v ..< (r + 1) * v]
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            total += lse - logits[r * v + t]
            kept += 1
        }
        return mean ? total / Double(kept) : total
    }

    let targets = [3, -100, 0, 6, -100, 2]   // rows 1 and 4 ignored

    func testForwardMeanAndSumAgainstDouble() {
        let logits = randomTensor([2, 3, 7], "logits", seed: 1, range: -3...3)   // [B, T, V]: N = 6
        for mean in [true, false] {
            let loss = Tensor.crossEntropy(logits, targets: targets, reduction: mean ? .mean : .sum)
            XCTAssertEqual(loss.shape, [])
            let ref = Self.reference(logits.data.map(Double.init), targets: targets, vocab: 7, mean: mean)
            assertClose("crossEntropy \(mean ? "mean" : "sum")", loss.data, [ref], shape: [])
        }
    }

    func testBackwardMeanAndSum() {
        let logits = randomTensor([2, 3, 7], "logits", seed: 2, range: -3...3)
        for (name, reduction) in [("mean", Tensor.Reduction.mean), ("sum", .sum)] {
            let f: ([Tensor]) -> Tensor = { Tensor.crossEntropy($0[0], targets: self.targets, reduction: reduction) }
            assertGradCheck("crossEntropy \(name)", [logits], f)
            assertGradients(GradCheck.checkAgainstReference("crossEntropy \(name)", [logits], reference: {
                [Self.reference($0[0], targets: self.targets, vocab: 7, mean: reduction == .mean)]
            }, f), [logits])
        }
    }

    func testIgnoredRowsGetExactlyZeroGradient() {
        let logits = randomTensor([6, 7], "logits", seed: 3, range: -3...3)
        Tensor.crossEntropy(logits, targets: targets).backward()
        let g = logits.grad!
        for r in [1, 4] { XCTAssertEqual(Array(g[r * 7 ..< r * 7 + 7]), [Float](repeating: 0, count: 7), "row \(r)") }
        // Each kept row's gradient is (softmax − onehot) / kept: it sums to zero.
        for r in [0, 2, 3, 5] { XCTAssertEqual(g[r * 7 ..< r * 7 + 7].reduce(0, +), 0, accuracy: 1e-6) }
        XCTAssertEqual(g[0 * 7 + 3], (Float(exp(Double(logits.data[3]) - Self.lse(logits, row: 0))) - 1) / 4,
                       accuracy: 1e-6, "d/dx[target] = (p − 1) / kept rows")
    }

    static func lse(_ logits: Tensor, row r: Int) -> Double {
        log(logits.data[r * 7 ..< r * 7 + 7].reduce(0.0) { $0 + exp(Double($1)) })
    }

    func testSumIsMeanTimesKeptRows() {
        let logits = randomTensor([6, 7], "logits", seed: 4)
        let mean = Tensor.crossEntropy(logits, targets: targets).item
        let sum = Tensor.crossEntropy(logits, targets: targets, reduction: .sum).item
        XCTAssertEqual(sum, 4 * mean, accuracy: 1e-5)
    }

    func testCustomIgnoreIndex() {
        let logits = randomTensor([4, 5], "logits", seed: 5)
        let targets = [-1, 4, 0, -1]
        let loss = Tensor.crossEntropy(logits, targets: targets, ignoreIndex: -1)
        let ref = Self.reference(logits.data.map(Double.init), targets: targets, vocab: 5, ignoreIndex: -1, mean: true)
        assertClose("crossEntropy ignoreIndex -1", loss.data, [ref], shape: [])
        assertGradCheck("crossEntropy ignoreIndex -1", [logits]) {
            Tensor.crossEntropy($0[0], targets: targets, ignoreIndex: -1)
        }
    }

    func testLargeLogitsStayFinite() {
        // Logits around 1000: exp would overflow without subtracting the row maximum.
        let logits = randomTensor([3, 5], "logits", seed: 6, range: 995...1005)
        let targets = [0, 4, 2]
        let loss = Tensor.crossEntropy(logits, targets: targets)
        // lse = max + log Σ is rounded to float32 near 1000, where an ulp is 6.1e-5: each row's
        // loss is off by up to half of that, however exact the rest.
        assertClose("crossEntropy logits ~1000", loss.data,
                    [Self.reference(logits.data.map(Double.init), targets: targets, vocab: 5, mean: true)],
                    shape: [], tolerance: Tolerance(relative: 0, absolute: 1e-4))
        loss.backward()
        XCTAssertTrue(logits.grad!.allSatisfy(\.isFinite))
    }

    func testAllRowsIgnored() {
        // Documented: NaN with .mean (0 / 0, as PyTorch), 0 with .sum, and no gradient anywhere.
        let logits = randomTensor([2, 3], "logits", seed: 7)
        XCTAssertTrue(Tensor.crossEntropy(logits, targets: [-100, -100]).item.isNaN)
        let sum = Tensor.crossEntropy(logits, targets: [-100, -100], reduction: .sum)
        XCTAssertEqual(sum.item, 0)
        sum.backward()
        XCTAssertTrue((logits.grad ?? []).allSatisfy { $0 == 0 }, "\(logits.grad ?? [])")
    }
}
