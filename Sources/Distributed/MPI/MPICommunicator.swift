import CMPI

/// A group of MPI processes: `MPICommunicator.world()` for all of them, `split` for the rest.
///
/// Every call maps to one MPI call on the caller's buffers, with no copies: `allReduce` is
/// `MPI_Allreduce(MPI_IN_PLACE, …)`, `isend`/`irecv`/`iallReduce` are
/// `MPI_Isend`/`MPI_Irecv`/`MPI_Iallreduce` on a `FloatBuffer` that the request keeps alive
/// until `wait()`. Average is a sum followed by a division by `size`. Errors come back as
/// codes (`MPI_ERRORS_RETURN`) and are thrown as `CommError.mpi`.
///
/// Note for overlap: OpenMPI progresses non-blocking collectives mostly inside MPI calls, so
/// an `iallReduce` may advance little until `wait()`; the overlap it buys is real for
/// point-to-point transfers and on networks with offload.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public let name: String
    public let ledger: CommLedger
    private var comm: MPI_Comm?
    private let owned: Bool
    /// This group's slot in `ledger`.
    let counters: GroupCounters

    /// The world of this job (initialises MPI on first use). Create it once and pass it on:
    /// communicators split from it share its ledger.
    public static func world() throws(CommError) -> MPICommunicator {
        try MPIRuntime.initialize()
        return try MPICommunicator(comm: cmpi_comm_world(), name: "world", ledger: CommLedger(), owned: false)
    }

    private init(comm: MPI_Comm?, name: String, ledger: CommLedger, owned: Bool) throws(CommError) {
        var r: Int32 = 0, s: Int32 = 0
        try MPIRuntime.check(MPI_Comm_set_errhandler(comm, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        try MPIRuntime.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try MPIRuntime.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        self.comm = comm
        self.rank = Int(r)
        self.size = Int(s)
        self.name = name
        self.ledger = ledger
        self.owned = owned
        self.counters = ledger.counters(for: name)
    }

    deinit {
        if owned && !MPIRuntime.isFinalized { MPI_Comm_free(&comm) }
    }

    // MARK: Collectives

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws(CommError) {
        ledger.record(counters, groupSize: size, op: .allReduce, count: buffer.count)
        let n = try count(buffer.count)
        let p = buffer.baseAddress ?? Self.empty
        try check(waiting("allReduce", count: buffer.count) {
            MPI_Allreduce(cmpi_in_place(), p, n, cmpi_float(), mpiOp(op), comm)
        }, "MPI_Allreduce")
        if op == .average { divide(buffer) }
    }

    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>)
        throws(CommError)
    {
        guard output.count == input.count * size else {
            throw .invalidArgument(
                "allGather on rank \(rank) of group '\(name)': output holds \(output.count) floats but needs "
                    + "size × input = \(size) × \(input.count) = \(size * input.count)")
        }
        ledger.record(counters, groupSize: size, op: .allGather, count: input.count)
        let n = try count(input.count)
        let src = input.baseAddress ?? UnsafePointer(Self.empty)
        let dst = output.baseAddress ?? Self.empty
        try check(waiting("allGather", count: input.count) {
            MPI_Allgather(src, n, cmpi_float(), dst, n, cmpi_float(), comm)
        }, "MPI_Allgather")
    }

    public func reduceScatter(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, op: ReduceOp
    ) throws(CommError) {
        guard input.count == output.count * size else {
            throw .invalidArgument(
                "reduceScatter on rank \(rank) of group '\(name)': input of \(input.count) floats must be "
                    + "size × output = \(size) × \(output.count) = \(size * output.count); pad the input to a "
                    + "multiple of \(size)")
        }
        ledger.record(counters, groupSize: size, op: .reduceScatter, count: input.count)
        let n = try count(output.count)
        let src = input.baseAddress ?? UnsafePointer(Self.empty)
        let dst = output.baseAddress ?? Self.empty
        try check(waiting("reduceScatter", count: input.count) {
            MPI_Reduce_scatter_block(src, dst, n, cmpi_float(), mpiOp(op), comm)
        }, "MPI_Reduce_scatter_block")
        if op == .average { divide(output) }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws(CommError) {
        try checkPeer(root, "broadcast root")
        ledger.record(counters, groupSize: size, op: .broadcast, count: buffer.count)
        let n = try count(buffer.count)
        try check(waiting("broadcast", count: buffer.count, peer: root) {
            MPI_Bcast(buffer.baseAddress ?? Self.empty, n, cmpi_float(), Int32(root), comm)
        }, "MPI_Bcast")
    }

    public func barrier() throws(CommError) {
        ledger.record(counters, groupSize: size, op: .barrier, count: 0)
        try check(waiting("barrier", count: 0) { MPI_Barrier(comm) }, "MPI_Barrier")
    }

    public func split(color: Int, key: Int, name newName: String) throws(CommError) -> Communicator {
        guard color >= 0 else {
            throw .invalidArgument("split on rank \(rank) of group '\(name)': color \(color) must be >= 0")
        }
        ledger.record(counters, groupSize: size, op: .split, count: 0)
        var newComm: MPI_Comm? = cmpi_comm_null()
        try check(waiting("split", count: 0) { MPI_Comm_split(comm, Int32(color), Int32(key), &newComm) },
                  "MPI_Comm_split")
        return try MPICommunicator(comm: newComm, name: newName, ledger: ledger, owned: true)
    }

    // MARK: Point to point

    public func send(_ buffer: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws(CommError) {
        try checkPeer(peer, "send destination")
        try checkTag(tag)
        ledger.record(counters, groupSize: size, op: .send, count: buffer.count)
        let p = buffer.baseAddress ?? UnsafePointer(Self.empty)
        let n = try count(buffer.count)
        try check(waiting("send", count: buffer.count, peer: peer, tag: tag) {
            MPI_Send(p, n, cmpi_float(), Int32(peer), Int32(tag), comm)
        }, "MPI_Send")
    }

    public func recv(into buffer: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws(CommError) {
        try checkPeer(peer, "receive source")
        try checkTag(tag)
        ledger.record(counters, groupSize: size, op: .recv, count: buffer.count)
        var status = MPI_Status()
        let n = try count(buffer.count)
        let rc = waiting("recv", count: buffer.count, peer: peer, tag: tag) {
            MPI_Recv(buffer.baseAddress ?? Self.empty, n, cmpi_float(), Int32(peer), Int32(tag), comm, &status)
        }
        try checkReceived(rc, &status, count: buffer.count, peer: peer, tag: tag)
    }

    public func isend(_ buffer: FloatBuffer, to peer: Int, tag: Int) throws(CommError) -> CommRequest<Void> {
        try checkPeer(peer, "send destination")
        try checkTag(tag)
        ledger.record(counters, groupSize: size, op: .send, count: buffer.count)
        let box = RequestBox()
        let p = buffer.storage.baseAddress ?? Self.empty
        let n = try count(buffer.count)
        try check(MPI_Isend(p, n, cmpi_float(), Int32(peer), Int32(tag), comm, &box.handle), "MPI_Isend")
        let (r, g) = (rank, name)
        return CommRequest(
            complete: { () throws(CommError) in
                let rc = self.waiting("wait for isend", count: buffer.count, peer: peer, tag: tag) {
                    MPI_Wait(&box.handle, cmpi_status_ignore())
                }
                try MPIRuntime.check(rc, "MPI_Wait (isend on rank \(r) of group '\(g)')")
                withExtendedLifetime(buffer) {}
            },
            abandon: { box.abandon(keeping: buffer) })
    }

    public func irecv(into buffer: FloatBuffer, from peer: Int, tag: Int) throws(CommError)
        -> CommRequest<FloatBuffer>
    {
        try checkPeer(peer, "receive source")
        try checkTag(tag)
        ledger.record(counters, groupSize: size, op: .recv, count: buffer.count)
        let box = RequestBox()
        let p = buffer.storage.baseAddress ?? Self.empty
        let n = try count(buffer.count)
        try check(MPI_Irecv(p, n, cmpi_float(), Int32(peer), Int32(tag), comm, &box.handle), "MPI_Irecv")
        return CommRequest(
            complete: { () throws(CommError) -> FloatBuffer in
                var status = MPI_Status()
                let rc = self.waiting("wait for irecv", count: buffer.count, peer: peer, tag: tag) {
                    MPI_Wait(&box.handle, &status)
                }
                try self.checkReceived(rc, &status, count: buffer.count, peer: peer, tag: tag)
                return buffer
            },
            abandon: { box.abandon(keeping: buffer) })
    }

    public func iallReduce(_ buffer: FloatBuffer, op: ReduceOp) throws(CommError) -> CommRequest<FloatBuffer> {
        ledger.record(counters, groupSize: size, op: .allReduce, count: buffer.count)
        let box = RequestBox()
        let p = buffer.storage.baseAddress ?? Self.empty
        let n = try count(buffer.count)
        try check(MPI_Iallreduce(cmpi_in_place(), p, n, cmpi_float(), mpiOp(op), comm, &box.handle), "MPI_Iallreduce")
        return CommRequest(
            complete: { () throws(CommError) -> FloatBuffer in
                try self.check(self.waiting("wait for iallReduce", count: buffer.count) {
                    MPI_Wait(&box.handle, cmpi_status_ignore())
                }, "MPI_Wait (iallReduce)")
                if op == .average { self.divide(buffer.storage) }
                return buffer
            },
            abandon: { box.abandon(keeping: buffer) })
    }

    // MARK: Helpers

    /// A valid address for zero-length buffers (MPI rejects NULL even when nothing moves).
    nonisolated(unsafe) private static let empty = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    private func check(_ rc: Int32, _ call: @autoclosure () -> String) throws(CommError) {
        guard rc != MPI_SUCCESS else { return }
        do {
            try MPIRuntime.check(rc, call())
        } catch {
            guard case .mpi(let c, let code, let m) = error else { throw error }
            throw .mpi(call: c, code: code, message: "\(m) (rank \(rank) of group '\(name)', size \(size))")
        }
    }

    private func count(_ n: Int) throws(CommError) -> Int32 {
        guard let c = Int32(exactly: n) else {
            throw .invalidArgument("\(n) floats exceed MPI's count limit of \(Int32.max); split the buffer")
        }
        return c
    }

    private func mpiOp(_ op: ReduceOp) -> MPI_Op? {
        op == .max ? cmpi_op_max() : cmpi_op_sum()
    }

    private func divide(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let n = Float(size)
        for i in buffer.indices { buffer[i] /= n }
    }

    /// Turns a receive's return code and status into an error naming both sides and counts.
    private func checkReceived(_ rc: Int32, _ status: inout MPI_Status, count: Int, peer: Int, tag: Int)
        throws(CommError)
    {
        if rc == MPI_ERR_TRUNCATE {
            throw .mismatch(
                "rank \(rank) of group '\(name)' posted a receive of \(count) floats from rank \(peer) with tag "
                    + "\(tag) but the message is longer; sender and receiver must agree on the count")
        }
        try check(rc, "MPI_Recv from rank \(peer) with tag \(tag)")
        var got: Int32 = 0
        MPI_Get_count(&status, cmpi_float(), &got)
        guard Int(got) == count else {
            throw .mismatch(
                "rank \(rank) of group '\(name)' posted a receive of \(count) floats from rank \(peer) with tag "
                    + "\(tag) but rank \(peer) sent \(got) floats; sender and receiver must agree on the count")
        }
    }
}

/// The handle of one MPI request, boxed so the request's closures can pass `&handle`.
private final class RequestBox: @unchecked Sendable {
    var handle: MPI_Request? = cmpi_request_null()

    /// For a request dropped without `wait()`: let MPI finish it alone and keep its buffer
    /// alive for good (a small leak on an error path beats MPI writing into freed memory).
    func abandon(keeping buffer: FloatBuffer) {
        if !MPIRuntime.isFinalized && handle != cmpi_request_null() { MPI_Request_free(&handle) }
        _ = Unmanaged.passRetained(buffer)
    }
}
