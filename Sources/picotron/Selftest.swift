import ArgumentParser
import Distributed
import Foundation

/// `picotron selftest …`: built-in checks that run on whatever world the program is in.
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Built-in checks that run in-process (--ranks N) or under mpirun.",
        subcommands: [SelftestComm.self])
}

/// `picotron selftest comm`: every communicator operation on this world. Under
/// `mpirun -np N` it checks the MPI backend; otherwise `--ranks N` in-process ranks.
/// Prints each failure, then `N passed, N failed` (rank 0), and exits non-zero on any failure.
///
/// `--fail-rank R` makes rank R fail on purpose while the others wait for it in a collective,
/// to show that a failure ends the whole run within seconds, naming the rank. `--fail-mode hang`
/// makes it stall instead (it never joins): the others' communication timeout must end the run.
struct SelftestComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm",
        abstract: "Check every communicator operation on this world.",
        discussion: """
            Examples:
              picotron selftest comm --ranks 5
              mpirun -np 4 picotron selftest comm
              mpirun -np 2 picotron selftest comm --fail-rank 1 --fail-mode exit
              mpirun -np 2 picotron selftest comm --fail-rank 1 --fail-mode hang --timeout 5
            """)

    enum FailMode: String, ExpressibleByArgument, CaseIterable {
        case `throw`, exit, hang
    }

    @Option(help: "In-process ranks when not started by mpirun (default 4). Under mpirun: omit, or the -np value.")
    var ranks: Int?

    @Option(help: "Floats in the large-buffer checks (4194304 floats = 16 MB).")
    var largeCount: Int = 1 << 22

    @Option(help: "Seconds a rank waits for a peer before the run fails (default PICOTRON_COMM_TIMEOUT or 300).")
    var timeout: Double?

    @Option(help: "Make this rank fail on purpose, while the others wait for it in a collective.")
    var failRank: Int?

    @Option(help: "How --fail-rank fails: 'throw' an error, 'exit' the process with status 3, or 'hang' (never join).")
    var failMode: FailMode = .throw

    func run() throws {
        let anyFailed = Flag()
        let (failRank, failMode, largeCount) = (self.failRank, self.failMode, self.largeCount)
        // A stalled rank outlives the others' timeout by far (under MPI the job ends before it wakes).
        let limit = timeout ?? ProcessInfo.processInfo.environment["PICOTRON_COMM_TIMEOUT"].flatMap(Double.init) ?? 300
        let stall = limit > 0 && limit.isFinite ? min(600, 3 * limit) : 600
        let status = Launcher.run(ranks: ranks ?? (Launcher.isUnderMPI ? nil : 4), timeout: timeout) { world in
            let out = RankPrinter(world)
            if let failRank {
                guard failRank >= 0 && failRank < world.size else {
                    throw ValidationError("--fail-rank \(failRank) is not a rank of this world (0..<\(world.size))")
                }
                if world.rank == failRank {
                    Thread.sleep(forTimeInterval: 0.5)  // let the others block in their first collective
                    if failMode == .hang {
                        out.error("stalling \(Int(stall)) s on purpose without joining the others "
                                  + "(--fail-rank \(failRank) --fail-mode hang)")
                        Thread.sleep(forTimeInterval: stall)
                    }
                    if failMode == .exit {
                        out.error("exiting with status 3 on purpose (--fail-rank \(failRank) --fail-mode exit)")
                        Foundation.exit(3)
                    }
                    throw InjectedFailure(rank: failRank)
                }
            }
            let result = CommSelfTest.run(world: world, largeCount: largeCount)
            for failure in result.failures { out.error(failure) }
            out.rank0("\(result.passed) passed, \(result.failed) failed")
            if result.failed > 0 { anyFailed.set() }
        }
        if status != 0 { throw ExitCode(status) }
        if anyFailed.isSet { throw ExitCode.failure }
    }
}

private struct InjectedFailure: Error, CustomStringConvertible {
    let rank: Int
    var description: String { "rank \(rank) failed on purpose (--fail-rank \(rank))" }
}

/// A flag any rank thread may set.
private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
