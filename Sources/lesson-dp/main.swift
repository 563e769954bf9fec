// lesson-dp: Lesson 1, data parallelism, live. Runs on in-process ranks (`--ranks N`, default 2)
// or on the MPI world when started by mpirun; exits non-zero if any check against the
// single-process reference fails. The work is in Sources/Step1Lesson/DataParallelLesson.swift.

import ArgumentParser
import Distributed
import Foundation
import Step1Lesson
import Step1_DataParallel
import TensorCore

struct LessonDP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson-dp",
        abstract: "Lesson 1: data parallelism, checked against the single-process reference.",
        discussion: """
            In-process:  swift run lesson-dp --ranks 4
            Under MPI:   mpirun -np 4 "$(swift build --show-bin-path)/lesson-dp"
            Read Lessons/01-data-parallel.md alongside.
            """)

    @Option(parsing: .unconditional, help: "Ranks as threads of this process (ignored under mpirun, which sets the world size).")
    var ranks: Int?

    @Option(name: .customLong("bucket-mb"), help: ArgumentHelp(
        "Bucket capacity in MiB for bucketed data parallelism (torch and picotron default to 25; "
            + "the lesson model has 0.36 MB of gradients, so 0.05 makes several)."))
    var bucketMB: Double = 0.05

    @Option(parsing: .unconditional, help: "Gradient-accumulation steps A (micro-batches per optimizer step).")
    var accumulation: Int = 2

    @Option(name: .customLong("micro-batch"), parsing: .unconditional, help: "Rows per micro-batch on each rank (B).")
    var microBatch: Int = 2

    @Option(parsing: .unconditional, help: "AdamW steps to train and compare with the single-process run.")
    var steps: Int = 3

    @Flag(name: .customLong("verify-only"), help: "Print only the checks (for CI under mpirun).")
    var verifyOnly = false

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be >= 1, got \(ranks)") }
        if let problem = bucketSizeProblem(megabytes: bucketMB) { throw ValidationError(problem) }
        guard accumulation >= 1, microBatch >= 1, steps >= 0 else {
            throw ValidationError("--accumulation and --micro-batch must be >= 1 and --steps >= 0")
        }
    }

    func run() throws {
        var options = DataParallelLesson.Options()
        (options.bucketMB, options.accumulation, options.microBatch) = (bucketMB, accumulation, microBatch)
        (options.steps, options.verifyOnly) = (steps, verifyOnly)
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? ranks : (ranks ?? 2)) { world in
            try DataParallelLesson.run(world: world, options: options) { RankPrinter(world).rank0($0) }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

OpenBLASSetup.restartIfUseful()   // OpenBLAS settings must be in place before it loads: see there
LessonDP.main()
