import Foundation

/// Printing for programs that run on many ranks at once: whole lines, never interleaved
/// mid-line between in-process ranks, flushed at once (under mpirun, stdout is a pipe and
/// would otherwise be held back until exit).
///
///     let out = RankPrinter(comm)
///     out.rank0("loss 2.31")          // printed once, by rank 0
///     out.all("my shard: 128 rows")   // "[rank 2/4] my shard: 128 rows" from every rank
public struct RankPrinter: Sendable {
    public let rank: Int
    public let size: Int

    public init(_ comm: Communicator) { self.init(rank: comm.rank, size: comm.size) }

    public init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// `[rank r/N] message` on stdout, from every rank.
    public func all(_ message: String) { Self.write(prefixed(message), to: stdout) }

    /// `message` on stdout, from rank 0 only.
    public func rank0(_ message: String) {
        if rank == 0 { Self.write(message, to: stdout) }
    }

    /// `[rank r/N] message` on stderr, from every rank.
    public func error(_ message: String) { Self.write(prefixed(message), to: stderr) }

    func prefixed(_ message: String) -> String {
        message.split(separator: "\n", omittingEmptySubsequences: false).map { "[rank \(rank)/\(size)] \($0)" }
            .joined(separator: "\n")
    }

    /// One lock for the process's output streams (in-process ranks share them).
    private static let lock = NSLock()

    static func write(_ text: String, to stream: UnsafeMutablePointer<FILE>) {
        lock.lock()
        defer { lock.unlock() }
        fputs(text + "\n", stream)
        fflush(stream)
    }
}
