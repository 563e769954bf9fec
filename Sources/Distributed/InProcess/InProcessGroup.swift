/// The shared state of one in-process group (the world or a split of it). Every field is
/// guarded by the world's condition variable.
final class InProcessGroup {
    let id: Int
    let name: String
    /// World rank of each group rank.
    let members: [Int]
    /// Collectives in progress, by collective number. The n-th collective call of each rank
    /// meets the n-th call of the others in `slots[n]`.
    var slots: [Int: CollectiveSlot] = [:]
    /// Point-to-point queues, one per (source, destination, tag).
    var channels: [ChannelKey: Channel] = [:]

    init(id: Int, name: String, members: [Int]) {
        self.id = id
        self.name = name
        self.members = members
    }

    func channel(_ key: ChannelKey) -> Channel {
        if let c = channels[key] { return c }
        let c = Channel()
        channels[key] = c
        return c
    }
}

/// What a rank calls: used to detect ranks that call different collectives.
struct CollectiveSignature: Equatable {
    enum Kind: String { case allReduce, iallReduce, allGather, reduceScatter, broadcast, barrier, split }
    var kind: Kind
    var count = 0
    var op: ReduceOp? = nil
    var root: Int? = nil

    var description: String {
        var s = kind.rawValue
        if let op { s += "(\(op.rawValue))" }
        if let root { s += "(root \(root))" }
        if kind != .barrier && kind != .split { s += " of \(count) floats" }
        return s
    }
}

/// One collective call in progress: the meeting point of all ranks of a group.
///
/// Blocking collectives go through three phases. Arrive: each rank publishes its buffer
/// addresses and waits until all ranks have. Work: each rank reads the others' buffers and
/// writes its share of the results (no lock). Depart: each rank waits until every rank has
/// finished its share, because until then others may still read or write its buffers.
final class CollectiveSlot {
    let signature: CollectiveSignature
    let firstRank: Int
    var arrived: [Bool]
    var arrivedCount = 0
    var departedCount = 0
    /// Set when the ranks disagree; every rank of the slot throws it.
    var error: CommError?
    /// Per-rank addresses of the blocking collectives (valid while that rank is inside).
    var inputs: [UnsafePointer<Float>?]
    var outputs: [UnsafeMutablePointer<Float>?]
    /// Per-rank buffers of `iallReduce`, retained until the reduction is done.
    var buffers: [FloatBuffer?]
    /// `iallReduce` only: set by the last rank to arrive, after it has reduced every buffer.
    var completed = false
    /// `split` only: each rank's (color, key), and the new groups by color.
    var colorKeys: [(color: Int, key: Int)]
    var newGroups: [Int: InProcessGroup] = [:]

    init(signature: CollectiveSignature, firstRank: Int, size: Int) {
        self.signature = signature
        self.firstRank = firstRank
        arrived = Array(repeating: false, count: size)
        inputs = Array(repeating: nil, count: size)
        outputs = Array(repeating: nil, count: size)
        buffers = Array(repeating: nil, count: size)
        colorKeys = Array(repeating: (0, 0), count: size)
    }

    var isFull: Bool { arrivedCount == arrived.count }

    /// Group ranks that have not arrived yet, for timeout messages.
    var missing: [Int] { arrived.indices.filter { !arrived[$0] } }
}

struct ChannelKey: Hashable {
    var source: Int
    var destination: Int
    var tag: Int
}

/// Messages from one rank to another with one tag, matched in order: the k-th receive posted
/// takes the k-th message sent (MPI's non-overtaking rule).
final class Channel {
    /// Messages sent so far; and receives posted so far.
    var sentCount = 0
    var postedCount = 0
    /// Messages sent and not yet taken, by sequence number.
    var messages: [Int: [Float]] = [:]
}
