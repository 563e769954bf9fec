import ArgumentParser
import Foundation
import Llama
import TensorCore
import Training

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

    @Option(help: "Timed steps per preset (after one warm-up step).")
    var steps: Int = 3

    @Option(help: "Sequences per step (micro-batch).")
    var batch: Int = 4

    @Option(help: "Tokens per sequence.")
    var seqLen: Int = 256

    @Option(help: "OpenBLAS threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print one JSON object per preset instead of a table.")
    var json = false

    /// PyTorch 2.15 eager on a 2-core AMD EPYC (Zen 4), 2 threads, batch 4, seq 256.
    static let pytorchReference: [String: String] = ["tiny": "2.66–2.91 K", "smollm-135m": "149–157"]

    func validate() throws {
        guard steps > 0, batch > 0, seqLen > 1 else {
            throw ValidationError("--steps \(steps), --batch \(batch) must be ≥ 1 and --seq-len \(seqLen) ≥ 2")
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
        BLAS.setThreads(threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let peak = Throughput.measureSgemmPeak()
        if !json {
            print("machine: \(Self.cpuName()), \(ProcessInfo.processInfo.activeProcessorCount) cores; "
                  + "OpenBLAS threads \(BLAS.threads), thread timeout \(BLAS.threadTimeout == 0 ? "default" : "2^\(BLAS.threadTimeout) cycles") "
                  + "(\(BLAS.configuration))")
            if let note = OpenBLASSetup.note { print(note) }
            if let advice = BLAS.kernelAdvice { print(advice) }
            print(String(format: "sgemm peak (best of 512³ and 1024³, NN/NT/TN): %.1f GFLOP/s", peak))
        }
        for (name, config) in configs {
            let r = measure(config)
            let gflops = r.tokensPerSecond * Throughput.trainingFlopsPerToken(config, sequenceLength: seqLen) / 1e9
            if json {
                let fields: [String] = [
                    "\"preset\":\"\(name)\"", String(format: "\"tokens_per_second\":%.2f", r.tokensPerSecond),
                    String(format: "\"gflops\":%.2f", gflops), String(format: "\"mfu\":%.4f", gflops / peak),
                    String(format: "\"peak_gflops\":%.2f", peak), "\"batch\":\(batch)", "\"seq_len\":\(seqLen)",
                    "\"steps\":\(steps)", "\"blas_threads\":\(BLAS.threads)",
                ]
                print("{" + fields.joined(separator: ",") + "}")
            } else {
                print(String(format: "%@: %.0f tokens/s, %.1f GFLOP/s, MFU %.1f%% (%ld params, %.2f s/step); "
                             + "PyTorch eager reference: %@ tokens/s", name, r.tokensPerSecond, gflops,
                             100 * gflops / peak, r.parameters, r.secondsPerStep,
                             Self.pytorchReference[name] ?? "n/a"))
            }
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
            let start = DispatchTime.now().uptimeNanoseconds
            let window = tokens[(step * batch * seqLen)..<((step + 1) * batch * seqLen)]
            let ids = Array(window)
            let (loss, _) = model.loss(ids, labels: ids, batch: batch, length: seqLen)
            loss.backward()
            optimizer.step()
            optimizer.zeroGrad()
            if step > 0 { elapsed += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        }
        return (Double(batch * seqLen * steps) / elapsed, elapsed / Double(steps), model.parameterCount)
    }

    static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let name = line.split(separator: ":", maxSplits: 1).last else { return "unknown CPU" }
        return name.trimmingCharacters(in: .whitespaces)
    }
}
