import Foundation

/// N ranks as threads of one process: the backend of `swift test` and of the lessons.
///
/// Semantics match the MPI backend, plus three guarantees MPI cannot give:
/// - reductions sum in rank order 0, 1, 2, …, so results repeat bit for bit and are
///   identical on every rank;
/// - a failure on one rank (`abort`, a timeout, or a thrown error inside `run`) releases every
///   rank blocked in a collective, send or receive with `CommError.peerFailed`: no deadlock;
/// - a rank that waits longer than `timeout` seconds for a peer aborts the world with a
///   message saying what it was waiting for and for whom.
///
/// All shared state (collective slots, message channels, the abort flag) lives under one
/// condition variable: with at most a handful of ranks, one lock is simpler than many and
/// the data copies run outside it.
public final class InProcessWorld: @unchecked Sendable {
    public let size: Int

    /// Seconds a rank waits for a peer before giving up; 0 (or infinity) waits for ever. Default:
    /// the environment variable `PICOTRON_COMM_TIMEOUT`, else 300 (the same setting as under MPI).
    public var timeout: Double {
        get { cond.lock(); defer { cond.unlock() }; return _timeout }
        set { cond.lock(); _timeout = newValue; cond.unlock() }
    }

    /// The world communicator of each rank, indexed by rank.
    public private(set) var communicators: [InProcessCommunicator] = []

    // Shared state, guarded by `cond`.
    let cond = NSCondition()
    private var _timeout: Double
    private var failure: (rank: Int, message: String)?
    private var groupCount = 0

    /// - Parameter timeout: seconds before a waiting rank gives up (see `timeout`).
    public init(size: Int, timeout: Double? = nil) throws(CommError) {
        try Self.checkSize(size)
        self.size = size
        let env = ProcessInfo.processInfo.environment["PICOTRON_COMM_TIMEOUT"].flatMap(Double.init)
        _timeout = timeout ?? env ?? 300
        let group = makeGroup(name: "world", members: Array(0 ..< size))
        communicators = (0 ..< size).map { r in
            InProcessCommunicator(world: self, group: group, rank: r, worldRank: r, name: "world", ledger: CommLedger())
        }
    }

    /// The most in-process ranks this machine runs: 256 (each rank is a thread with a 64 MB stack
    /// reservation, and every rank of a training run holds its own model replica and activations),
    /// and at most half of the user's thread limit (`ulimit -u` counts every thread of every process
    /// of the user, so the other half is left to them, BLAS's threads and the rest).
    public static var maxRanks: Int {
        let cap = 256
        var limit = rlimit()
        #if os(Linux)   // glibc's RLIMIT_NPROC is a macro over this enum case
        let got = getrlimit(__rlimit_resource_t(__RLIMIT_NPROC.rawValue), &limit) == 0
        #else
        let got = getrlimit(RLIMIT_NPROC, &limit) == 0
        #endif
        guard got, limit.rlim_cur != rlim_t.max else { return cap }   // RLIM_INFINITY is all ones
        return max(1, min(cap, Int(clamping: limit.rlim_cur / 2)))
    }

    /// Throws unless `size` in-process ranks can run here: at least 1, at most `maxRanks`.
    public static func checkSize(_ size: Int) throws(CommError) {
        guard size >= 1 else {
            throw .invalidArgument("an in-process world needs at least 1 rank, got \(size)")
        }
        let most = maxRanks
        guard size <= most else {
            let why = most == 256 ? "this implementation's cap of 256 threads"
                : "half of this user's thread limit (ulimit -u)"
            throw .resources("\(size) in-process ranks are more than this machine runs as threads of one process: "
                             + "at most \(most) (\(why)); lower --ranks, or start more ranks as processes: "
                             + "mpirun -np \(size)")
        }
    }

    /// The first failure, if the world was aborted: the failing world rank and its message.
    public var abortReason: (rank: Int, message: String)? {
        cond.lock(); defer { cond.unlock() }
        return failure
    }

    /// Marks the world failed because of `rank` and wakes every waiting rank, which then
    /// throws `CommError.peerFailed`. The first abort wins; later ones are ignored.
    public func abort(rank: Int, message: String) {
        cond.lock()
        abortLocked(rank: rank, message: message)
        cond.unlock()
    }

    func abortLocked(rank: Int, message: String) {
        if failure == nil { failure = (rank, message) }
        cond.broadcast()
    }

    func makeGroup(name: String, members: [Int]) -> InProcessGroup {
        groupCount += 1
        return InProcessGroup(id: groupCount, name: name, members: members)
    }

    /// Throws if the world is aborted. Call with `cond` held.
    func checkAbortLocked() throws(CommError) {
        if let f = failure { throw .peerFailed(rank: f.rank, message: f.message) }
    }

    /// Blocks, with `cond` held, until `ready()` holds. Throws `peerFailed` if the world is
    /// aborted meanwhile; after `timeout` seconds aborts the world and throws `timeout`.
    /// `ready` is checked first, so work that completed just before an abort still counts.
    func waitLocked(worldRank: Int, for what: () -> String, until ready: () -> Bool) throws(CommError) {
        // No timeout (0 or infinity): wait for ever. (`wait(until: .distantFuture)` traps in Foundation.)
        let deadline = _timeout > 0 && _timeout.isFinite ? Date(timeIntervalSinceNow: _timeout) : nil
        while !ready() {
            try checkAbortLocked()
            guard let deadline else { cond.wait(); continue }
            if !cond.wait(until: deadline) && !ready() {
                try checkAbortLocked()
                let message = "rank \(worldRank) waited \(Self.format(_timeout)) s \(what()); "
                    + "check that every rank makes the same calls in the same order "
                    + "(or raise the timeout: PICOTRON_COMM_TIMEOUT=seconds)"
                abortLocked(rank: worldRank, message: message)
                throw .timeout(message)
            }
        }
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
