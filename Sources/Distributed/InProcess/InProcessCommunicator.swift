import Dispatch
/// One rank's view of an in-process group. Create them with `InProcessWorld`.
///
/// Blocking collectives meet in a `CollectiveSlot`: arrive (publish buffer addresses, wait
/// for all), work (each rank computes its share straight from the others' buffers, so an
/// all-reduce on N ranks has N threads reducing N disjoint chunks), depart (wait until no one
/// touches my buffers any more). See `InProcessGroup.swift`.
public final class InProcessCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let name: String
    public let ledger: CommLedger
    /// This rank's index in the world (equal to `rank` for the world communicator).
    public let worldRank: Int
    public var size: Int { group.members.count }

    let world: InProcessWorld
    let group: InProcessGroup
    /// This group's slot in `ledger`.
    let counters: GroupCounters
    /// The number of the next collective this rank calls; only this rank's thread touches it.
    private var nextCollective = 0

    init(world: InProcessWorld, group: InProcessGroup, rank: Int, worldRank: Int, name: String, ledger: CommLedger) {
        self.world = world
        self.group = group
        self.rank = rank
        self.worldRank = worldRank
        self.name = name
        self.ledger = ledger
        self.counters = ledger.counters(for: name)
    }

    /// Adds the time since `start` to `op`'s seconds in the ledger (every blocking call and wait).
    func charge(_ op: CommOp, since start: UInt64) {
        ledger.addTime(counters, op: op, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    // MARK: Collectives

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws(CommError) {
        ledger.record(counters, groupSize: size, op: .allReduce, count: buffer.count)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.allReduce, since: start) }
        let sig = CollectiveSignature(kind: .allReduce, count: buffer.count, op: op)
        let (slot, n) = try arrive(sig) { $0.outputs[rank] = buffer.baseAddress }
        // Work: reduce my chunk across every rank's buffer and write it back to all of them.
        let part = Reduction.chunk(rank, of: size, count: buffer.count)
        if !part.isEmpty {
            let all = slot.outputs.map { $0! + part.lowerBound }
            Reduction.reduce(all.map { UnsafePointer($0) }, count: part.count, op: op, into: all)
        }
        depart(slot, n, wait: true)
    }

    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>)
        throws(CommError)
    {
        guard output.count == input.count * size else {
            throw .invalidArgument(
                "allGather on \(who): output holds \(output.count) floats but needs size × input = "
                    + "\(size) × \(input.count) = \(size * input.count)")
        }
        ledger.record(counters, groupSize: size, op: .allGather, count: input.count)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.allGather, since: start) }
        let sig = CollectiveSignature(kind: .allGather, count: input.count)
        let (slot, n) = try arrive(sig) { $0.inputs[rank] = input.baseAddress }
        if input.count > 0 {
            for k in 0 ..< size {
                (output.baseAddress! + k * input.count).update(from: slot.inputs[k]!, count: input.count)
            }
        }
        depart(slot, n, wait: true)
    }

    public func reduceScatter(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, op: ReduceOp
    ) throws(CommError) {
        guard input.count == output.count * size else {
            throw .invalidArgument(
                "reduceScatter on \(who): input of \(input.count) floats must be size × output = "
                    + "\(size) × \(output.count) = \(size * output.count); pad the input to a multiple of \(size)")
        }
        ledger.record(counters, groupSize: size, op: .reduceScatter, count: input.count)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.reduceScatter, since: start) }
        let sig = CollectiveSignature(kind: .reduceScatter, count: input.count, op: op)
        let (slot, n) = try arrive(sig) { $0.inputs[rank] = input.baseAddress }
        if output.count > 0 {
            let mine = slot.inputs.map { $0! + rank * output.count }
            Reduction.reduce(mine, count: output.count, op: op, into: [output.baseAddress!])
        }
        depart(slot, n, wait: true)
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws(CommError) {
        try checkPeer(root, "broadcast root")
        ledger.record(counters, groupSize: size, op: .broadcast, count: buffer.count)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.broadcast, since: start) }
        let sig = CollectiveSignature(kind: .broadcast, count: buffer.count, root: root)
        let (slot, n) = try arrive(sig) { $0.inputs[rank] = UnsafePointer(buffer.baseAddress) }
        if rank != root && buffer.count > 0 {
            buffer.baseAddress!.update(from: slot.inputs[root]!, count: buffer.count)
        }
        depart(slot, n, wait: true)
    }

    public func barrier() throws(CommError) {
        ledger.record(counters, groupSize: size, op: .barrier, count: 0)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.barrier, since: start) }
        let (slot, n) = try arrive(CollectiveSignature(kind: .barrier)) { _ in }
        depart(slot, n, wait: false)
    }

    public func iallReduce(_ buffer: FloatBuffer, op: ReduceOp) throws(CommError) -> CommRequest<FloatBuffer> {
        ledger.record(counters, groupSize: size, op: .allReduce, count: buffer.count)
        let sig = CollectiveSignature(kind: .iallReduce, count: buffer.count, op: op)
        let n = nextCollective
        nextCollective += 1
        world.cond.lock()
        let slot: CollectiveSlot
        do {
            slot = try joinLocked(sig, n) { $0.buffers[rank] = buffer }
        } catch {
            world.cond.unlock()
            throw error
        }
        let last = slot.isFull
        world.cond.unlock()
        if last {
            // The last rank to post does the whole reduction now, so completion never depends
            // on a peer calling wait() (a peer may be blocked elsewhere, as MPI allows).
            if buffer.count > 0 {
                let all = slot.buffers.map { $0!.storage.baseAddress! }
                Reduction.reduce(all.map { UnsafePointer($0) }, count: buffer.count, op: op, into: all)
            }
            world.cond.lock()
            slot.completed = true
            group.slots[n] = nil
            world.cond.broadcast()
            world.cond.unlock()
        }
        let (world, who, name) = (self.world, self.who, self.name)
        return CommRequest(complete: { () throws(CommError) -> FloatBuffer in
            let start = DispatchTime.now().uptimeNanoseconds
            defer { self.charge(.allReduce, since: start) }
            world.cond.lock()
            defer { world.cond.unlock() }
            try world.waitLocked(
                worldRank: self.worldRank,
                for: { "(\(who)) in iallReduce #\(n) of group '\(name)' for rank(s) \(slot.missing) to post theirs" },
                until: { slot.completed || slot.error != nil })
            if let e = slot.error { throw e }
            return buffer
        })
    }

    public func split(color: Int, key: Int, name newName: String) throws(CommError) -> Communicator {
        guard color >= 0 else {
            throw .invalidArgument("split on \(who): color \(color) must be >= 0")
        }
        ledger.record(counters, groupSize: size, op: .split, count: 0)
        let (slot, n) = try arrive(CollectiveSignature(kind: .split)) { $0.colorKeys[rank] = (color, key) }
        world.cond.lock()
        let ck = slot.colorKeys
        let mine = (0 ..< size).filter { ck[$0].color == color }.sorted { (ck[$0].key, $0) < (ck[$1].key, $1) }
        let g: InProcessGroup
        if let existing = slot.newGroups[color] {
            g = existing
        } else {
            g = world.makeGroup(name: newName, members: mine.map { group.members[$0] })
            slot.newGroups[color] = g
        }
        world.cond.unlock()
        depart(slot, n, wait: false)
        return InProcessCommunicator(
            world: world, group: g, rank: mine.firstIndex(of: rank)!, worldRank: worldRank, name: newName,
            ledger: ledger)
    }

    // MARK: Meeting in a slot

    /// How this rank is named in messages.
    var who: String {
        group.name == "world" ? "rank \(rank)" : "rank \(rank) of group '\(name)' (world rank \(worldRank))"
    }

    /// Joins collective number `n`, with `cond` held: checks for an earlier mismatch or abort,
    /// compares the call with the first rank's, then publishes this rank's contribution.
    private func joinLocked(_ sig: CollectiveSignature, _ n: Int, publish: (CollectiveSlot) -> Void)
        throws(CommError) -> CollectiveSlot
    {
        let slot: CollectiveSlot
        if let s = group.slots[n] {
            slot = s
        } else {
            slot = CollectiveSlot(signature: sig, firstRank: rank, size: size)
            group.slots[n] = slot
        }
        if let e = slot.error { throw e }
        try world.checkAbortLocked()
        if slot.signature != sig {
            let e = CommError.mismatch(
                "collective #\(n) of group '\(name)': rank \(slot.firstRank) called \(slot.signature.description) "
                    + "but rank \(rank) called \(sig.description); every rank of a group must make the same "
                    + "collective calls, with the same counts, in the same order")
            slot.error = e
            world.cond.broadcast()
            throw e
        }
        publish(slot)
        slot.arrived[rank] = true
        slot.arrivedCount += 1
        if slot.isFull { world.cond.broadcast() }
        return slot
    }

    /// Arrive phase of a blocking collective: join, then wait until every rank has joined.
    private func arrive(_ sig: CollectiveSignature, publish: (CollectiveSlot) -> Void)
        throws(CommError) -> (CollectiveSlot, Int)
    {
        let n = nextCollective
        nextCollective += 1
        world.cond.lock()
        defer { world.cond.unlock() }
        let slot = try joinLocked(sig, n, publish: publish)
        try world.waitLocked(
            worldRank: worldRank,
            for: { "(\(who)) in \(sig.description), collective #\(n) of group '\(name)', for rank(s) \(slot.missing)" },
            until: { slot.isFull || slot.error != nil })
        if let e = slot.error { throw e }
        return (slot, n)
    }

    /// Depart phase. With `wait`, blocks until every rank has finished its work on the
    /// others' buffers. It ignores aborts on purpose: all ranks have arrived, their remaining
    /// work is a bounded copy, and leaving early would free a buffer someone still writes.
    private func depart(_ slot: CollectiveSlot, _ n: Int, wait: Bool) {
        world.cond.lock()
        defer { world.cond.unlock() }
        slot.departedCount += 1
        if slot.departedCount == size {
            group.slots[n] = nil
            world.cond.broadcast()
        }
        while wait && slot.departedCount < size { world.cond.wait() }
    }
}
