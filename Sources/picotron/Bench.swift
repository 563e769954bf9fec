import ArgumentParser
import Foundation
import Llama
import TensorCore
import Training
import Distributed

/// `picotron bench`: single-process training throughput against this machine's sgemm peak.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure forward+backward+AdamW throughput (tokens/s, GFLOP/s, MFU) on this machine.",
        discussion: """
            First measures this machine's sgemm peak with OpenBLAS (the denominator of MFU), then \
            times training steps of each preset on random tokens. Build with -c release.
            """)

    @Option(help: "Preset to measure: tiny, smollm-135m, or all.")
    var preset: String = "all"

    @Option(parsing: .unconditional, help: "Timed steps per preset (after one warm-up step).")
    var steps: Int = 5

    @Option(parsing: .unconditional, help: "Sequences per step (micro-batch).")
    var batch: Int = 4

    @Option(parsing: .unconditional, help: "Tokens per sequence.")
    var seqLen: Int = 256

    @Option(parsing: .unconditional, help: "OpenBLAS threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object per preset instead of a table.")
    var json = false

    @Flag(help: "Also print where a single-process step's time goes, op by op (forward and backward).")
    var profile = false

    @Option(parsing: .unconditional, help: "Data-parallel size (a grid: where each rank's time goes).") var dp: Int = 1
    @Option(parsing: .unconditional, help: "Tensor-parallel size.") var tp: Int = 1
    @Option(parsing: .unconditional, help: "Pipeline-parallel stages.") var pp: Int = 1
    @Option(parsing: .unconditional, help: "Context-parallel size.") var cp: Int = 1
    @Option(help: "Pipeline schedule: afab, 1f1b, interleaved or zb.") var ppEngine: String = "1f1b"
    @Option(parsing: .unconditional, help: "Chunks of layers per stage for --pp-engine interleaved.") var virtualStages: Int = 2
    @Option(parsing: .unconditional, help: "Micro-batches per step in a grid (grad-acc).") var gradAcc: Int = 2
    @Option(parsing: .unconditional, help: "In-process ranks (default dp × pp × cp × tp); ignored under mpirun.")
    var ranks: Int?

    /// A grid (any size above 1, or under mpirun) is measured as `picotron train` runs it.
    var isGrid: Bool { dp * tp * pp * cp > 1 || ranks != nil || Launcher.isUnderMPI }

    /// PyTorch 2.15 eager on a 2-core AMD EPYC (Zen 4), 2 threads, batch 4, seq 256.
    static let pytorchReference: [String: String] = ["tiny": "2.66–2.91 K", "smollm-135m": "149–157"]

    func validate() throws {
        guard steps > 0, batch > 0, seqLen > 1 else {
            throw ValidationError("--steps \(steps), --batch \(batch) must be ≥ 1 and --seq-len \(seqLen) ≥ 2")
        }
        guard dp >= 1, tp >= 1, pp >= 1, cp >= 1, gradAcc >= 1 else {
            throw ValidationError("--dp \(dp), --tp \(tp), --pp \(pp), --cp \(cp) and --grad-acc \(gradAcc) must be ≥ 1")
        }
        if profile && isGrid {
            throw ValidationError("--profile times the ops of one process; drop the grid flags (--dp --tp --pp --cp "
                                  + "--ranks), or read a grid's time by group in its table")
        }
        if let threads, threads < 1 { throw ValidationError("--threads \(threads) must be ≥ 1") }
    }

    func run() throws {
        let names = preset == "all" ? ["tiny", "smollm-135m"] : [preset]
        let configs = try names.map { name -> (String, LlamaConfig) in
            guard let c = LlamaConfig.preset(named: name) else {
                throw ValidationError("unknown preset '\(name)'; choose one of \(LlamaConfig.presetNames.joined(separator: ", ")) or all")
            }
            return (name, c)
        }
        keepFreedMemoryForReuse()
        if isGrid { return try runGrid(configs) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        BLAS.setThreads(threads ?? cores)
        // The peak with every core is the machine's (cached, see MachinePeak.swift) and is measured
        // again after each preset, the best reading kept: a low one only means the machine was busy.
        var machine = BLAS.threads == cores ? MachinePeak.current().peak : nil
        var peak = machine?.gflops ?? Throughput.measureSgemmPeak()
        if !json {
            print("machine: \(MachinePeak.cpuName()), \(ProcessInfo.processInfo.activeProcessorCount) cores; "
                  + "OpenBLAS threads \(BLAS.threads), thread timeout \(BLAS.threadTimeout == 0 ? "default" : "2^\(BLAS.threadTimeout) cycles") "
                  + "(\(BLAS.configuration))")
            if let note = OpenBLASSetup.note { print(note) }
            if let advice = BLAS.kernelAdvice { print(advice) }
            print(machine.map { "sgemm peak: \($0.describe(cached: true))" }
                  ?? String(format: "sgemm peak with %d threads (best of 512³ and 1024³, NN/NT/TN): %.1f GFLOP/s",
                            BLAS.threads, peak))
        }
        for (name, config) in configs {
            let r = measure(config)
            let gflops = r.tokensPerSecond * Throughput.trainingFlopsPerToken(config, sequenceLength: seqLen) / 1e9
            machine = machine?.remeasured()
            peak = max(peak, machine?.gflops ?? 0)
            if gflops > peak {   // never an MFU above 100%: the peak reading was too low
                peak = max(peak, MachinePeak.measure())
                if !json { print(String(format: "note: %@ ran %.1f GFLOP/s, above the sgemm peak; measured again: %.1f", name, gflops, peak)) }
            }
            if json {
                let fields: [String] = [
                    "\"preset\":\"\(name)\"", String(format: "\"tokens_per_second\":%.2f", r.tokensPerSecond),
                    String(format: "\"gflops\":%.2f", gflops), String(format: "\"mfu\":%.4f", min(1, gflops / peak)),
                    String(format: "\"peak_gflops\":%.2f", peak), "\"batch\":\(batch)", "\"seq_len\":\(seqLen)",
                    "\"steps\":\(steps)", "\"blas_threads\":\(BLAS.threads)",
                ]
                print("{" + fields.joined(separator: ",") + "}")
            } else {
                print(String(format: "%@: %.0f tokens/s, %.1f GFLOP/s, MFU %.1f%% (%ld params, %.2f s/step); "
                             + "PyTorch eager on a 2-core AMD EPYC, another day: %@ tokens/s (side by side: scripts/performance.sh)", name, r.tokensPerSecond, gflops,
                             100 * min(1, gflops / peak), r.parameters, r.secondsPerStep,
                             Self.pytorchReference[name] ?? "n/a"))
            }
        }
    }

    /// The op profile of the timed steps: ms per step forward and backward, and the share of the step.
    static func printProfile(steps: Int, elapsed: Double) {
        let names = Set(OpProfiler.forward.keys).union(OpProfiler.backward.keys)
        let total = { (n: String) in (OpProfiler.forward[n]?.seconds ?? 0) + (OpProfiler.backward[n]?.seconds ?? 0) }
        var rows = [["op", "calls/step", "forward ms", "backward ms", "share"]]
        for n in names.sorted(by: { total($0) > total($1) }) {
            let f = OpProfiler.forward[n], b = OpProfiler.backward[n]
            let calls = max(f?.calls ?? 0, b?.calls ?? 0) / max(1, steps)
            rows.append([n, "\(calls)", String(format: "%.1f", 1000 * (f?.seconds ?? 0) / Double(steps)),
                         String(format: "%.1f", 1000 * (b?.seconds ?? 0) / Double(steps)),
                         String(format: "%.1f%%", 100 * total(n) / elapsed)])
        }
        let counted = names.reduce(0) { $0 + total($1) }
        rows.append(["(rest: loop, graph walk)", "", "", "", String(format: "%.1f%%", 100 * (elapsed - counted) / elapsed)])
        print(String(format: "profile of %d steps, %.1f ms each (forward: from the previous op's end to this op's; "
                     + "backward: the op's backward):", steps, 1000 * elapsed / Double(steps)))
        printTable(rows)
    }

    /// Each preset on the grid, as `picotron train` runs it (BenchGrid.swift).
    func runGrid(_ configs: [(String, LlamaConfig)]) throws {
        for (name, _) in configs {
            var cfg = PicotronConfig.quickStart
            cfg.model.name = name
            (cfg.training.microBatchSize, cfg.training.seqLength, cfg.training.gradientAccumulationSteps) = (batch, seqLen, gradAcc)
            (cfg.distributed.dpSize, cfg.distributed.tpSize, cfg.distributed.ppSize, cfg.distributed.cpSize) = (dp, tp, pp, cp)
            cfg.distributed.ppEngine = ppEngine
            cfg.distributed.ppVirtualStages = virtualStages
            try cfg.validate()
            let model = try cfg.resolvedModelConfig()   // refuses sizes the grid cannot cut, with the fix
            try Train.checkPipeline(cfg, layers: model.numHiddenLayers)
            let inProcess = ranks ?? cfg.worldSize
            if !Launcher.isUnderMPI { try InProcessWorld.checkSize(inProcess) }
            let here = Launcher.isUnderMPI ? Launcher.mpiProcessesOnThisMachine : inProcess
            try MemoryEstimate.check(stages: MemoryEstimate.stages(config: cfg, model: model), ranks: here).map { print($0) }
            try BenchGrid(preset: name, model: model, cfg: cfg, timedSteps: steps, json: json)
                .run(ranksHere: here, inProcessRanks: inProcess)
        }
    }

    /// Times `steps` full training steps (forward, backward, AdamW) after one warm-up step.
    func measure(_ config: LlamaConfig) -> (tokensPerSecond: Double, secondsPerStep: Double, parameters: Int) {
        let model = LlamaForCausalLM(config: config, seed: 1)
        let optimizer = AdamW(parameters: model.parameters, hyper: .init(lr: 1e-4))
        let rng = CounterRNG(seed: 7, stream: "bench-tokens")
        let tokens = (0..<(batch * (seqLen + 1) * (steps + 1))).map { Int(rng.bits(UInt64($0)) % UInt64(config.vocabSize)) }
        var elapsed = 0.0
        for step in 0...steps {
            if profile && step == 1 { OpProfiler.start() }   // after the warm-up
            let start = DispatchTime.now().uptimeNanoseconds
            let window = tokens[(step * batch * seqLen)..<((step + 1) * batch * seqLen)]
            let ids = Array(window)
            OpProfiler.mark()
            let (loss, _) = model.loss(ids, labels: ids, batch: batch, length: seqLen)
            loss.backward()
            let update = DispatchTime.now().uptimeNanoseconds
            optimizer.step()
            optimizer.zeroGrad()
            if OpProfiler.isEnabled { OpProfiler.add("AdamW step", seconds: Double(DispatchTime.now().uptimeNanoseconds - update) / 1e9) }
            if step > 0 { elapsed += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        }
        if profile {
            OpProfiler.stop()
            Self.printProfile(steps: steps, elapsed: elapsed)
        }
        return (Double(batch * seqLen * steps) / elapsed, elapsed / Double(steps), model.parameterCount)
    }
}
