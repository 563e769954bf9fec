import ArgumentParser
import Distributed
import Foundation
import Llama
import TensorCore
import Training

/// `picotron plan`: what a run needs and how long its step should take, before running it.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a run's memory per rank and its predicted step time, without training.",
        discussion: """
            Reads the config as `picotron train` does (flags override it), estimates each pipeline stage's \
            memory per rank (weights, gradients, AdamW moments, activations of the micro-batches its \
            schedule holds, communication buffers) and checks the ranks sharing this machine against its \
            memory. Then measures this machine's sgemm peak and copy bandwidth (a few seconds) and predicts \
            the step time from the FLOPs and the traffic formulas of each group (StepPrediction.swift). \
            Exits 1 when the run does not fit.
            """)

    @Option(help: "A picotron config.json (default: the quick start).") var config: String?
    @Option(parsing: .unconditional, help: "Data-parallel size.") var dp: Int?
    @Option(parsing: .unconditional, help: "Tensor-parallel size.") var tp: Int?
    @Option(parsing: .unconditional, help: "Pipeline-parallel stages.") var pp: Int?
    @Option(parsing: .unconditional, help: "Context-parallel size.") var cp: Int?
    @Option(help: "Pipeline schedule: afab, 1f1b, interleaved or zb.") var ppEngine: String?
    @Option(parsing: .unconditional, help: "Chunks per stage for --pp-engine interleaved.") var ppVirtualStages: Int?
    @Option(parsing: .unconditional, help: "Sequences per micro-batch.") var mbs: Int?
    @Option(parsing: .unconditional, help: "Micro-batches per step.") var gradAcc: Int?
    @Option(parsing: .unconditional, help: "Tokens per sequence.") var seqLen: Int?
    @Option(help: "Model: a preset or a local Hugging Face Llama directory.") var model: String?
    @Option(parsing: .unconditional, help: "Ranks on this machine (default: all of the grid's).") var ranksHere: Int?

    func run() throws {
        var (cfg, _) = try config.map { try PicotronConfig.load(from: URL(fileURLWithPath: $0)) } ?? (.quickStart, [])
        cfg.apply(overrides: ConfigOverrides(microBatchSize: mbs, gradAccSteps: gradAcc, seqLength: seqLen, dp: dp, tp: tp))
        if let model { cfg.model.name = model }
        if let pp { cfg.distributed.ppSize = pp }
        if let cp { cfg.distributed.cpSize = cp }
        if let ppEngine { cfg.distributed.ppEngine = ppEngine }
        if let ppVirtualStages { cfg.distributed.ppVirtualStages = ppVirtualStages }
        try cfg.validate()
        let c = try cfg.resolvedModelConfig()
        try Train.checkPipeline(cfg, layers: c.numHiddenLayers)
        let d = cfg.distributed, t = cfg.training
        let here = ranksHere ?? cfg.worldSize
        guard here >= 1 else { throw ValidationError("--ranks-here \(here) must be ≥ 1") }
        let engine = d.ppSize > 1 ? " (\(d.ppEngine))" : ""
        print("plan: \(cfg.model.name) (\(c.numHiddenLayers) layers, \(Self.count(c.approximateParameterCount)) parameters) | "
              + "dp \(d.dpSize) × pp \(d.ppSize)\(engine) × cp \(d.cpSize) × tp \(d.tpSize) = \(cfg.worldSize) ranks | "
              + "mbs \(t.microBatchSize) × grad_acc \(t.gradientAccumulationSteps) × seq \(t.seqLength), "
              + "\(cfg.tokensPerStep) tokens per step")

        let stages = MemoryEstimate.stages(config: cfg, model: c)
        print("\nMemory per rank (float32; the formula is in MemoryEstimate.swift):")
        let names = stages.count == 1 ? ["every rank"] : stages.indices.map { "stage \($0)" }
        var rows = [[""] + names, ["parameters"] + stages.map { Self.count($0.parametersPerRank) }]
        for (i, name) in stages[0].components.map(\.name).enumerated() {
            rows.append([name] + stages.map { MemoryEstimate.format($0.components[i].bytes) })
        }
        rows.append(["total"] + stages.map { MemoryEstimate.format($0.perRank) })
        printTable(rows)
        let average = stages.reduce(0) { $0 + $1.perRank } / Double(stages.count)
        let available = MemoryEstimate.availableMemory
        var problem: Error?
        do { _ = try MemoryEstimate.check(stages: stages, ranks: here, available: available) } catch { problem = error }
        let fits = problem == nil
        print("\(here) rank\(here == 1 ? "" : "s") on this machine × \(MemoryEstimate.format(average))"
              + "\(stages.count > 1 ? " (the stages' average)" : "") = \(MemoryEstimate.format(average * Double(here))) "
              + "of \(MemoryEstimate.format(available)): \(fits ? "fits" : "does not fit")")
        if let problem { print("  \(problem)") }

        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreads(cores)
        let peak = Throughput.measureSgemmPeak(), bandwidth = Throughput.measureCopyBandwidth()
        let p = StepPrediction(config: cfg, model: c, stages: stages, peakGFLOPS: peak, cores: cores,
                               bandwidthGBps: bandwidth, ranksHere: here)
        print(String(format: "\nPredicted step (this machine: sgemm peak %.0f GFLOP/s on %d cores, copies at %.1f GB/s, "
                     + "measured now; the model is in StepPrediction.swift):", peak, cores, bandwidth))
        var parts = [["compute", Self.seconds(p.compute),
                      String(format: "%.3g TFLOP in all, %d ranks sharing %d cores", p.totalFLOPs / 1e12, here, cores)]]
        if d.ppSize > 1 {
            parts.append(["pipeline bubble", Self.seconds(p.bubble), p.bubble > 0 ? "(pp − 1) / (A·v) of a rank's compute"
                            : "hidden: the other stages' ranks keep every core busy"])
        }
        let time = ["tp": p.tensorParallel, "cp": p.contextParallel, "pp": p.pipelineParallel, "cp+dp": p.dataParallelExposed]
        for (group, floats) in p.floats {
            let note = group == "cp+dp" ? "overlapped with the backward; what shows" : "on the critical path"
            parts.append(["\(group) traffic", Self.seconds(time[group] ?? 0),
                          "\(MemoryEstimate.format(floats * 4)) per rank per step, \(note)"])
        }
        parts.append(["step", Self.seconds(p.seconds), String(format: "%.0f tokens/s", p.tokensPerSecond)])
        printTable(parts, note: true)
        if !fits { throw ExitCode(1) }
    }

    static func count(_ n: Double) -> String {
        n >= 1e9 ? String(format: "%.2f B", n / 1e9) : n >= 1e6 ? String(format: "%.1f M", n / 1e6)
            : n >= 1e3 ? String(format: "%.1f K", n / 1e3) : String(format: "%.0f", n)
    }

    static func seconds(_ s: Double) -> String {
        s >= 1 ? String(format: "%.2f s", s) : String(format: "%.1f ms", s * 1e3)
    }
}
