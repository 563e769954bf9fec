import COpenBLAS
import Foundation

/// One entry point for every program that runs on ranks: under `mpirun` it runs `body` once
/// per process on the MPI world; otherwise it starts `ranks` in-process ranks as threads.
///
///     let status = Launcher.run(ranks: options.ranks) { world in
///         let grid = try ProcessGrid(dp: 2, pp: 1, cp: 1, tp: 2, world: world)
///         RankPrinter(world).rank0("\(grid)")
///     }
///     exit(status)
///
/// Failures: if a rank throws, in-process the others are released from their waits and
/// `run` returns 1 after printing which rank failed and why; under MPI the failing rank prints
/// and calls `MPI_Abort`, so every process of the job ends within seconds.
public enum Launcher {
    /// True when started by mpirun/mpiexec/srun (judged from their environment variables).
    public static var isUnderMPI: Bool { MPIRuntime.launchedByMPI }

    /// Under MPI, the processes of this job on this machine (from the launcher's environment; 1 if
    /// it does not say): they share its cores and memory.
    public static var mpiProcessesOnThisMachine: Int { MPIRuntime.localSize }

    /// Under MPI, this process's rank among those of its machine, from the launcher's environment
    /// (nil when it does not say).
    public static var localRank: Int? {
        guard isUnderMPI else { return nil }
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"].lazy.compactMap { env[$0].flatMap(Int.init) }.first
    }

    /// Whether this process is the job's first (rank 0), judged before MPI starts from the launcher's
    /// environment: what every rank would say alike (config notes, warnings) is printed by it only.
    public static var isFirstProcess: Bool {
        guard isUnderMPI else { return true }
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"].lazy.compactMap { env[$0].flatMap(Int.init) }.first ?? 0 == 0
    }

    /// Runs `body` on every rank and returns the exit status: 0 if all ranks succeeded.
    /// - Parameters:
    ///   - ranks: in-process rank count (default 1). Under MPI it must be nil or the MPI world
    ///     size.
    ///   - timeout: seconds a rank waits for a peer before the run fails (in-process, see
    ///     `InProcessWorld`) or the job is ended (MPI, see `MPIWatchdog`); default
    ///     `PICOTRON_COMM_TIMEOUT`, else 300; 0 for none.
    public static func run(
        ranks: Int?, timeout: Double? = nil, _ body: @escaping (Communicator) throws -> Void
    ) -> Int32 {
        isUnderMPI ? runMPI(ranks: ranks, timeout: timeout, body)
            : runInProcess(ranks: ranks ?? 1, timeout: timeout, body)
    }

    private static func runInProcess(ranks: Int, timeout: Double?, _ body: @escaping (Communicator) throws -> Void)
        -> Int32
    {
        let world: InProcessWorld
        do {
            world = try InProcessWorld(size: ranks, timeout: timeout)
        } catch {
            RankPrinter.write("error: \(error)", to: stderr)
            return 2
        }
        setBLASThreads(blasThreads(ranksSharingCores: ranks))
        let results: [Result<Void, any Error>]
        do {
            results = try world.run { try body($0) }
        } catch {
            RankPrinter.write("error: \(error)", to: stderr)
            return 2
        }
        var released: [Int] = []
        var failed: [(message: String, ranks: [Int])] = []   // in order of first rank
        for (r, result) in results.enumerated() {
            guard case .failure(let error) = result else { continue }
            if case CommError.peerFailed = error {
                released.append(r)
            } else if let i = failed.firstIndex(where: { $0.message == "\(error)" }) {
                failed[i].ranks.append(r)
            } else {
                failed.append(("\(error)", [r]))
            }
        }
        // Ranks that fail with the same message (a grid that does not fit the world fails on every
        // rank) are reported once, not once per rank.
        for (message, ranks) in failed {
            let who = ranks.count == 1 ? "rank \(ranks[0])"
                : ranks.count == world.size ? "every rank (\(ranks.count))" : "ranks \(rankList(ranks))"
            RankPrinter.write("\(who) failed: \(message)", to: stderr)
        }
        if !released.isEmpty, let reason = world.abortReason {
            RankPrinter.write("rank(s) \(rankList(released)) stopped because rank \(reason.rank) failed", to: stderr)
        }
        return results.allSatisfy { if case .success = $0 { true } else { false } } ? 0 : 1
    }

    /// Ascending ranks as a short list, runs of three or more as ranges: "0, 2–5, 9".
    static func rankList(_ ranks: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < ranks.count {
            var j = i
            while j + 1 < ranks.count && ranks[j + 1] == ranks[j] + 1 { j += 1 }
            parts += j - i >= 2 ? ["\(ranks[i])–\(ranks[j])"] : ranks[i...j].map(String.init)
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }

    private static func runMPI(ranks: Int?, timeout: Double?, _ body: (Communicator) throws -> Void) -> Int32 {
        if let timeout { MPIWatchdog.shared.timeout = timeout }
        let world: MPICommunicator
        do {
            world = try MPICommunicator.world()
        } catch {
            RankPrinter.write("error: could not start MPI: \(error)", to: stderr)
            return 1
        }
        if let ranks, ranks != world.size {
            RankPrinter(world).rank0(
                "error: --ranks \(ranks) asks for \(ranks) ranks but mpirun started \(world.size) processes: "
                    + "drop --ranks under mpirun, or start mpirun -np \(ranks)")
            return 2
        }
        setBLASThreads(blasThreads(ranksSharingCores: MPIRuntime.localSize))
        MPIRuntime.bodyRunning = true
        do {
            try body(world)
        } catch {
            MPIRuntime.abortJob("rank \(world.rank) failed: \(error)")
        }
        MPIRuntime.bodyRunning = false
        return 0
    }

    /// BLAS threads per rank when `ranks` ranks share this machine's cores:
    /// `max(1, cores / ranks)`, so ranks never oversubscribe the cores (two ranks with two
    /// BLAS threads each on two cores lose up to half their speed). An explicit
    /// `OPENBLAS_NUM_THREADS` wins.
    public static func blasThreads(ranksSharingCores ranks: Int) -> Int {
        if let n = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"].flatMap(Int.init), n >= 1 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, ranks))
    }

    /// Sets OpenBLAS's thread count. It is process-wide: in-process ranks share one setting,
    /// which is why `run` computes it from the ranks in this process.
    public static func setBLASThreads(_ n: Int) {
        openblas_set_num_threads(Int32(n))
    }
}
