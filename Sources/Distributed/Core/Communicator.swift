/// How a collective combines the ranks' values, element by element.
public enum ReduceOp: String, Sendable, CaseIterable {
    /// x₀ + x₁ + … + x_{N−1}
    case sum
    /// the sum divided by N (the group size), as gradient averaging needs
    case average
    /// the largest value
    case max
}

/// A group of ranks that talk to each other: the whole world, or a tensor-, pipeline-,
/// context- or data-parallel group split from it.
///
/// Collectives are *sync points*: every rank of the group must call the same collective,
/// in the same order, with the same element count (and root / reduce operation). A rank
/// returns from a blocking collective only when its own result is ready, which needs every
/// other rank to have arrived. Point-to-point calls pair a `send` on one rank with a `recv`
/// on another; messages between the same two ranks with the same tag arrive in the order
/// they were sent, and different tags never mix.
///
/// The pointer-level methods below are the hot path (no copies beyond what the algorithm
/// needs); `Communicator+Arrays.swift` adds `[Float]` versions of each. A communicator is
/// used by one thread at a time: its rank's thread. Buffers must not overlap unless a method
/// says it works in place.
///
/// Every call counts its calls and bytes in `ledger` under this group's `name`.
public protocol Communicator: AnyObject {
    /// This rank's index in the group, `0 ..< size`.
    var rank: Int { get }
    /// Number of ranks in the group.
    var size: Int { get }
    /// The group's name for accounting and messages: "world", "tp", "cp", "pp", "dp", "cp+dp".
    var name: String { get }
    /// Communication counters of this rank, shared with every communicator split from it.
    var ledger: CommLedger { get }

    /// Reduces `buffer` across all ranks, in place; every rank ends with the same result.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws(CommError)

    /// Concatenates every rank's `input` in rank order into `output`
    /// (`output.count == size * input.count`; all ranks pass the same `input.count`).
    func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>)
        throws(CommError)

    /// Reduces `input` across ranks and leaves chunk `rank` of the result in `output`
    /// (`input.count == size * output.count`): the first half of an all-reduce.
    func reduceScatter(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, op: ReduceOp
    ) throws(CommError)

    /// Copies `root`'s `buffer` into every other rank's `buffer`.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws(CommError)

    /// Sends `buffer` to rank `peer`. May block until `peer` posts the matching receive (MPI
    /// may buffer small messages; the in-process backend always waits, so code that relies on
    /// buffering fails in tests, not on a cluster).
    func send(_ buffer: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws(CommError)

    /// Receives exactly `buffer.count` floats sent by `peer` with `tag`.
    func recv(into buffer: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws(CommError)

    /// Starts sending `buffer`; it must stay untouched until the request is waited.
    func isend(_ buffer: FloatBuffer, to peer: Int, tag: Int) throws(CommError) -> CommRequest<Void>

    /// Starts receiving `buffer.count` floats into `buffer`; `wait()` returns the buffer.
    func irecv(into buffer: FloatBuffer, from peer: Int, tag: Int) throws(CommError) -> CommRequest<FloatBuffer>

    /// Starts an in-place all-reduce of `buffer`; `wait()` returns the buffer, reduced.
    /// Blocking and non-blocking all-reduces are different collectives: all ranks of one call
    /// must use the same kind.
    func iallReduce(_ buffer: FloatBuffer, op: ReduceOp) throws(CommError) -> CommRequest<FloatBuffer>

    /// Returns once every rank of the group has called `barrier()`.
    func barrier() throws(CommError)

    /// A collective over this group: ranks passing the same `color` form a new group,
    /// ordered by `key` (ties by rank in this group). `color` must be >= 0.
    func split(color: Int, key: Int, name: String) throws(CommError) -> Communicator
}

extension Communicator {
    /// Everything this rank has communicated, in all its groups, since the last reset.
    public var stats: CommStats { ledger.snapshot() }

    /// Zeroes this rank's counters (all its groups).
    public func resetStats() { ledger.reset() }

    /// Throws unless `peer` is a rank of this group.
    func checkPeer(_ peer: Int, _ what: String) throws(CommError) {
        guard peer >= 0 && peer < size else {
            throw .invalidArgument(
                "\(what) rank \(peer) is out of range 0..<\(size) in group '\(name)' (called on rank \(rank))")
        }
    }

    /// Throws unless `tag` is usable under MPI (0 ... 32767 is always valid).
    func checkTag(_ tag: Int) throws(CommError) {
        guard tag >= 0 && tag <= 32767 else {
            throw .invalidArgument("tag \(tag) on rank \(rank) in group '\(name)': use a tag in 0...32767")
        }
    }
}
