// The lesson's report pieces: the verification summary (worst over all ranks), the traffic
// table beside the formula, the logits the loss needs, and the timings.
// Legend: N = B·T tokens, C = hidden, L = layers, V = vocabulary, tp = ranks.

import Distributed
import Foundation
import LessonKit
import Llama
import Step2_TensorParallel
import TensorCore

extension TensorParallelLesson {
    /// One row per kind of check with the worst |Δ| over all ranks of `world` (a collective).
    static func summary(_ checks: [(String, Comparison)], world: Communicator) throws -> (table: Table, failed: Int) {
        func label(_ variant: String, _ name: String) -> String {
            switch variant {
            case "untied" where name.hasPrefix("grad "):
                return "gradients of " + LessonProblem.group(of: String(name.dropFirst(5)))
            case "untied": return name == "logits" ? "logits (each rank: its V/tp columns)" : name
            case "tied": return "tied embeddings: loss, logits, gradients"
            case "sp": return "sequence parallel: loss, logits, gradients"
            case "sp-adamw": return "sequence parallel: AdamW losses, parameters"
            default: return name.hasPrefix("losses") ? name : "parameters after the AdamW steps"
            }
        }
        var rows = [String](), worst = [Float](), fails = [Float]()
        for (variant, c) in checks {
            let l = label(variant, c.name)
            if rows.last != l, !rows.contains(l) { rows.append(l); worst.append(0); fails.append(0) }
            let i = rows.firstIndex(of: l)!
            worst[i] = max(worst[i], c.maxAbsDiff)
            if !c.passed { fails[i] += 1 }
        }
        try world.allReduce(&worst, op: .max)                           // the worst rank
        try world.allReduce(&fails, op: .sum)
        var t = Table(["check", "max|Δ|", ""], align: [.left, .right, .left])
        for (i, r) in rows.enumerated() { t.add([r, LessonOutput.diff(worst[i]), fails[i] == 0 ? "PASS" : "FAIL"]) }
        return (t, Int(fails.reduce(0, +)))
    }

    /// The traffic of one step, measured beside the formula, and the logits with and without gathering.
    static func traffic(_ problem: LessonProblem, comm: Communicator, out: (String) -> Void) throws {
        let c = problem.config, tp = comm.size
        let n = problem.batch * problem.length
        let lines = try TensorParallelTraffic.measure(problem, comm: comm)
        let gathered = try TensorParallelTraffic.measure(problem, comm: comm, gatherLogits: true)
        let t = trafficTable(lines, tp: tp)
        out("""

            Traffic of one forward + backward per rank (CommLedger) beside the formula
            N = \(n), C = \(c.hiddenSize), L = \(c.numHiddenLayers), V = \(c.vocabSize), tp = \(tp); \
            ring all-reduce sends 2(tp−1)/tp of the payload
            \(t.render(indent: 2))
            """)
        let lossVP = lines.filter { $0.phase.hasSuffix("loss") }.reduce(0) { $0 + $1.bytes }
        let lossG = gathered.filter { $0.op == .allGather }.reduce(0) { $0 + $1.bytes }
        func logits(_ n: Int, _ v: Int, _ g: Bool) -> String {
            CommStats.format(bytes: 4 * TensorParallelTraffic.logitFloats(tokens: n, vocab: v, tp: tp, gathered: g))
        }
        func payload(_ n: Int, _ v: Int, _ g: Bool) -> String {
            CommStats.format(bytes: TensorParallelTraffic.lossPayload(tokens: n, vocab: v, tp: tp, gathered: g))
        }
        let (bigN, bigV) = (8192, 49152)
        var m = Table(["logits for the loss, per rank", "vocab-parallel (Megatron)", "gathered (picotron)"],
                      align: [.left, .right, .right])
        m.add(["held here (N·V/tp vs N·V floats)", logits(n, c.vocabSize, false), logits(n, c.vocabSize, true)])
        m.add(["sent by the loss, measured", CommStats.format(bytes: lossVP), CommStats.format(bytes: lossG)])
        m.add(["held, SmolLM V \(bigV), N \(bigN)", logits(bigN, bigV, false), logits(bigN, bigV, true)])
        m.add(["sent, SmolLM V \(bigV), N \(bigN)", payload(bigN, bigV, false), payload(bigN, bigV, true)])
        out("\n" + m.render(indent: 2))
    }

    /// The ledger's lines beside their formulas, with the ring bytes each puts on the wire.
    static func trafficTable(_ lines: [TrafficLine], tp: Int) -> Table {
        var t = Table(["phase", "op", "calls", "formula", "payload", "formula", "ring bytes/rank", ""],
                      align: [.left, .left, .right, .right, .right, .left, .right, .left])
        for l in lines {
            t.add([l.phase, l.op.rawValue, "\(l.calls)", "\(l.formulaCalls)", CommStats.format(bytes: l.bytes),
                   l.formula + (l.formula == "0" ? "" : "·4 B"),
                   CommStats.format(bytes: TensorParallelTraffic.ringBytes(l.op, l.bytes, tp: tp)), l.matches ? "=" : "≠"])
        }
        return t
    }

    /// Forward + backward time of tp = 1 (one rank, all cores) against tp = N on a larger model.
    static func timing(comm: Communicator, out: (String) -> Void) throws {
        let config = LlamaConfig(vocabSize: 2048, hiddenSize: 256, intermediateSize: 512, numHiddenLayers: 2,
                                 numAttentionHeads: 8, numKeyValueHeads: 4, rmsNormEps: 1e-5, maxPositionEmbeddings: 256)
        let problem = LessonProblem(config: config, seed: 7, batch: 4, length: 64)
        let tokens = problem.batch * problem.length
        func perStep(_ model: LlamaForCausalLM) -> Double {
            var best = Double.infinity
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                let loss = model.lossFunction(model.logits(problem.inputs, batch: problem.batch, length: problem.length),
                                              problem.targets)
                loss.backward()
                model.zeroGrad()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            return best
        }
        func line(_ what: String, _ ms: Double) -> String {
            LessonOutput.timing(String(format: "timing: %@ %.1f ms per step (forward + backward), %.0f tokens/s",
                                       what, ms, Double(tokens) / ms * 1000))
        }
        out("\nTimings on this machine (\(coreCount) cores; a model with hidden 256, vocab 2048, N \(tokens) tokens; best of 3)")
        if comm.rank == 0 {
            let threads = BLAS.threads
            if !Launcher.isUnderMPI { BLAS.setThreads(coreCount) }     // the other ranks wait at the barrier
            out(line("tp 1 (1 rank):  ", perStep(problem.makeModel())))
            BLAS.setThreads(threads)
        }
        try comm.barrier()
        let (model, group) = try makeTensorParallelLlama(config: config, seed: problem.seed, group: comm)
        let ms = perStep(model)
        try group.check()
        var worst = [Float(ms)]
        try comm.allReduce(&worst, op: .max)                           // a step ends when the slowest rank ends
        out(line("tp \(comm.size) (\(comm.size) ranks):", Double(worst[0])))
    }
}
