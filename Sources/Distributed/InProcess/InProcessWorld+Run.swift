import Foundation

extension InProcessWorld {
    /// Runs `body` on every rank, each on its own thread, and returns each rank's result in
    /// rank order. When a rank throws, the world is aborted so the others are released from
    /// whatever they wait on (they see `CommError.peerFailed`) instead of hanging.
    ///
    /// Threads get a 64 MB stack: deep autograd graphs recurse.
    public func run<T>(_ body: @escaping (InProcessCommunicator) throws -> T) -> [Result<T, any Error>] {
        let results = ResultBox<T>(count: size)
        let done = DispatchGroup()
        for r in 0 ..< size {
            let comm = communicators[r]
            done.enter()
            let thread = Thread { [self] in
                defer { done.leave() }
                do {
                    results.set(r, .success(try body(comm)))
                } catch {
                    results.set(r, .failure(error))
                    if case CommError.peerFailed = error {} else {
                        abort(rank: r, message: String(describing: error))
                    }
                }
            }
            thread.name = "rank \(r)"
            thread.stackSize = 64 << 20
            thread.start()
        }
        done.wait()
        return results.values.map { $0! }
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
