// lesson-pp: Lesson 3, pipeline parallelism, live. Runs on in-process ranks (`--ranks N`,
// default 4: the stages) or on the MPI world when started by mpirun; exits non-zero if any check
// against the single-process reference fails. The work is in Sources/Step3Lesson/PipelineLesson.swift.

import ArgumentParser
import Distributed
import Foundation
import Step3Lesson
import TensorCore

struct LessonPP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lesson-pp",
        abstract: "Lesson 3: pipeline parallelism (AFAB, 1F1B, interleaved), checked against the single process.",
        discussion: """
            In-process:  swift run lesson-pp --ranks 4
            Under MPI:   mpirun -np 4 "$(swift build --show-bin-path)/lesson-pp"
            The lesson model has 8 layers: 1, 2, 4 or 8 stages. Read Lessons/03-pipeline-parallel.md alongside.
            """)

    @Option(parsing: .unconditional, help: "Ranks as threads of this process, = the pipeline stages (ignored under mpirun).")
    var ranks: Int?

    @Option(name: .customLong("micro-batches"), parsing: .unconditional,
            help: "M, micro-batches per step: 1, 2, 4, 8 or 16 (the batch has 16 rows).")
    var microBatches: Int = 8

    @Option(name: .customLong("virtual-stages"), parsing: .unconditional,
            help: "v, chunks of layers per stage for the interleaved engine.")
    var virtualStages: Int = 2

    @Option(help: "Write each schedule's charts (unit time and measured) as SVG files into this folder.")
    var svg: String?

    @Flag(name: .customLong("verify-only"), help: "Print only the split and the checks (for CI under mpirun).")
    var verifyOnly = false

    func validate() throws {
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be >= 1, got \(ranks)") }
        guard [1, 2, 4, 8, 16].contains(microBatches) else {
            throw ValidationError("--micro-batches \(microBatches) must divide the lesson's 16 rows: 1, 2, 4, 8 or 16")
        }
        guard virtualStages >= 1 else { throw ValidationError("--virtual-stages must be >= 1, got \(virtualStages)") }
    }

    func run() throws {
        var options = PipelineLesson.Options()
        (options.microBatches, options.virtualStages, options.verifyOnly, options.svgDirectory)
            = (microBatches, virtualStages, verifyOnly, svg)
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? ranks : (ranks ?? 4)) { world in
            guard world.size <= 8 else {
                throw PipelineLesson.Failed(description: "\(world.size) stages for the lesson model's 8 layers: use at most 8 ranks")
            }
            try PipelineLesson.run(world: world, options: options) { RankPrinter(world).rank0($0) }
        }
        if status != 0 { throw ExitCode(status) }
    }
}

OpenBLASSetup.restartIfUseful()   // OpenBLAS settings must be in place before it loads: see there
LessonPP.main()
