import ArgumentParser
import Distributed
import Foundation
import Llama
import Parallelism4D
import TensorCore
import Training

/// `picotron bench --dp/--tp/--pp/--cp`: one grid's training throughput, and where each rank's time
/// goes. Each rank trains the preset on the embedded corpus exactly as `picotron train` does; the
/// communication ledger measures the seconds its thread spent in each group's calls (waiting for
/// peers, or moving data), the rest is compute. Nothing is written to disk.
struct BenchGrid {
    let preset: String, model: LlamaConfig
    let cfg: PicotronConfig
    let timedSteps: Int
    let json: Bool

    /// The groups a rank waits on, in the order printed: what each wait means.
    static let groups: [(name: String, label: String)] = [
        ("tp", "tp all-reduce"), ("cp", "cp ring / gather"), ("pp", "pp send/recv (bubble)"),
        ("dp", "dp all-reduce not hidden"), ("cp+dp", "cp+dp all-reduce not hidden"), ("world", "other (loss, stop flag)"),
    ]

    func run(ranksHere: Int, inProcessRanks: Int) throws {
        let dataset = try cfg.loadDataset()
        var options = cfg.trainOptions(runDir: FileManager.default.temporaryDirectory)
        (options.saveDir, options.metricsFile, options.lossCurveFile, options.saveFrequency) = (nil, nil, nil, 0)
        options.steps = timedSteps + 1
        options.logFrequency = Int.max
        let (machine, cached) = MachinePeak.current(wait: (Launcher.localRank ?? 0) != 0)
        let flopsPerToken = Throughput.trainingFlopsPerToken(model, sequenceLength: cfg.training.seqLength)
        let (preset, cfg, json, timed) = (self.preset, self.cfg, self.json, timedSteps)
        let status = Launcher.run(ranks: Launcher.isUnderMPI ? nil : inProcessRanks) { world in
            let d = cfg.distributed
            let grid = try ProcessGrid(dp: d.dpSize, pp: d.ppSize, cp: d.cpSize, tp: d.tpSize, world: world)
            let plan = try ParallelPlan.make(grid: grid, config: cfg, modelConfig: model, options: options, bucketMB: 25)
            var hooks = plan.hooks
            var afterWarmUp = CommStats()
            hooks.afterStep = { step in if step == 1 { afterWarmUp = world.stats } }
            let trainer = try Trainer(model: plan.model, dataset: dataset, options: options, parallel: hooks)
            let steps = try trainer.run { _ in }.dropFirst()
            let spent = world.stats.since(afterWarmUp)
            let total = steps.reduce(0) { $0 + $1.seconds }
            let mine = [total] + Self.groups.map { g in spent.total(group: g.name).seconds }
                + [spent.total().overlappedSeconds]                                    // [2 + groups]
            let all = try world.allGather(mine.map(Float.init))                         // [ranks, 2 + groups]
            guard world.rank == 0 else { return }
            let median = steps.map(\.seconds).sorted()[steps.count / 2]
            let tokensPerSecond = Double(cfg.tokensPerStep) / median
            let machines = Double(world.size) / Double(ranksHere)
            let mfu = min(1, tokensPerSecond * flopsPerToken / 1e9 / (machine.gflops * machines))
            let rows = (0 ..< world.size).map { r in Array(all[(r * mine.count) ..< ((r + 1) * mine.count)]).map(Double.init) }
            Self.report(preset: preset, cfg: cfg, grid: grid.layout, ranksHere: ranksHere, steps: timed, median: median,
                        tokensPerSecond: tokensPerSecond, mfu: mfu, peak: machine.describe(cached: cached), rows: rows,
                        json: json)
        }
        if status != 0 { throw ExitCode(status) }
    }

    static func report(preset: String, cfg: PicotronConfig, grid: GridLayout, ranksHere: Int, steps: Int, median: Double,
                       tokensPerSecond: Double, mfu: Double, peak: String, rows: [[Double]], json: Bool) {
        let d = cfg.distributed, t = cfg.training
        let shown = groups.indices.filter { g in rows.contains { $0[1 + g] > 0.0005 * $0[0] } }
        if json {
            var fields = ["\"preset\":\"\(preset)\"", "\"dp\":\(d.dpSize)", "\"tp\":\(d.tpSize)", "\"pp\":\(d.ppSize)",
                          "\"cp\":\(d.cpSize)", "\"pp_engine\":\"\(d.ppEngine)\"", "\"virtual_stages\":\(d.ppEngine == "interleaved" ? d.ppVirtualStages : 1)", "\"ranks\":\(grid.worldSize)",
                          "\"tokens_per_step\":\(cfg.tokensPerStep)", "\"steps\":\(steps)",
                          String(format: "\"tokens_per_second\":%.2f", tokensPerSecond), String(format: "\"mfu\":%.4f", mfu)]
            let perRank = rows.map { row in
                "{" + (["\"seconds\":\(String(format: "%.4f", row[0]))"] + groups.indices.map { g in
                    String(format: "\"%@\":%.4f", groups[g].name, row[1 + g])
                } + [String(format: "\"overlapped\":%.4f", row.last!)]).joined(separator: ",") + "}"
            }
            fields.append("\"ranks_time\":[\(perRank.joined(separator: ","))]")
            print("{" + fields.joined(separator: ",") + "}")
            return
        }
        let engine = d.ppSize > 1 ? " (\(d.ppEngine)\(d.ppEngine == "interleaved" ? ", v \(d.ppVirtualStages)" : ""))" : ""
        let how = Launcher.isUnderMPI ? "MPI processes, \(ranksHere) on this machine" : "threads of one process"
        print("""
            bench: \(preset), dp \(d.dpSize) × pp \(d.ppSize)\(engine) × cp \(d.cpSize) × tp \(d.tpSize) = \
            \(grid.worldSize) ranks (\(how), \(ProcessInfo.processInfo.activeProcessorCount) cores, OpenBLAS \
            \(BLAS.threads) thread(s) per rank); mbs \(t.microBatchSize) × grad-acc \(t.gradientAccumulationSteps) × \
            seq \(t.seqLength) × dp \(d.dpSize) = \(cfg.tokensPerStep) tokens per step; \(steps) timed steps after a warm-up
            """)
        print(String(format: "tokens/s %.0f (median step %.3f s), MFU %.1f%% of the sgemm peak (%@)",
                     tokensPerSecond, median, 100 * mfu, peak))
        print("where each rank's time goes over the timed steps (measured: its thread's time in each group's calls):")
        let header = ["rank", "dp pp cp tp", "compute"] + shown.map { groups[$0].label } + ["overlapped"]
        var table = [header]
        for (r, row) in rows.enumerated() {
            let c = grid.coordinates(of: r)
            let waits = shown.map { row[1 + $0] }
            let compute = max(0, row[0] - waits.reduce(0, +) - (groups.indices.filter { !shown.contains($0) }
                .reduce(0) { $0 + row[1 + $1] }))
            table.append(["\(r)", "\(c.dp)  \(c.pp)  \(c.cp)  \(c.tp)", percent(compute, of: row[0])]
                         + waits.map { percent($0, of: row[0]) } + [String(format: "%.0f ms", 1000 * row.last!)])
        }
        printTable(table)
        print("(compute = the step minus every wait; overlapped = a bucket's all-reduce waited by a background thread "
              + "while the rank computed, not part of the step)")
    }

    static func percent(_ x: Double, of total: Double) -> String {
        total > 0 ? String(format: "%.1f%%", 100 * x / total) : "–"
    }
}
