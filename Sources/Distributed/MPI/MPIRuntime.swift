import CMPI
import Foundation

/// Process-wide MPI state: initialise once, finalise at exit, turn error codes into
/// `CommError`. One of the two files that call MPI (with `MPICommunicator.swift`).
///
/// Start-up cost: OpenMPI's default point-to-point layer probes for network fabrics, which
/// makes `MPI_Init` take ≈ 0.2 s even on one machine. `export OMPI_MCA_pml=ob1` selects the
/// plain shared-memory/TCP layer and brings it to ≈ 25 ms; on a real cluster with a fast
/// network leave it unset so MPI can pick that network.
enum MPIRuntime {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var _worldRank = -1
    nonisolated(unsafe) private static var _running = false

    /// This process's rank in MPI_COMM_WORLD (-1 before `initialize`).
    static var worldRank: Int { lock.lock(); defer { lock.unlock() }; return _worldRank }

    /// True when this process was started by an MPI launcher (mpirun/mpiexec/srun), judged from
    /// the environment variables they set. Then the world is the MPI one; otherwise the
    /// launcher starts in-process ranks.
    static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// Ranks of this job on this machine (for sharing cores); 1 if unknown.
    static var localSize: Int {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"]
            .lazy.compactMap { env[$0].flatMap(Int.init) }.first ?? 1
    }

    /// Whether the launcher's body is running on this rank: an `exit()` then is a failure.
    static var bodyRunning: Bool {
        get { lock.lock(); defer { lock.unlock() }; return _running }
        set { lock.lock(); _running = newValue; lock.unlock() }
    }

    /// Initialises MPI once per process (later calls do nothing) and registers the exit guard.
    ///
    /// Thread level: we ask for `MPI_THREAD_MULTIPLE`. A rank's communication normally comes
    /// from one thread, but overlap code may wait on a request from another thread than the
    /// one that posted it (a compute thread finishing ring attention, a gradient hook), and
    /// FUNNELED/SERIALIZED would make that undefined behaviour. The price, measured with
    /// `scripts/allreduce_raw.c` on shared memory: ≈ 2–3 µs more per call below 64 KB (locks
    /// inside OpenMPI), nothing measurable from 256 KB up, where gradients and activations live.
    static func initialize() throws(CommError) {
        lock.lock()
        defer { lock.unlock() }
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        if flag != 0 { return }
        var provided: Int32 = 0
        let required = Int32(MPI_THREAD_MULTIPLE)
        try check(MPI_Init_thread(nil, nil, required, &provided), "MPI_Init_thread")
        guard provided >= required else {
            throw .mpi(
                call: "MPI_Init_thread", code: 0,
                message: "this MPI provides thread level \(provided), but MPI_THREAD_MULTIPLE (\(required)) is "
                    + "needed; use an MPI built with thread support (OpenMPI: --enable-mpi-thread-multiple)")
        }
        MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return())
        var r: Int32 = 0
        MPI_Comm_rank(cmpi_comm_world(), &r)
        _worldRank = Int(r)
        atexit { MPIRuntime.atExit() }
    }

    /// Exit guard. A normal exit finalises MPI (without it mpirun reports the rank as failed).
    /// An `exit()` while the body still runs means the others may be waiting on this rank in
    /// a collective: finalising would hang, so abort the job instead.
    private static func atExit() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized != 0 { return }
        if bodyRunning {
            fputs("rank \(_worldRank): exit() called while the program was running; aborting the MPI job\n", stderr)
            fflush(stderr)
            MPI_Abort(cmpi_comm_world(), 1)
        }
        MPI_Finalize()
    }

    /// Prints `message` and ends every process of the job (`MPI_Abort` on the world). Used
    /// when a rank fails: the others may be blocked waiting for it and would never return.
    static func abortJob(_ message: String) -> Never {
        fputs(message + "\n", stderr)
        fflush(stderr)
        fflush(stdout)
        MPI_Abort(cmpi_comm_world(), 1)
        exit(1)
    }

    static var isFinalized: Bool {
        var flag: Int32 = 0
        MPI_Finalized(&flag)
        return flag != 0
    }

    /// Throws `CommError.mpi` with MPI's own description unless `rc` is `MPI_SUCCESS`.
    static func check(_ rc: Int32, _ call: @autoclosure () -> String) throws(CommError) {
        guard rc != MPI_SUCCESS else { return }
        var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(rc, &text, &length)
        throw .mpi(call: call(), code: rc, message: String(cString: text))
    }
}
