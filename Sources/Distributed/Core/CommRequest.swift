/// A non-blocking operation in flight. `wait()` blocks until it is complete and returns its
/// result: the received floats for `irecv`, the reduced buffer for `iallReduce`, nothing for
/// `isend`.
///
/// Who waits for whom: `wait()` on an `irecv` waits for the matching send; on an `isend` for
/// the matching receive to be posted (in-process) or for the send buffer to be reusable
/// (MPI); on an `iallReduce` for every rank of the group to have posted its buffer.
/// Requests may be waited in any order. Waiting twice returns the same result (or error).
///
/// Every request should be waited. Dropping one unwaited never blocks: MPI is told to
/// complete it in the background (`MPI_Request_free`) and its buffer is kept alive.
public final class CommRequest<Result> {
    private enum State {
        case pending
        case done(Result)
        case failed(CommError)
    }

    private var state: State = .pending
    private let complete: () throws(CommError) -> Result
    private let abandon: (() -> Void)?

    /// - Parameters:
    ///   - complete: blocks until the operation is done; called at most once.
    ///   - abandon: called on deinit if `complete` never ran.
    init(complete: @escaping () throws(CommError) -> Result, abandon: (() -> Void)? = nil) {
        self.complete = complete
        self.abandon = abandon
    }

    /// A request that is already complete.
    init(completed result: Result) {
        state = .done(result)
        complete = { () throws(CommError) -> Result in result }
        abandon = nil
    }

    deinit {
        if case .pending = state { abandon?() }
    }

    /// True once `wait()` has returned or thrown.
    public var isWaited: Bool {
        if case .pending = state { return false }
        return true
    }

    /// Blocks until the operation completes. Not thread-safe: one thread waits on a request.
    @discardableResult
    public func wait() throws(CommError) -> Result {
        switch state {
        case .done(let r): return r
        case .failed(let e): throw e
        case .pending:
            do {
                let r = try complete()
                state = .done(r)
                return r
            } catch {
                state = .failed(error)
                throw error
            }
        }
    }

    /// A request whose `wait()` waits for this one, then transforms its result.
    public func map<T>(_ transform: @escaping (Result) -> T) -> CommRequest<T> {
        CommRequest<T>(complete: { () throws(CommError) -> T in transform(try self.wait()) })
    }
}
