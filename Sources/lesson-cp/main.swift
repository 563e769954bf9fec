// lesson-cp: Lesson 4, context parallelism, live. Runs on in-process ranks (`--ranks N`, default
// 4: the context-parallel group) or on the MPI world when started by mpirun; exits non-zero if any
// check against the single-process reference fails. The work is in Sources/Step4Lesson/ContextLesson.swift.

import ArgumentParser
import Distributed
import Foundation
import Step4Lesson
import TensorCore

struct LessonCP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson-cp",
        abstract: "Lesson 4: context parallelism (all-gather and ring attention, contiguous and zigzag), checked "
            + "against the single process.",
        discussion: """
            In-process:  swift run lesson-cp --ranks 4
            Under MPI:   mpirun -np 4 "$(swift build --show-bin-path)/lesson-cp"
            The lesson's sequences have 32 tokens: 1, 2, 4, 8 or 16 ranks. Read Lessons/04-context-parallel.md alongside.
            """)

    @Option(parsing: .unconditional, help: "Ranks as threads of this process, = the context-parallel size (ignored under mpirun).")
    var ranks: Int?

    @Option(help: "Write the ring's steps for both layouts as SVG files into this folder.")
    var svg: String?

    @Flag(name: .customLong("verify-only"), help: "Print only the split and the checks (for CI under mpirun).")
    var verifyOnly = false

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be >= 1, got \(ranks)") }
    }

    func run() throws {
        var options = ContextLesson.Options()
        (options.verifyOnly, options.svgDirectory) = (verifyOnly, svg)
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? ranks : (ranks ?? 4)) { world in
            try ContextLesson.run(world: world, options: options) { RankPrinter(world).rank0($0) }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

OpenBLASSetup.restartIfUseful()   // OpenBLAS settings must be in place before it loads: see there
LessonCP.main()
