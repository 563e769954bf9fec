// Shape ops: reshape, permute, slice, concat. Forward against index arithmetic written here
// (multi-dimensional indices, no strides shared with the implementation); backward by central
// differences. The projection loss gives every output element its own weight, so a backward that
// sends a gradient to the wrong element fails.

import TensorCore
import XCTest

final class ShapeTests: XCTestCase {
    /// Row-major flat index of a multi-dimensional one.
    func flat(_ index: [Int], _ shape: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }

    func testReshaped() {
        let x = randomTensor([2, 3, 4], "x", seed: 1)
        let y = x.reshaped([6, -1])
        XCTAssertEqual(y.shape, [6, 4])
        XCTAssertEqual(y.data, x.data)
        XCTAssertEqual(x.shape, [2, 3, 4], "reshaped returns a new tensor; the input keeps its shape")
        assertGradCheck("reshaped [6, -1]", [x]) { $0[0].reshaped([6, -1]) }
        // Reshape then an op that is not element-wise: gradients land back in the input layout.
        let b = randomTensor([4, 6], "b", seed: 2)
        assertGradCheck("reshaped [-1, 4] · b", [x, b]) { Tensor.matmul($0[0].reshaped([-1, 4]), $0[1]) }
    }

    func testPermutedForward() {
        for (shape, order) in [([2, 3], [1, 0]), ([2, 3, 4], [2, 0, 1]), ([2, 3, 4], [1, 2, 0]),
                               ([2, 3, 4, 5], [0, 2, 1, 3]), ([2, 3, 4, 5], [3, 1, 0, 2])] {
            let x = randomTensor(shape, "x", seed: 3)
            let y = x.permuted(order)
            XCTAssertEqual(y.shape, order.map { shape[$0] }, "permute \(shape) by \(order)")
            for j in 0..<y.count {
                let out = unravel(j, y.shape)
                var input = [Int](repeating: 0, count: shape.count)
                for (k, d) in order.enumerated() { input[d] = out[k] }   // output dim k is input dim order[k]
                if y.data[j] != x.data[flat(input, shape)] {
                    XCTFail("permute \(shape) by \(order): out \(out) = \(y.data[j]), expected x\(input)")
                    break
                }
            }
        }
    }

    func testPermutedBackward() {
        for (shape, order) in [([2, 3], [1, 0]), ([2, 3, 4], [2, 0, 1]), ([2, 3, 4], [1, 2, 0]),
                               ([2, 3, 4, 5], [0, 2, 1, 3]), ([2, 3, 4, 5], [3, 1, 0, 2]),
                               ([2, 3, 4, 5], [0, 1, 2, 3])] {
            let x = randomTensor(shape, "x", seed: 4)
            assertGradCheck("permuted \(shape) by \(order)", [x]) { $0[0].permuted(order) }
        }
    }

    func testPermuteThereAndBackIsIdentity() {
        // The attention layout change [B, T, nh, hs] → [B, nh, T, hs] and back.
        let x = randomTensor([2, 3, 4, 5], "x", seed: 5)
        XCTAssertEqual(x.permuted([0, 2, 1, 3]).permuted([0, 2, 1, 3]).data, x.data)
        XCTAssertEqual(x.permuted([3, 1, 0, 2]).permuted([2, 1, 3, 0]).data, x.data)
    }

    func testSlicedEachDimension() {
        let shape = [3, 4, 5]
        let x = randomTensor(shape, "x", seed: 6)
        for dim in 0..<3 {
            let (start, length) = (1, 2)
            let y = x.sliced(dim: dim, start: start, length: length)
            var expectedShape = shape
            expectedShape[dim] = length
            XCTAssertEqual(y.shape, expectedShape)
            for j in 0..<y.count {
                var index = unravel(j, y.shape)
                index[dim] += start
                XCTAssertEqual(y.data[j], x.data[flat(index, shape)], "slice dim \(dim) at \(unravel(j, y.shape))")
            }
            assertGradCheck("sliced dim \(dim) 1..<3", [x]) { $0[0].sliced(dim: dim, start: start, length: length) }
        }
    }

    func testSlicedGradientIsZeroOutsideTheSlice() {
        let x = randomTensor([3, 4], "x", seed: 7)
        x.sliced(dim: 1, start: 2, length: 2).backward(gradient: [Float](repeating: 1, count: 6))
        XCTAssertEqual(x.grad, [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1])
    }

    func testConcatEachDimensionThreeParts() {
        let shape = [2, 3, 4]
        for dim in 0..<3 {
            let lengths = [1, 3, 2]
            let parts = lengths.enumerated().map { i, len -> Tensor in
                var s = shape
                s[dim] = len
                return randomTensor(s, "part\(i)", seed: 8 + UInt64(i))
            }
            let y = Tensor.concat(parts, dim: dim)
            var expectedShape = shape
            expectedShape[dim] = 6
            XCTAssertEqual(y.shape, expectedShape)
            for j in 0..<y.count {
                var index = unravel(j, y.shape)
                var p = 0
                while index[dim] >= lengths[p] { index[dim] -= lengths[p]; p += 1 }
                XCTAssertEqual(y.data[j], parts[p].data[flat(index, parts[p].shape)],
                               "concat dim \(dim) at \(unravel(j, y.shape)) comes from part \(p) at \(index)")
            }
            assertGradCheck("concat dim \(dim) lengths \(lengths)", parts) { Tensor.concat($0, dim: dim) }
        }
    }

    func testConcatUndoesSlices() {
        let x = randomTensor([2, 6, 3], "x", seed: 11)
        let parts = [x.sliced(dim: 1, start: 0, length: 1), x.sliced(dim: 1, start: 1, length: 3),
                     x.sliced(dim: 1, start: 4, length: 2)]
        XCTAssertEqual(Tensor.concat(parts, dim: 1).data, x.data)
        assertGradCheck("concat of slices", [x]) { t in
            Tensor.concat([t[0].sliced(dim: 1, start: 4, length: 2), t[0].sliced(dim: 1, start: 0, length: 4)], dim: 1)
        }
    }

    func testConcatWithTheSameTensorTwiceAndAConstant() {
        let x = randomTensor([2, 3], "x", seed: 12), c = randomTensor([2, 3], "c", seed: 13, requiresGrad: false)
        assertGradCheck("concat [x, c, x]", [x, c]) { Tensor.concat([$0[0], $0[1], $0[0]], dim: 0) }
        XCTAssertNil(c.grad)
    }
}
