import Dispatch
/// Point-to-point messages between in-process ranks.
///
/// A send copies its data into the channel at once, then (blocking `send`, or `wait()` of an
/// `isend`) waits until the receiver has *posted* the matching receive, like `MPI_Ssend`.
/// That is stricter than MPI needs, on purpose: a program whose ranks all send before they
/// receive deadlocks here, in a test, rather than on a cluster once messages outgrow MPI's
/// eager buffers.
extension InProcessCommunicator {
    public func send(_ buffer: UnsafeBufferPointer<Float>, to peer: Int, tag: Int) throws(CommError) {
        let (channel, seq) = try post(Array(buffer), to: peer, tag: tag)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.send, since: start) }
        try waitUntilReceived(channel, seq, peer: peer, tag: tag, count: buffer.count)
    }

    public func isend(_ buffer: FloatBuffer, to peer: Int, tag: Int) throws(CommError) -> CommRequest<Void> {
        let (channel, seq) = try post(buffer.array, to: peer, tag: tag)
        let count = buffer.count
        return CommRequest(complete: { () throws(CommError) in
            let start = DispatchTime.now().uptimeNanoseconds
            defer { self.charge(.send, since: start) }
            try self.waitUntilReceived(channel, seq, peer: peer, tag: tag, count: count)
        })
    }

    public func recv(into buffer: UnsafeMutableBufferPointer<Float>, from peer: Int, tag: Int) throws(CommError) {
        let (channel, seq) = try postReceive(from: peer, tag: tag, count: buffer.count)
        let start = DispatchTime.now().uptimeNanoseconds
        defer { charge(.recv, since: start) }
        let message = try take(channel, seq, from: peer, tag: tag, count: buffer.count)
        if let dst = buffer.baseAddress, !message.isEmpty {
            message.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: message.count) }
        }
    }

    public func irecv(into buffer: FloatBuffer, from peer: Int, tag: Int) throws(CommError)
        -> CommRequest<FloatBuffer>
    {
        let (channel, seq) = try postReceive(from: peer, tag: tag, count: buffer.count)
        return CommRequest(complete: { () throws(CommError) -> FloatBuffer in
            let start = DispatchTime.now().uptimeNanoseconds
            defer { self.charge(.recv, since: start) }
            let message = try self.take(channel, seq, from: peer, tag: tag, count: buffer.count)
            buffer.assign(message)
            return buffer
        })
    }

    // MARK: Channels

    /// Queues `message` as the next one from this rank to `peer` with `tag`.
    private func post(_ message: [Float], to peer: Int, tag: Int) throws(CommError) -> (Channel, Int) {
        try checkPeer(peer, "send destination")
        try checkTag(tag)
        ledger.record(counters, groupSize: size, op: .send, count: message.count)
        world.cond.lock()
        defer { world.cond.unlock() }
        try world.checkAbortLocked()
        let channel = group.channel(ChannelKey(source: rank, destination: peer, tag: tag))
        let seq = channel.sentCount
        channel.sentCount += 1
        channel.messages[seq] = message
        world.cond.broadcast()
        return (channel, seq)
    }

    /// Waits until `peer` has posted the receive matching send number `seq`.
    private func waitUntilReceived(_ channel: Channel, _ seq: Int, peer: Int, tag: Int, count: Int)
        throws(CommError)
    {
        world.cond.lock()
        defer { world.cond.unlock() }
        try world.waitLocked(
            worldRank: worldRank,
            for: {
                "(\(who)) for rank \(peer) of group '\(name)' to receive a message of \(count) floats with tag \(tag)"
            },
            until: { channel.postedCount > seq })
    }

    /// Claims the next message from `peer` with `tag` (the claim fixes which message this
    /// receive gets, so receives complete in posting order whatever order they are waited).
    private func postReceive(from peer: Int, tag: Int, count: Int) throws(CommError) -> (Channel, Int) {
        try checkPeer(peer, "receive source")
        try checkTag(tag)
        ledger.record(counters, groupSize: size, op: .recv, count: count)
        world.cond.lock()
        defer { world.cond.unlock() }
        try world.checkAbortLocked()
        let channel = group.channel(ChannelKey(source: peer, destination: rank, tag: tag))
        let seq = channel.postedCount
        channel.postedCount += 1
        world.cond.broadcast()
        return (channel, seq)
    }

    /// Waits for message number `seq` of the channel and removes it.
    private func take(_ channel: Channel, _ seq: Int, from peer: Int, tag: Int, count: Int) throws(CommError)
        -> [Float]
    {
        world.cond.lock()
        let message: [Float]
        do {
            try world.waitLocked(
                worldRank: worldRank,
                for: { "(\(who)) for a message of \(count) floats from rank \(peer) of group '\(name)' with tag \(tag)"
                },
                until: { channel.messages[seq] != nil })
            message = channel.messages.removeValue(forKey: seq)!
        } catch {
            world.cond.unlock()
            throw error
        }
        world.cond.unlock()
        guard message.count == count else {
            throw .mismatch(
                "\(who) posted a receive of \(count) floats from rank \(peer) with tag \(tag) but rank \(peer) "
                    + "sent \(message.count) floats; sender and receiver must agree on the count")
        }
        return message
    }
}
