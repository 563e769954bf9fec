// lesson-tp: Lesson 2, tensor parallelism, live. Runs on in-process ranks (`--ranks N`,
// default 2) or on the MPI world when started by mpirun; exits non-zero if any check against
// the single-process reference fails. The work is in Sources/Step2Lesson/TensorParallelLesson.swift.

import ArgumentParser
import Distributed
import Foundation
import Step2Lesson
import Step2_TensorParallel
import TensorCore

struct LessonTP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson-tp",
        abstract: "Lesson 2: tensor parallelism, checked against the single-process reference.",
        discussion: """
            In-process:  swift run lesson-tp --ranks 4
            Under MPI:   mpirun -np 4 "$(swift build --show-bin-path)/lesson-tp"
            The lesson model has 8 query heads and 4 key/value heads: tp 1, 2 or 4.
            Read Lessons/02-tensor-parallel.md alongside.
            """)

    @Option(parsing: .unconditional, help: "Ranks as threads of this process, = the tensor-parallel size (ignored under mpirun).")
    var ranks: Int?

    @Option(parsing: .unconditional, help: "AdamW steps to train and compare with the single-process run.")
    var steps: Int = 3

    @Flag(name: .customLong("verify-only"), help: "Print only the cut and the checks (for CI under mpirun).")
    var verifyOnly = false

    @Flag(name: .customLong("no-timing"), help: "Skip the tp 1 vs tp N timings.")
    var noTiming = false

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be >= 1, got \(ranks)") }
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1, got \(steps)") }
    }

    func run() throws {
        var options = TensorParallelLesson.Options()
        (options.steps, options.verifyOnly, options.timing) = (steps, verifyOnly, !noTiming)
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? ranks : (ranks ?? 2)) { world in
            try TensorParallelLesson.run(world: world, options: options) { RankPrinter(world).rank0($0) }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

OpenBLASSetup.restartIfUseful()   // OpenBLAS settings must be in place before it loads: see there
LessonTP.main()
