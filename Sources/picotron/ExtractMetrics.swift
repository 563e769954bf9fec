import ArgumentParser
import Foundation
import Training

/// `picotron extract-metrics`: huggingface/picotron's extract_metrics.py. picotron parses its logs; here each
/// run's `metrics.jsonl` (what `picotron train --out-dir <run>` writes, one JSON object per step) is the source.
struct ExtractMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract-metrics",
        abstract: "Write each run's metrics.csv and one global_metrics.csv of every run below a folder.",
        discussion: """
            For every run folder below --inp_dir (a folder with a picotron config.json): <run>/metrics.csv holds \
            one row per logged step of <run>/metrics.jsonl, and <inp_dir>/global_metrics.csv one row per run: \
            its status (status.txt), grid, batch, steps, last loss, and the mean tokens/s and MFU over the steps \
            after the first (the first step includes start-up work). A run with no metrics yet has its status and \
            empty numbers.
            """)

    @Option(name: [.customLong("inp_dir"), .customLong("inp-dir")],
            help: "The folder holding the runs (searched recursively).")
    var inpDir: String

    static let stepColumns = ["step", "loss", "lr", "grad_norm", "tokens_per_second", "tokens_seen", "mfu", "memory_bytes",
                              "seconds"]
    static let globalColumns = ["run", "status", "dp", "tp", "pp", "cp", "ranks", "micro_batch_size", "grad_acc_steps",
                                "seq_len", "global_batch_size", "steps", "last_loss", "tokens_per_second",
                                "tokens_per_second_per_rank", "mfu_percent", "memory_mb"]

    func run() throws {
        let runs = try RunFolder.find(below: inpDir)
        var rows = [Self.globalColumns]
        for run in runs {
            let (steps, skipped) = try Self.readMetrics(run.metricsFile)
            var config: PicotronConfig?
            do { config = try PicotronConfig.load(from: run.configFile).config } catch {
                print("\(run.name): note: its config does not load, so its grid and batch are left empty: \(error)")
            }
            if let steps {
                let csv = [Self.stepColumns] + steps.map(Self.stepRow)
                try Self.write(csv, to: run.url.appendingPathComponent("metrics.csv"))
            }
            let row = Self.globalRow(run, status: run.status, config: config, steps: steps ?? [])
            rows.append(row)
            let said = steps.map { s in
                s.isEmpty ? "no steps yet" : "\(s.count) steps, \(row[13]) tokens/s, MFU \(row[15])% → "
                    + run.url.appendingPathComponent("metrics.csv").path
            } ?? "no metrics.jsonl yet"
            print("\(run.name): \(run.status), \(said)" + (skipped > 0 ? " (\(skipped) unreadable lines skipped)" : ""))
        }
        let global = URL(fileURLWithPath: inpDir).appendingPathComponent("global_metrics.csv")
        try Self.write(rows, to: global)
        print("wrote \(global.path): \(runs.count) run\(runs.count == 1 ? "" : "s")")
    }

    /// The steps of a metrics file, and how many lines were not a step (a line cut by a crash); nil without a file.
    static func readMetrics(_ file: URL) throws -> (steps: [StepMetrics]?, skipped: Int) {
        guard FileManager.default.fileExists(atPath: file.path) else { return (nil, 0) }
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) } catch {
            throw RunError("\(file.path): cannot read it (\(error.localizedDescription))")
        }
        let decoder = JSONDecoder()
        // What MetricsWriter writes for a throughput timed over zero seconds.
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                        nan: "nan")
        var steps: [StepMetrics] = [], skipped = 0
        for line in text.split(separator: "\n") where !line.allSatisfy(\.isWhitespace) {
            guard let step = try? decoder.decode(StepMetrics.self, from: Data(line.utf8)) else { skipped += 1; continue }
            steps.append(step)
        }
        return (steps, skipped)
    }

    static func stepRow(_ m: StepMetrics) -> [String] {
        [String(m.step), "\(m.loss)", "\(m.lr)", "\(m.gradNorm)", "\(m.tokensPerSecond)", String(m.tokensSeen), "\(m.mfu)",
         m.memoryBytes.map(String.init) ?? "", "\(m.seconds)"]
    }

    /// One run's row of global_metrics.csv; numbers it does not have yet are empty.
    static func globalRow(_ run: RunFolder, status: String, config: PicotronConfig?, steps: [StepMetrics]) -> [String] {
        var row = [run.name, status]
        if let c = config {
            let d = c.distributed, t = c.training
            row += [d.dpSize, d.tpSize, d.ppSize, d.cpSize, c.worldSize, t.microBatchSize, t.gradientAccumulationSteps,
                    t.seqLength, c.globalBatchSize].map(String.init)
        } else {
            row += Array(repeating: "", count: 9)
        }
        guard let last = steps.last else { return row + Array(repeating: "", count: 6) }
        // The first step includes start-up work (threads, first touches of memory): left out when there are more.
        let timed = steps.count > 1 ? Array(steps.dropFirst()) : steps
        func mean(_ value: (StepMetrics) -> Double) -> Double { timed.map(value).reduce(0, +) / Double(timed.count) }
        let tokens = mean(\.tokensPerSecond)
        let perRank = config.map { String(format: "%.1f", tokens / Double($0.worldSize)) } ?? ""
        let memory = steps.compactMap(\.memoryBytes).max().map { String(format: "%.1f", Double($0) / 1_048_576) } ?? ""
        return row + [String(last.step), String(format: "%.4f", last.loss), String(format: "%.1f", tokens), perRank,
                      String(format: "%.2f", 100 * mean(\.mfu)), memory]
    }

    /// Writes rows as CSV (RFC 4180: a field with a comma, quote or newline is quoted), replacing the file whole.
    static func write(_ rows: [[String]], to file: URL) throws {
        func field(_ s: String) -> String {
            s.contains { ",\"\n".contains($0) } ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let text = rows.map { $0.map(field).joined(separator: ",") }.joined(separator: "\n") + "\n"
        do { try Data(text.utf8).write(to: file, options: .atomic) } catch {
            throw RunError("cannot write \(file.path): \(error.localizedDescription); check that the folder is writable")
        }
    }
}
