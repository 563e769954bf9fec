// Every backward must ADD into its inputs' gradients (`+=`), never assign: a parameter used by
// several ops, or gradients kept across micro-batches (gradient accumulation), depend on it.
// A backward that assigns passes a single central-difference check on fresh leaves, so this
// runs each op's backward twice without zeroGrad and expects exactly twice the first gradient.

import TensorCore
import XCTest

final class AccumulationTests: XCTestCase {
    typealias Case = (op: String, inputs: [Tensor], f: ([Tensor]) -> Tensor)

    static func cases() -> [Case] {
        func t(_ shape: [Int], _ name: String, _ seed: UInt64) -> Tensor { randomTensor(shape, name, seed: seed) }
        let table = RoPETable(theta: 10_000, headDim: 4, positions: [0, 3])
        return [
            ("add", [t([2, 3], "a", 1), t([2, 3], "b", 2)], { $0[0] + $0[1] }),
            ("mul", [t([2, 3], "a", 3), t([2, 3], "b", 4)], { $0[0] * $0[1] }),
            ("scalar mul", [t([2, 3], "a", 5)], { 1.5 * $0[0] }),
            ("sum", [t([2, 3], "a", 6)], { $0[0].sum() }),
            ("mean", [t([2, 3], "a", 7)], { $0[0].mean() }),
            ("silu", [t([2, 3], "a", 8)], { $0[0].silu() }),
            ("swiglu", [t([2, 3], "g", 9), t([2, 3], "u", 10)], { Tensor.swiglu(gate: $0[0], up: $0[1]) }),
            ("reshaped", [t([2, 3], "a", 11)], { $0[0].reshaped([3, 2]) }),
            ("permuted", [t([2, 3, 4], "a", 12)], { $0[0].permuted([2, 0, 1]) }),
            ("sliced", [t([3, 4], "a", 13)], { $0[0].sliced(dim: 1, start: 1, length: 2) }),
            ("concat", [t([2, 2], "a", 14), t([2, 3], "b", 15)], { Tensor.concat($0, dim: 1) }),
            ("matmul", [t([2, 3], "a", 16), t([3, 4], "b", 17)], { Tensor.matmul($0[0], $0[1]) }),
            ("matmul tA tB", [t([3, 2], "a", 18), t([4, 3], "b", 19)], {
                Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true)
            }),
            ("matmul tA", [t([3, 2], "a", 20), t([3, 4], "b", 21)], { Tensor.matmul($0[0], $0[1], transposeA: true) }),
            ("linear", [t([2, 3], "x", 22), t([4, 3], "w", 23)], { Tensor.linear($0[0], $0[1]) }),
            ("embedding", [t([4, 3], "w", 24)], { Tensor.embedding([1, 3, 1], shape: [3], weight: $0[0]) }),
            ("rmsNorm", [t([2, 4], "x", 25), t([4], "w", 26)], { Tensor.rmsNorm($0[0], weight: $0[1], eps: 1e-5) }),
            ("rope", [t([1, 2, 2, 4], "x", 27)], { $0[0].rope(table) }),
            ("crossEntropy", [t([3, 5], "logits", 28)], { Tensor.crossEntropy($0[0], targets: [1, -100, 4]) }),
            ("attention", [t([1, 3, 2, 4], "q", 29), t([1, 3, 1, 4], "k", 30), t([1, 3, 1, 4], "v", 31)], {
                Tensor.attention(q: $0[0], k: $0[1], v: $0[2], mask: .causal(length: 3)).out
            }),
            ("custom", [t([3], "x", 32)], { CustomOpTests.triple($0[0]) }),
        ]
    }

    func testEveryBackwardAccumulates() {
        for (op, inputs, f) in Self.cases() {
            for x in inputs { x.zeroGrad() }
            let y = f(inputs)
            let w = GradCheck.projection(count: y.count, seed: 9)
            y.backward(gradient: w)
            let once = inputs.map { $0.grad }
            f(inputs).backward(gradient: w)   // a second graph, no zeroGrad in between
            for (x, g) in zip(inputs, once) {
                guard let g, let g2 = x.grad else { XCTFail("\(op): no gradient for \(x.name)"); continue }
                XCTAssertTrue(g.contains { $0 != 0 }, "\(op): zero gradient for \(x.name) proves nothing")
                XCTAssertEqual(g2, g.map { 2 * $0 }, "\(op): second backward must add to \(x.name)'s gradient")
            }
        }
    }
}
