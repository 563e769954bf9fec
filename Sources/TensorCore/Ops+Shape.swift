// Shape ops: reshape (no copy), permute, slice and concat along a dimension.
// Each backward is the inverse movement of the forward: a permutation's inverse, a slice's
// scatter, a concat's split.

extension Tensor {
    /// The same values seen with another shape (one dimension may be -1: inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let free = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != free }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            target[free] = count / known
        }
        precondition(target.reduce(1, *) == count, "cannot reshape \(shape) (\(count) values) to \(newShape)")
        return Tensor.result(target, data, parents: [self]) { out in
            self.accumulateGrad(out.grad!)   // same values, same order: the gradient passes through
        }
    }

    /// Strides of a row-major shape.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { s[d] = s[d + 1] * shape[d + 1] }
        return s
    }

    /// Reorders dimensions: output dimension i is input dimension `order[i]`
    /// (PyTorch's `permute`). The result is a contiguous copy.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permute: \(order) is not a permutation of 0..<\(rank)")
        let outShape = order.map { shape[$0] }
        let inStrides = Tensor.strides(shape)
        let srcStride = order.map { inStrides[$0] }   // input stride along each output dimension
        let y = Tensor.gatherPermuted(data, outShape: outShape, srcStride: srcStride)
        return Tensor.result(outShape, y, parents: [self]) { out in
            // Backward: every output element goes back to the input element it came from.
            var inverse = [Int](repeating: 0, count: order.count)
            for (i, o) in order.enumerated() { inverse[o] = i }
            let outStrides = Tensor.strides(outShape)
            let back = Tensor.gatherPermuted(out.grad!, outShape: self.shape,
                                             srcStride: inverse.map { outStrides[$0] })
            self.accumulateGrad(back)
        }
    }

    /// Copies `src` into a row-major array of `outShape`, reading element (i0, i1, …) at
    /// Σ iₖ · srcStride[k].
    static func gatherPermuted(_ src: [Float], outShape: [Int], srcStride: [Int]) -> [Float] {
        let total = outShape.reduce(1, *)
        let rank = outShape.count
        guard total > 0 else { return [] }
        guard rank > 0 else { return src }
        return src.withUnsafeBufferPointer { s in uninitializedFloats(total) { y in
            var index = [Int](repeating: 0, count: rank)
            var offset = 0
            let inner = outShape[rank - 1], innerStride = srcStride[rank - 1]
            var o = 0
            while o < total {
                for j in 0..<inner { y[o + j] = s[offset + j * innerStride] }
                o += inner
                // Odometer over the outer dimensions.
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    offset += srcStride[d]
                    if index[d] < outShape[d] { break }
                    offset -= srcStride[d] * outShape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        } }
    }

    /// Elements `start ..< start + length` along `dim`.
    public func sliced(dim: Int, start: Int, length: Int) -> Tensor {
        precondition(dim >= 0 && dim < rank, "slice: dim \(dim) out of range for \(shape)")
        precondition(start >= 0 && length >= 0 && start + length <= shape[dim],
                     "slice: \(start)..<\(start + length) out of range 0..<\(shape[dim]) in dim \(dim) of \(shape)")
        let outer = shape[..<dim].reduce(1, *), inner = shape[(dim + 1)...].reduce(1, *)
        let full = shape[dim]
        var outShape = shape
        outShape[dim] = length
        let y = withValues { x in uninitializedFloats(outer * length * inner) { py in
            for o in 0..<outer {
                (py + o * length * inner).update(from: x + (o * full + start) * inner, count: length * inner)
            }
        } }
        return Tensor.result(outShape, y, parents: [self]) { out in
            out.withGrad { g in self.accumulateGrad { gx in
                for o in 0..<outer {
                    let dst = gx + (o * full + start) * inner, src = g + o * length * inner
                    for i in 0..<(length * inner) { dst[i] += src[i] }
                }
            } }
        }
    }

    /// Joins tensors along `dim`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], dim: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of nothing")
        let first = parts[0].shape
        precondition(dim >= 0 && dim < first.count, "concat: dim \(dim) out of range for \(first)")
        for p in parts {
            precondition(p.rank == first.count && (0..<first.count).allSatisfy { $0 == dim || p.shape[$0] == first[$0] },
                         "concat along \(dim): shapes \(parts.map(\.shape)) do not agree")
        }
        let outer = first[..<dim].reduce(1, *), inner = first[(dim + 1)...].reduce(1, *)
        let lengths = parts.map { $0.shape[dim] }, total = lengths.reduce(0, +)
        var outShape = first
        outShape[dim] = total
        var y = [Float](repeating: 0, count: outer * total * inner)
        var offset = 0
        for (p, len) in zip(parts, lengths) {
            p.withValues { x in y.withUnsafeMutableBufferPointer { py in
                for o in 0..<outer {
                    (py.baseAddress! + (o * total + offset) * inner).update(from: x + o * len * inner, count: len * inner)
                }
            } }
            offset += len
        }
        return result(outShape, y, parents: parts) { out in
            var offset = 0
            out.withGrad { g in
                for (p, len) in zip(parts, lengths) {
                    p.accumulateGrad { gp in
                        for o in 0..<outer {
                            let src = g + (o * total + offset) * inner, dst = gp + o * len * inner
                            for i in 0..<(len * inner) { dst[i] += src[i] }
                        }
                    }
                    offset += len
                }
            }
        }
    }
}
