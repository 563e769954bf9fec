import Foundation

/// The kinds of operation the ledger counts. Non-blocking calls count as their blocking
/// twins (`iallReduce` as `allReduce`, `isend` as `send`, `irecv` as `recv`): the traffic is
/// the same.
public enum CommOp: String, Sendable, CaseIterable, Comparable {
    case allReduce, allGather, reduceScatter, broadcast, send, recv, barrier, split

    public static func < (a: CommOp, b: CommOp) -> Bool { a.index < b.index }
}

/// What one rank communicated, per group and operation: a value, so a lesson can take one
/// before and after a step and print the difference beside the textbook formula.
///
/// ### What the numbers mean
/// - `calls`: how many times this rank called the operation.
/// - `bytes`: the payload this rank hands to the operation, `4 × element count`:
///   the buffer of an all-reduce or broadcast (on every rank, root included), the *input*
///   of an all-gather or reduce-scatter, the message of a send or receive; 0 for barrier/split.
/// - `ringBytes`: the textbook estimate of what this rank puts on the wire with ring
///   algorithms, for group size N and payload B:
///   all-reduce 2(N−1)/N·B, all-gather (N−1)·B, reduce-scatter (N−1)/N·B,
///   broadcast (N−1)/N·B (pipelined chain, averaged over ranks), send B, receive 0.
///   Real libraries may pick other algorithms (MPI uses recursive doubling for small
///   messages); the in-process backend copies through shared memory. It is a model, not a
///   measurement.
public struct CommStats: Sendable, Equatable, CustomStringConvertible {
    public struct Key: Hashable, Sendable, Comparable {
        public let group: String
        public let op: CommOp
        public static func < (a: Key, b: Key) -> Bool { (a.group, a.op) < (b.group, b.op) }
    }

    public struct Entry: Sendable, Equatable {
        public var calls = 0
        public var bytes = 0
        public var ringBytes = 0
        /// Seconds the rank's own thread spent inside these calls (or waiting for them to complete):
        /// time it could not compute. Measured, unlike the byte counts' model.
        public var seconds = 0.0
        /// Seconds a background thread spent waiting for them while the rank computed (a bucket's
        /// all-reduce during the backward): hidden time, not counted in `seconds`.
        public var overlappedSeconds = 0.0
        public init(calls: Int = 0, bytes: Int = 0, ringBytes: Int = 0, seconds: Double = 0, overlappedSeconds: Double = 0) {
            self.calls = calls
            self.bytes = bytes
            self.ringBytes = ringBytes
            self.seconds = seconds
            self.overlappedSeconds = overlappedSeconds
        }
        /// The counts and bytes alone (the times zeroed): what formulas predict exactly.
        public var traffic: Entry { Entry(calls: calls, bytes: bytes, ringBytes: ringBytes) }

        static func + (a: Entry, b: Entry) -> Entry {
            Entry(calls: a.calls + b.calls, bytes: a.bytes + b.bytes, ringBytes: a.ringBytes + b.ringBytes,
                  seconds: a.seconds + b.seconds, overlappedSeconds: a.overlappedSeconds + b.overlappedSeconds)
        }
        static func - (a: Entry, b: Entry) -> Entry {
            Entry(calls: a.calls - b.calls, bytes: a.bytes - b.bytes, ringBytes: a.ringBytes - b.ringBytes,
                  seconds: a.seconds - b.seconds, overlappedSeconds: a.overlappedSeconds - b.overlappedSeconds)
        }
    }

    public internal(set) var entries: [Key: Entry] = [:]

    public init() {}

    /// The counters of one group and operation (zero if never called).
    public subscript(group: String, op: CommOp) -> Entry {
        entries[Key(group: group, op: op)] ?? Entry()
    }

    /// Sum over all operations of `group`, or over everything if `group` is nil.
    public func total(group: String? = nil) -> Entry {
        entries.filter { group == nil || $0.key.group == group }.values.reduce(Entry(), +)
    }

    /// The group names that appear, sorted.
    public var groups: [String] { Set(entries.keys.map(\.group)).sorted() }

    /// `self − earlier`, entry by entry: the traffic of what happened in between.
    public func since(_ earlier: CommStats) -> CommStats {
        var d = CommStats()
        for (k, e) in entries {
            let diff = e - (earlier.entries[k] ?? Entry())
            if diff != Entry() { d.entries[k] = diff }
        }
        return d
    }

    /// One line per group and operation: `tp     allReduce   12 calls   3.1 MB  ring 3.1 MB`.
    public var description: String {
        entries.keys.sorted().map { k in
            let e = entries[k]!
            let g = k.group.padding(toLength: max(6, k.group.count), withPad: " ", startingAt: 0)
            let o = k.op.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
            let bytes = CommStats.format(bytes: e.bytes), ring = CommStats.format(bytes: e.ringBytes)
            return "\(g) \(o) \(e.calls) calls  \(bytes)  ring \(ring)"
        }.joined(separator: "\n")
    }

