// Run a body on N in-process ranks and get every rank's result back: what lesson tests and
// lesson executables do to compare all ranks with the single-process reference.

import Distributed
import Foundation

public enum InProcessRanks {
    /// A rank failed: which one and why (the first failure; ranks released because of it are
    /// not reported separately).
    public struct Failure: Error, CustomStringConvertible {
        public let rank: Int
        public let error: any Error
        public var description: String { "rank \(rank) failed: \(error)" }
    }

    /// Runs `body` on `ranks` threads, each with its world communicator, and returns the results
    /// in rank order. Throws `Failure` naming the first rank that threw for its own reason.
    /// - Parameter timeout: seconds a rank waits for a peer before the run fails (not hangs).
    public static func run<T>(_ ranks: Int, timeout: Double = 120,
                              _ body: @escaping (Communicator) throws -> T) throws -> [T] {
        let world = try InProcessWorld(size: ranks, timeout: timeout)
        let results = try world.run { comm in try body(comm) }
        var values = [T]()
        var released: Failure?
        for (r, result) in results.enumerated() {
            switch result {
            case .success(let v): values.append(v)
            case .failure(let e):
                if case CommError.peerFailed = e { released = released ?? Failure(rank: r, error: e); continue }
                throw Failure(rank: r, error: e)
            }
        }
        if let released { throw released }
        return values
    }
}
