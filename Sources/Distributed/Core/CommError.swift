/// Everything a communicator can throw. Each message names the rank, the group, the values
/// involved and, where there is one, the fix.
public enum CommError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A bad argument on this rank: a peer or root out of range, a negative tag, buffer sizes
    /// that do not fit the operation. Nothing was communicated.
    case invalidArgument(String)
    /// Ranks of one group called different collectives (or the same one with different
    /// element counts, roots or reduce operations) at the same point of the program.
    /// Every rank of that collective receives the same message.
    case mismatch(String)
    /// This rank waited longer than the world's timeout for a peer. The world is aborted, so
    /// every other blocked rank is released too.
    case timeout(String)
    /// This rank was released from a wait because another rank failed; `rank` is that rank's
    /// world rank and `message` its error.
    case peerFailed(rank: Int, message: String)
    /// An MPI call returned an error code (communicators use MPI_ERRORS_RETURN).
    case mpi(call: String, code: Int32, message: String)
    /// The parallel sizes do not fit the world (see `ProcessGrid`).
    case badGrid(String)
    /// The machine cannot give the run what it asks for: more in-process ranks than it can run as
    /// threads, or a rank's thread the system refused to start.
    case resources(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .mismatch(let m): return "mismatched collective: \(m)"
        case .timeout(let m): return "timeout: \(m)"
        case .peerFailed(let rank, let m): return "stopped because rank \(rank) failed: \(m)"
        case .mpi(let call, let code, let m): return "\(call) failed with MPI error \(code): \(m)"
        case .badGrid(let m): return m
        case .resources(let m): return m
        }
    }
}
