/// `[Float]` forms of every operation. The `inout` ones work in place without copying; the
/// ones returning arrays allocate their result, and the non-blocking ones copy into and out of
/// a `FloatBuffer` (use the `FloatBuffer` forms on hot paths).
extension Communicator {
    public func allReduce(_ x: inout [Float], op: ReduceOp = .sum) throws(CommError) {
        try x.withUnsafeMutableBufferPointer { (p: inout UnsafeMutableBufferPointer<Float>) throws(CommError) in
            try allReduce(p, op: op)
        }
    }

    /// A reduced copy of `x`.
    public func allReduced(_ x: [Float], op: ReduceOp = .sum) throws(CommError) -> [Float] {
        var y = x
        try allReduce(&y, op: op)
        return y
    }

    /// Every rank's `x` concatenated in rank order.
    public func allGather(_ x: [Float]) throws(CommError) -> [Float] {
        var out = [Float](repeating: 0, count: x.count * size)
        try x.withUnsafeBufferPointer { (src: UnsafeBufferPointer<Float>) throws(CommError) in
            try out.withUnsafeMutableBufferPointer { (dst: inout UnsafeMutableBufferPointer<Float>) throws(CommError) in
                try allGather(src, into: dst)
            }
        }
        return out
    }

    /// Chunk `rank` of the reduction of `x` (`x.count` must divide by `size`).
    public func reduceScatter(_ x: [Float], op: ReduceOp = .sum) throws(CommError) -> [Float] {
        guard x.count % size == 0 else {
            throw .invalidArgument(
                "reduceScatter of \(x.count) floats on rank \(rank) in group '\(name)': the count must divide "
                    + "into \(size) equal chunks; pad it to a multiple of \(size)")
        }
        var out = [Float](repeating: 0, count: x.count / size)
        try x.withUnsafeBufferPointer { (src: UnsafeBufferPointer<Float>) throws(CommError) in
            try out.withUnsafeMutableBufferPointer { (dst: inout UnsafeMutableBufferPointer<Float>) throws(CommError) in
                try reduceScatter(src, into: dst, op: op)
            }
        }
        return out
    }

    public func broadcast(_ x: inout [Float], root: Int) throws(CommError) {
        try x.withUnsafeMutableBufferPointer { (p: inout UnsafeMutableBufferPointer<Float>) throws(CommError) in
            try broadcast(p, root: root)
        }
    }

    public func send(_ x: [Float], to peer: Int, tag: Int = 0) throws(CommError) {
        try x.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) throws(CommError) in
            try send(p, to: peer, tag: tag)
        }
    }

    /// Receives `count` floats from `peer`.
    public func recv(count: Int, from peer: Int, tag: Int = 0) throws(CommError) -> [Float] {
        var x = [Float](repeating: 0, count: count)
        try recv(into: &x, from: peer, tag: tag)
        return x
    }

    /// Receives `x.count` floats from `peer` into `x`.
    public func recv(into x: inout [Float], from peer: Int, tag: Int = 0) throws(CommError) {
        try x.withUnsafeMutableBufferPointer { (p: inout UnsafeMutableBufferPointer<Float>) throws(CommError) in
            try recv(into: p, from: peer, tag: tag)
        }
    }

    /// Starts sending a copy of `x`.
    public func isend(_ x: [Float], to peer: Int, tag: Int = 0) throws(CommError) -> CommRequest<Void> {
        try isend(FloatBuffer(x), to: peer, tag: tag)
    }

    /// Starts receiving `count` floats; `wait()` returns them.
    public func irecv(count: Int, from peer: Int, tag: Int = 0) throws(CommError) -> CommRequest<[Float]> {
        try irecv(into: FloatBuffer(count: count), from: peer, tag: tag).map { $0.array }
    }

    /// Starts all-reducing a copy of `x`; `wait()` returns the reduced array.
    public func iallReduce(_ x: [Float], op: ReduceOp = .sum) throws(CommError) -> CommRequest<[Float]> {
        try iallReduce(FloatBuffer(x), op: op).map { $0.array }
    }
}