    /// `1536 B`, `12.0 KB`, `3.1 MB`, `1.20 GB` (powers of 1000).
    public static func format(bytes: Int) -> String {
        let b = Double(bytes)
        if b < 1e3 { return "\(bytes) B" }
        if b < 1e6 { return String(format: "%.1f KB", b / 1e3) }
        if b < 1e9 { return String(format: "%.1f MB", b / 1e6) }
        return String(format: "%.2f GB", b / 1e9)
    }
}

/// The counters of one rank, shared by its world communicator and every communicator split
/// from it. Thread-safe (in-process ranks record from their own threads).
///
/// Recording is on every call's path, so each communicator resolves its group's slot once
/// (`counters(for:)`) and a call only locks and adds: ≈ 20 ns, invisible next to even a 4 KB
/// MPI all-reduce.
public final class CommLedger: @unchecked Sendable {
    fileprivate let lock = NSLock()
    private var groups: [String: GroupCounters] = [:]

    public init() {}

    /// A copy of the counters now.
    public func snapshot() -> CommStats {
        lock.lock()
        defer { lock.unlock() }
        var stats = CommStats()
        for (name, g) in groups {
            for op in CommOp.allCases where g.entries[op.index].calls > 0 {
                stats.entries[CommStats.Key(group: name, op: op)] = g.entries[op.index]
            }
        }
        return stats
    }

    public func reset() {
        lock.lock()
        for g in groups.values { g.entries = GroupCounters.zero }
        lock.unlock()
    }

    /// The counters of `group` (communicators with the same name on one rank share them).
    func counters(for group: String) -> GroupCounters {
        lock.lock()
        defer { lock.unlock() }
        if let g = groups[group] { return g }
        let g = GroupCounters()
        groups[group] = g
        return g
    }

    /// Counts one call of `op` on a group of `groupSize` ranks with `count` floats of payload.
    func record(_ g: GroupCounters, groupSize n: Int, op: CommOp, count: Int) {
        let bytes = count * MemoryLayout<Float>.size
        let ring: Int
        switch op {
        case .allReduce: ring = 2 * (n - 1) * bytes / n
        case .allGather: ring = (n - 1) * bytes
        case .reduceScatter, .broadcast: ring = (n - 1) * bytes / n
        case .send: ring = bytes
        case .recv, .barrier, .split: ring = 0
        }
        lock.lock()
        g.entries[op.index].calls += 1
        g.entries[op.index].bytes += bytes
        g.entries[op.index].ringBytes += ring
        lock.unlock()
    }
}

extension CommLedger {
    /// Adds `seconds` spent in (or waiting for) a call of `op`: to `seconds` on a rank's own thread,
    /// to `overlappedSeconds` inside `CommClock.inBackground`.
    func addTime(_ g: GroupCounters, op: CommOp, seconds: Double) {
        let background = CommClock.isBackground
        lock.lock()
        if background { g.entries[op.index].overlappedSeconds += seconds } else { g.entries[op.index].seconds += seconds }
        lock.unlock()
    }

    /// Runs `body` (a blocking call of `op`) and adds the time it took.
    func timed<T>(_ g: GroupCounters, _ op: CommOp, _ body: () throws(CommError) -> T) throws(CommError) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { addTime(g, op: op, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        return try body()
    }
}

/// Which thread a wait happens on: a rank's own (the default: time it cannot compute), or a
/// background thread that waits while the rank computes (`inBackground`).
public enum CommClock {
    nonisolated(unsafe) private static var key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    static var isBackground: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` with its communication waits counted as overlapped, not blocked.
    public static func inBackground<T>(_ body: () throws -> T) rethrows -> T {
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, nil) }
        return try body()
    }
}

extension Communicator {
    /// Counts `seconds` this rank's thread waited for an operation of this group outside the
    /// communicator (for a request another thread waits on: a bucket's all-reduce).
    public func recordWait(_ op: CommOp, seconds: Double) {
        ledger.addTime(ledger.counters(for: name), op: op, seconds: seconds)
    }
}

/// One group's counters, one entry per `CommOp`; guarded by the ledger's lock.
final class GroupCounters {
    static let zero = [CommStats.Entry](repeating: CommStats.Entry(), count: CommOp.allCases.count)
    var entries = zero
}

extension CommOp {
    /// Position in `allCases`.
    var index: Int {
        switch self {
        case .allReduce: 0
        case .allGather: 1
        case .reduceScatter: 2
        case .broadcast: 3
        case .send: 4
        case .recv: 5
        case .barrier: 6
        case .split: 7
        }
    }
}
