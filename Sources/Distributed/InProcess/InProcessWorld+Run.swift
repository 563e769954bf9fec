import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension InProcessWorld {
    /// Runs `body` on every rank, each on its own thread, and returns each rank's result in
    /// rank order. When a rank throws, the world is aborted so the others are released from
    /// whatever they wait on (they see `CommError.peerFailed`) instead of hanging.
    ///
    /// Threads get a 64 MB stack: deep autograd graphs recurse. They are started with
    /// `pthread_create` rather than Foundation's `Thread`, whose `start()` cannot report a thread
    /// the system refuses (too many threads, no memory for the stack): the run then slept forever
    /// waiting for a rank that never ran. Here every thread first waits at a gate until all are
    /// created; a refusal cancels the gate (the started threads return without running `body`,
    /// so they print nothing), and `run` throws `CommError.resources` naming the rank and the
    /// system's reason.
    public func run<T>(_ body: @escaping (InProcessCommunicator) throws -> T) throws(CommError)
        -> [Result<T, any Error>]
    {
        let results = ResultBox<T>(count: size)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, Self.stackSize)
        let gate = StartGate()
        var threads: [pthread_t] = []
        var refused: CommError?
        for r in 0 ..< size {
            let comm = communicators[r]
            let task = RankTask { [self] in
                guard gate.passes() else { return }
                do {
                    results.set(r, .success(try body(comm)))
                } catch {
                    results.set(r, .failure(error))
                    if case CommError.peerFailed = error {} else {
                        abort(rank: r, message: String(describing: error))
                    }
                }
            }
            let context = Unmanaged.passRetained(task).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, &attributes, { context in
                Unmanaged<RankTask>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
            guard rc == 0 else {
                Unmanaged<RankTask>.fromOpaque(context).release()
                let message = "could not start rank \(r)'s thread (of \(size)): \(String(cString: strerror(rc))); "
                    + "lower --ranks, raise the thread limit (ulimit -u) or the memory limit (ulimit -v; each "
                    + "rank's stack reserves \(Self.stackSize >> 20) MB), or run more ranks as processes with mpirun"
                refused = .resources(message)
                break
            }
            threads.append(thread)
        }
        gate.open(run: refused == nil)
        for thread in threads { pthread_join(thread, nil) }
        if let refused { throw refused }
        return results.values.map { $0! }
    }

    /// Stack size of a rank's thread: deep autograd graphs recurse.
    static let stackSize = 64 << 20
}

/// What a rank's thread runs, handed to `pthread_create` as its context pointer.
private final class RankTask {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Holds the rank threads until all of them exist, then lets them run, or sends them home.
private final class StartGate: @unchecked Sendable {
    private let cond = NSCondition()
    private var decision: Bool?

    func open(run: Bool) {
        cond.lock()
        decision = run
        cond.broadcast()
        cond.unlock()
    }

    /// Waits for `open` and returns whether to run.
    func passes() -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while decision == nil { cond.wait() }
        return decision!
    }
}

/// Per-rank results written by the rank threads.
private final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Result<T, any Error>?]

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    func set(_ r: Int, _ value: Result<T, any Error>) {
        lock.lock()
        storage[r] = value
        lock.unlock()
    }

    var values: [Result<T, any Error>?] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
