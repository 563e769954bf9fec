// lesson-4d: Lesson 5, the four dimensions together, live. Runs on in-process ranks (`--ranks N`,
// default 8) or on the MPI world when started by mpirun; exits non-zero if any grid differs from the
// single process. The work is in Sources/Step5Lesson/FourDLesson.swift.

import ArgumentParser
import Distributed
import Foundation
import Step5Lesson
import TensorCore

struct Lesson4D: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson-4d",
        abstract: "Lesson 5: data, tensor, pipeline and context parallelism together, as picotron train runs them, "
            + "checked against the single process.",
        discussion: """
            In-process:  swift run lesson-4d --ranks 8
            Under MPI:   mpirun -np 8 --oversubscribe "$(swift build --show-bin-path)/lesson-4d"
            Without sizes it trains dp 2 × pp 2 × tp 2 on 8 ranks (tp 2, then pp 2, then dp), and the same \
            world with cp 2. Read Lessons/05-4d-parallel.md alongside.
            """)

    @Option(parsing: .unconditional, help: "Ranks as threads of this process (ignored under mpirun).")
    var ranks: Int?
    @Option(parsing: .unconditional, help: "Data-parallel size (default: what the others leave).") var dp: Int?
    @Option(parsing: .unconditional, help: "Tensor-parallel size (default 2 when the world is even).") var tp: Int?
    @Option(parsing: .unconditional, help: "Pipeline stages (default 2 when 4 divides the world).") var pp: Int?
    @Option(parsing: .unconditional, help: "Context-parallel size (default 1; a second grid with cp 2 runs too).") var cp: Int?

    @Flag(name: .customLong("verify-only"), help: "Print only the layout and the checks (for CI under mpirun).")
    var verifyOnly = false

    @Flag(help: "Leave out the tokens-per-second table (its runs take the longest).")
    var noThroughput = false

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be >= 1, got \(ranks)") }
        for (name, v) in [("dp", dp), ("tp", tp), ("pp", pp), ("cp", cp)] {
            if let v, v < 1 { throw ValidationError("--\(name) must be >= 1, got \(v)") }
        }
    }

    func run() throws {
        var options = FourDLesson.Options()
        (options.verifyOnly, options.dp, options.tp, options.pp, options.cp) = (verifyOnly, dp, tp, pp, cp)
        options.throughput = !noThroughput
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? ranks : (ranks ?? 8)) { world in
            try FourDLesson.run(world: world, options: options) { RankPrinter(world).rank0($0) }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

OpenBLASSetup.restartIfUseful()   // OpenBLAS settings must be in place before it loads: see there
Lesson4D.main()
