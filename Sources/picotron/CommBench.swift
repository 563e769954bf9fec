import ArgumentParser
import Distributed
import Foundation

/// `picotron comm-bench`: all-reduce bandwidth from 4 KB to 64 MB on this world, with the
/// same timing method as `scripts/allreduce_raw.c` so the two tables compare line by line:
/// per size, 3 warm-up calls, then `reps` repetitions of (barrier, `iters` back-to-back
/// in-place sum all-reduces timed with CLOCK_MONOTONIC); time per call is the best
/// repetition's mean, taken as the maximum over ranks.
///
/// algbw = bytes / time (the buffer each rank reduces); busbw = algbw · 2(N−1)/N, what each
/// rank moves on the wire with a ring algorithm (the NCCL-tests convention).
struct CommBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm-bench",
        abstract: "Measure all-reduce bandwidth (in-process with --ranks N, or MPI under mpirun).",
        discussion: """
            Examples:
              picotron comm-bench --ranks 2
              OMPI_MCA_pml=ob1 mpirun -np 2 picotron comm-bench
            Build with -c release; compare with scripts/allreduce_raw.c under the same mpirun.
            """)

    @Option(help: "In-process ranks when not started by mpirun (default 2).")
    var ranks: Int?

    @Option(help: "Smallest buffer in bytes.")
    var minBytes: Int = 4096

    @Option(help: "Largest buffer in bytes (67108864 = 64 MB); sizes go up by 4×.")
    var maxBytes: Int = 64 << 20

    @Option(help: "Timed repetitions per size; the best one counts.")
    var reps: Int = 5

    func validate() throws {
        guard minBytes >= 4, maxBytes >= minBytes, reps >= 1 else {
            throw ValidationError("need 4 <= --min-bytes <= --max-bytes and --reps >= 1")
        }
    }

    func run() throws {
        let (minBytes, maxBytes, reps) = (self.minBytes, self.maxBytes, self.reps)
        let status = Launcher.run(ranks: ranks ?? (Launcher.isUnderMPI ? nil : 2)) { world in
            let out = RankPrinter(world)
            let backend = world is MPICommunicator ? "MPI" : "in-process"
            out.rank0("# all-reduce (sum, in place), \(world.size) ranks, \(backend), best of \(reps) reps")
            out.rank0(row("bytes", "iters", "us/call", "algbw GB/s", "busbw GB/s"))
            var bytes = minBytes
            while bytes <= maxBytes {
                let iters = max(5, min(2000, (256 << 20) / bytes))
                let seconds = try timeAllReduce(world, count: bytes / 4, iters: iters, reps: reps)
                let algbw = Double(bytes) / seconds / 1e9
                let busbw = algbw * 2 * Double(world.size - 1) / Double(world.size)
                out.rank0(row(
                    "\(bytes)", "\(iters)", String(format: "%.1f", seconds * 1e6), String(format: "%.2f", algbw),
                    String(format: "%.2f", busbw)))
                bytes *= 4
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

/// Seconds per all-reduce of `count` floats: best repetition, slowest rank.
private func timeAllReduce(_ world: Communicator, count: Int, iters: Int, reps: Int) throws -> Double {
    var buffer = [Float](repeating: 0, count: count)
    var best = Double.infinity
    try buffer.withUnsafeMutableBufferPointer { p in
        for _ in 0 ..< 3 { try world.allReduce(p, op: .sum) }
        for _ in 0 ..< reps {
            try world.barrier()
            let t0 = monotonicSeconds()
            for _ in 0 ..< iters { try world.allReduce(p, op: .sum) }
            best = min(best, (monotonicSeconds() - t0) / Double(iters))
        }
    }
    var slowest = [Float(best)]
    try world.allReduce(&slowest, op: .max)
    return Double(slowest[0])
}

private func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

private func row(_ cells: String...) -> String {
    cells.map { $0.leftPadding(to: 12) }.joined()
}

extension String {
    fileprivate func leftPadding(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
