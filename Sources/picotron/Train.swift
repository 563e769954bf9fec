import ArgumentParser
import Distributed
import Formats
import Foundation
import Llama
import Parallelism4D
import Step1_DataParallel
import TensorCore
import Step3_PipelineParallel
import Training

/// `picotron train`: the main job.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a Llama from a picotron config (or quick-start defaults) on one or many ranks.",
        discussion: """
            Without --config it trains the `micro` preset on the embedded Shakespeare corpus for a few \
            minutes (1000 steps of 16 × 128 tokens), writes metrics, a loss curve and a checkpoint under \
            runs/<time>/, and prints a sample. With --config it reads picotron's JSON schema \
            (picotron create-config writes one); flags override the file. Parallel runs: --ranks N starts \
            N ranks as threads of this process; under mpirun the MPI world is used.
            """)

    @Option(help: "A picotron config.json (see `picotron create-config`).") var config: String?
    @Option(help: "Model: a preset (micro, tiny, smollm-135m) or a local Hugging Face Llama directory.")
    var model: String?
    @Option(help: "Train on this UTF-8 text file (byte-level tokens).") var text: String?
    @Option(help: "Train on a pre-tokenized file (nanoGPT .bin or llm.c format).") var tokenFile: String?
    @Option(help: "Element type of a raw token file: uint16 or uint32.") var tokenDtype: String?

    @Option(parsing: .unconditional, help: "Optimizer steps (training.total_train_steps).") var steps: Int?
    @Option(parsing: .unconditional, help: "Random seed (training.seed).") var seed: Int?
    @Option(parsing: .unconditional, help: "Peak learning rate (training.learning_rate).") var lr: Double?
    @Option(parsing: .unconditional, help: "Sequences per micro-batch (training.micro_batch_size).") var mbs: Int?
    @Option(parsing: .unconditional, help: "Micro-batches per step (training.gradient_accumulation_steps).") var gradAcc: Int?
    @Option(parsing: .unconditional, help: "Tokens per sequence (training.seq_length).") var seqLen: Int?
    @Option(parsing: .unconditional, help: "Data-parallel size (distributed.dp_size).") var dp: Int?
    @Option(parsing: .unconditional, help: "Tensor-parallel size (distributed.tp_size).") var tp: Int?
    @Option(parsing: .unconditional, help: "Pipeline-parallel stages (distributed.pp_size).") var pp: Int?
    @Option(parsing: .unconditional, help: "Context-parallel ranks: each holds seq/cp tokens of every sequence (distributed.cp_size).")
    var cp: Int?
    @Option(help: "Which tokens each cp rank holds: zigzag or contiguous (distributed.cp_layout).") var cpLayout: String?
    @Option(help: "Context-parallel attention: ring or allgather (distributed.cp_attention).") var cpAttention: String?
    @Option(help: "Pipeline schedule: afab, 1f1b, interleaved or zb (distributed.pp_engine).") var ppEngine: String?
    @Option(parsing: .unconditional, help: "Chunks of layers per stage for --pp-engine interleaved (distributed.pp_virtual_stages).")
    var ppVirtualStages: Int?
    @Flag(help: "Split the activations between the tensor-parallel blocks along the sequence (distributed.sequence_parallel; needs --tp > 1).")
    var sequenceParallel = false
    @Option(parsing: .unconditional, help: "ZeRO stage, 0 or 1: 1 slices AdamW's moments over the dp·cp ranks (distributed.zero_stage).")
    var zero: Int?
    @Option(parsing: .unconditional, help: "Data-parallel all-reduce bucket size in MB (PyTorch DDP's default is 25).") var bucketMb: Double = 25
    @Option(parsing: .unconditional, help: "In-process ranks to start (default: dp × pp × cp × tp); ignored under mpirun.") var ranks: Int?

    @Option(help: "Folder for metrics, loss curve and checkpoints (default runs/<time>).") var outDir: String?
    @Option(help: "Metrics file, JSON lines (default <out-dir>/metrics.jsonl).") var metricsOut: String?
    @Option(help: "Checkpoint folder (checkpoint.save_dir; relative to --out-dir).") var saveDir: String?
    @Option(help: "Resume from a checkpoint, or the latest in a folder (checkpoint.load_path).") var loadPath: String?
    @Option(parsing: .unconditional, help: "Print a progress line every N steps (logging.log_frequency).") var logEvery: Int?
    @Option(parsing: .unconditional, help: "Bytes to sample at the end (0: none).") var sample: Int = 300
    @Flag(help: "Run even when the memory estimate says the run does not fit this machine (prints a warning).")
    var force = false

    func run() throws {
        keepFreedMemoryForReuse()
        var (cfg, notes) = try loadConfig()
        cfg.apply(overrides: ConfigOverrides(steps: steps, seed: seed, learningRate: lr, microBatchSize: mbs,
                                             gradAccSteps: gradAcc, seqLength: seqLen, dp: dp, tp: tp,
                                             saveDir: saveDir, loadPath: loadPath, metricsFile: metricsOut))
        if let model { cfg.model.name = model }
        if let pp { cfg.distributed.ppSize = pp }
        if let cp { cfg.distributed.cpSize = cp }
        if let cpLayout { cfg.distributed.cpLayout = cpLayout }
        if let cpAttention { cfg.distributed.cpAttention = cpAttention }
        if let ppEngine { cfg.distributed.ppEngine = ppEngine }
        if let ppVirtualStages { cfg.distributed.ppVirtualStages = ppVirtualStages }
        if sequenceParallel { cfg.distributed.sequenceParallel = true }
        if sequenceParallel && cfg.distributed.tpSize == 1 {   // a config file's key earns the same note when loaded
            notes.append("note: --sequence-parallel ignored: it splits the sequence between tensor-parallel ranks, and tp_size is 1")
        }
        if let zero { cfg.distributed.zeroStage = zero }
        if let logEvery { cfg.logging.logFrequency = logEvery }
        if let text { cfg.dataset.textFile = text; cfg.dataset.tokenFile = nil }
        if let tokenFile { cfg.dataset.tokenFile = tokenFile; cfg.dataset.textFile = nil }
        if let tokenDtype { cfg.dataset.tokenDType = tokenDtype }
        guard sample >= 0 else { throw ValidationError("--sample \(sample) must be ≥ 0") }
        if let problem = bucketSizeProblem(megabytes: bucketMb) { throw ValidationError(problem) }
        try cfg.validate()
        if zero != nil { notes += cfg.notes.filter { $0.hasPrefix("note: distributed.zero_stage") && !notes.contains($0) } }
        if Launcher.isFirstProcess { for note in notes { print(note) } }
        let modelConfig = try cfg.resolvedModelConfig()
        try Self.checkPipeline(cfg, layers: modelConfig.numHiddenLayers)
        if !Launcher.isUnderMPI { try InProcessWorld.checkSize(ranks ?? cfg.worldSize) }   // before any work
        // Before anything is allocated: a run that cannot fit is refused with the numbers and the fix.
        let ranksSharingMemory = Launcher.isUnderMPI ? Launcher.mpiProcessesOnThisMachine : (ranks ?? cfg.worldSize)
        let stages = MemoryEstimate.stages(config: cfg, model: modelConfig)
        if let warning = try MemoryEstimate.check(stages: stages, ranks: ranksSharingMemory, force: force) {
            if Launcher.isFirstProcess { fputs(warning + "\n", stderr) }   // unbuffered: the run it warns about may end in the allocator
        }
        let dataset = try cfg.loadDataset()
        let runDir = URL(fileURLWithPath: outDir ?? "runs/\(Self.timestamp())")
        try Self.makeRunFolder(runDir)
        var options = cfg.trainOptions(runDir: runDir)
        if Launcher.isFirstProcess, let note = OpenBLASSetup.note { print(note) }
        if Launcher.isFirstProcess, let advice = BLAS.kernelAdvice { print(advice) }
        let inProcessRanks = ranks ?? cfg.worldSize
        // MFU's denominator: the machine's sgemm peak (cached, see MachinePeak.swift), shared by the
        // ranks on it. Under mpirun the first process of each machine measures; the others wait for it.
        let ranksHere = Launcher.isUnderMPI ? Launcher.mpiProcessesOnThisMachine : inProcessRanks
        let (machine, cached) = MachinePeak.current(wait: (Launcher.localRank ?? 0) != 0)
        options.peakGFLOPSPerRank = machine.gflops / Double(ranksHere)
        options.remeasurePeak = { machine.remeasured().gflops / Double(ranksHere) }
        if Launcher.isFirstProcess {
            print("sgemm peak: \(machine.describe(cached: cached)); shared by \(ranksHere) rank\(ranksHere == 1 ? "" : "s") here")
        }

        StopRequest.install()   // Ctrl-C: finish the step, save, exit (see README, "Stopping a run")
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? nil : inProcessRanks) { world in
            try Self.train(world: world, cfg: cfg, modelConfig: modelConfig, dataset: dataset, options: options,
                           runDir: runDir, sample: sample, bucketMB: bucketMb)
        }
        if status != 0 { throw ExitCode(status) }
        if let stopped = StopRequest.exitStatus { throw ExitCode(stopped) }
    }

    /// The pipeline's rules that need the model: interleaved stages hold pp · v chunks of layers, and
    /// take micro-batches in groups of pp.
    static func checkPipeline(_ cfg: PicotronConfig, layers: Int) throws {
        let d = cfg.distributed, a = cfg.training.gradientAccumulationSteps
        guard d.ppSize > 1, d.ppEngine == PipelineEngine.interleaved.rawValue else { return }
        let (pp, v) = (d.ppSize, d.ppVirtualStages)
        guard v >= 1 else {
            throw RunError("distributed.pp_virtual_stages is \(v), but each stage holds at least one chunk of layers; "
                           + "use 1 to \(max(1, layers / pp)) (2 is the usual choice)")
        }
        guard pp * v <= layers else {
            throw RunError("distributed.pp_virtual_stages \(v) × pp_size \(pp) = \(pp * v) chunks, but the model has "
                           + "\(layers) layers: every chunk needs one; use pp_virtual_stages \(max(1, layers / pp)) or less")
        }
        guard a % pp == 0 else {
            let below = a / pp * pp, above = below + pp
            throw RunError("training.gradient_accumulation_steps \(a) is not a multiple of distributed.pp_size \(pp): the "
                           + "interleaved schedule runs micro-batches in groups of pp; use \(below > 0 ? "\(below) or " : "")"
                           + "\(above) (--grad-acc), or --pp-engine 1f1b")
        }
    }

    /// The run folder exists before anything is written into it (the loss curve, metrics and
    /// checkpoints may each be configured elsewhere, but it always holds the loss curve).
    static func makeRunFolder(_ dir: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw RunError("--out-dir \(dir.path) is a file, not a folder; choose a folder for the run's "
                                  + "metrics, loss curve and checkpoints")
        }
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw RunError("cannot create the run folder \(dir.path) (\(OutputFile.describe(error))); "
                                  + "choose another --out-dir")
        }
    }

    func loadConfig() throws -> (PicotronConfig, [String]) {
        guard let config else { return (PicotronConfig.quickStart, []) }
        return try PicotronConfig.load(from: URL(fileURLWithPath: config))
    }

    /// One rank's run: the grid, the model (parallelised), the loop, the sample.
    static func train(world: Communicator, cfg: PicotronConfig, modelConfig: LlamaConfig, dataset: TokenDataset,
                      options: TrainOptions, runDir: URL, sample: Int, bucketMB: Double) throws {
        let d = cfg.distributed
        let grid = try ProcessGrid(dp: d.dpSize, pp: d.ppSize, cp: d.cpSize, tp: d.tpSize, world: world)
        let out = RankPrinter(world)
        let plan = try ParallelPlan.make(grid: grid, config: cfg, modelConfig: modelConfig, options: options,
                                         bucketMB: bucketMB)
        let held = (plan.hooks.parameters ?? plan.model.namedParameters).reduce(0) { $0 + $1.1.count }
        out.rank0("model: \(cfg.model.name), \(held) parameters on this rank; "
                  + "data: \(dataset.name), \(dataset.count) tokens")
        out.rank0(String(format: "grid: %@; %ld steps × %ld tokens; out: %@; sgemm peak per rank %.1f GFLOP/s",
                         grid.description, options.steps, cfg.tokensPerStep, runDir.path, options.peakGFLOPSPerRank))
        let trainer = try Trainer(model: plan.model, dataset: dataset, options: options, parallel: plan.hooks)
        try trainer.run { out.rank0($0) }
        guard !trainer.stoppedBySignal, sample > 0, options.tokenizer == "byte", modelConfig.vocabSize == ByteTokenizer.vocabSize else { return }
        let full = try plan.fullModel()   // a collective with tensor parallelism: every rank calls it
        guard grid.worldRank == 0 else { return }
        print("\n--- sample (temperature 0.8, top-k 40) ---")
        let prompt = "ROMEO:"
        print(prompt, terminator: "")
        fflush(stdout)
        _ = Generation.generate(full, prompt: ByteTokenizer().encode(prompt),
                                options: SamplingOptions(maxNewTokens: sample)) { token in
            putchar(Int32(token))
            fflush(stdout)
        }
        print("\n---")
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: Date())
    }
}
