// MemoryEstimate.swift: the memory one rank of a run needs, estimated from the sizes before anything
// is allocated, so that a run too large for the machine is refused with the numbers and the fix
// instead of aborting in the allocator (or being killed by the kernel) minutes later.
//
// Legend: P = parameters on this rank, B = micro-batch (sequences), T = sequence length, N = B·T tokens,
// L = layers, C = hidden, qd = heads·head_dim, kvd = kv heads·head_dim, I = intermediate, V = vocabulary,
// tp/dp/pp = tensor/data/pipeline-parallel sizes; with cp, T is a rank's T/cp tokens. Everything is
// float32 (4 bytes). With pp > 1, L is the busiest stage's ⌈L/pp⌉ layers and the activations are
// those of the micro-batches it holds.
//
//   P             = (V·C·(1 if tied else 2) + L·(2·C·qd + 2·C·kvd + 3·C·I)) / tp + L·2C + C
//                   (every matrix is cut over tp, RMSNorm weights are replicated)
//   weights       = 4·P;   gradients = 4·P;   optimizer (AdamW's m and v) = 8·P
//   activations   = 4·N·(L·(6C + 3·(qd + kvd + I)/tp) + 2C + 3V/tp) + 16·N
//                   (what autograd keeps per token and layer until the backward: the two norms' outputs,
//                   o_proj's and down_proj's outputs and the two residual sums (6C); q before and after
//                   RoPE and the attention output (3qd), k before and after RoPE and v (3kvd), gate, up
//                   and their SwiGLU product (3I); then the embedding and final norm (2C), the logits,
//                   their softmax and gradient (3V); and the token ids, inputs and targets as Int (16 bytes).
//                   Attention keeps no [T, T] matrix: the fused kernel recomputes it in the backward.
//                   One micro-batch at a time: accumulation frees each graph after its backward.)
//   communication = 4·P when dp > 1 (the data-parallel buckets hold a copy of every gradient), else 0
//
// Not counted: the process itself (runtime, OpenBLAS's buffers, a few hundred MB), a memory-mapped token
// file, and what a tensor-parallel checkpoint save gathers for a moment (the whole model's weights and
// moments, 12 bytes per parameter). It is an estimate to catch runs that cannot fit, not an accountant.
// Against the peak resident memory of real runs (release build, one rank): tiny, 64 × 256 tokens:
// estimate 3.2 GiB, peak 3.0 GiB; smollm-135m, 4 × 256: 3.8 vs 3.6 GiB; tiny, 16 × 256: 0.9 vs 1.4 GiB
// (small runs are dominated by what is not counted).

import Foundation
import Llama

/// The bytes one rank needs, by component. Doubles: the sizes this exists to catch overflow Int.
public struct MemoryEstimate: Sendable, Equatable {
    public var weights: Double
    public var gradients: Double
    /// AdamW's two moments.
    public var optimizer: Double
    /// What one micro-batch's forward keeps for the backward.
    public var activations: Double
    /// Data-parallel gradient buckets.
    public var communication: Double
    /// P, the parameters this rank holds.
    public var parametersPerRank: Double

    /// The estimate for a rank of a run with these sizes (see the formula at the top of the file).
    /// - Parameters:
    ///   - pp: pipeline stages; the estimate is the busiest stage's: ⌈L/pp⌉ layers, one V·C matrix
    ///     (the embedding, or the head) where one process holds two when untied.
    ///   - heldMicroBatches: how many micro-batches' activations a stage keeps at once (1 without a
    ///     pipeline; AFAB all of the step's, 1F1B up to pp; see `heldMicroBatches(…)`).
    public init(model c: LlamaConfig, microBatchSize: Int, sequenceLength: Int, tp: Int = 1, dp: Int = 1,
                pp: Int = 1, heldMicroBatches: Double = 1) {
        let (tp, C) = (Double(max(1, tp)), Double(c.hiddenSize))
        let L = (Double(c.numHiddenLayers) / Double(max(1, pp))).rounded(.up)
        let (V, I) = (Double(c.vocabSize), Double(c.intermediateSize))
        let qd = Double(c.numAttentionHeads) * Double(c.headDim)
        let kvd = Double(c.numKeyValueHeads) * Double(c.headDim)
        let cut = V * C * (c.tieWordEmbeddings || pp > 1 ? 1 : 2) + L * (2 * C * qd + 2 * C * kvd + 3 * C * I)
        let p = cut / tp + L * 2 * C + C
        let n = Double(microBatchSize) * Double(sequenceLength)
        parametersPerRank = p
        weights = 4 * p
        gradients = 4 * p
        optimizer = 8 * p
        activations = heldMicroBatches * (4 * n * (L * (6 * C + 3 * (qd + kvd + I) / tp) + 2 * C + 3 * V / tp) + 16 * n)
        communication = dp > 1 ? 4 * p : 0
    }

    /// The estimate for a rank of `config`'s run with its resolved `model`.
    public init(config: PicotronConfig, model: LlamaConfig) {
        let d = config.distributed, a = config.training.gradientAccumulationSteps
        self.init(model: model, microBatchSize: config.training.microBatchSize,
                  sequenceLength: config.training.seqLength / max(1, d.cpSize),   // a cp rank's tokens
                  tp: d.tpSize, dp: d.dpSize, pp: d.ppSize,
                  heldMicroBatches: Self.heldMicroBatches(engine: d.ppEngine, pp: d.ppSize, microBatches: a,
                                                          virtualStages: d.ppVirtualStages))
    }

    /// Micro-batches of a stage's activations alive at once, stage 0 (the most): without a pipeline
    /// 1 (accumulation frees each graph after its backward); AFAB all M; 1F1B min(M, pp); interleaved
    /// 2(pp − 1) + (v − 1)·pp + 1 chunks of 1/v of a stage each.
    public static func heldMicroBatches(engine: String, pp: Int, microBatches m: Int, virtualStages v: Int) -> Double {
        guard pp > 1 else { return 1 }
        switch engine {
        case "afab": return Double(m)
        case "interleaved":
            let chunks: Int = min(m * v, 2 * (pp - 1) + (v - 1) * pp + 1)
            return Double(chunks) / Double(max(1, v))
        default: return Double(min(m, pp))
        }
    }

    /// Bytes per rank, all components.
    public var perRank: Double { weights + gradients + optimizer + activations + communication }

    /// The components by name, for printing.
    public var components: [(name: String, bytes: Double)] {
        [("weights", weights), ("gradients", gradients), ("AdamW moments", optimizer),
         ("activations", activations), ("communication buffers", communication)]
    }

    /// The memory this process may use: the machine's physical memory, or the control group's
    /// limit when it is lower (containers, Slurm jobs).
    public static var availableMemory: Double {
        let physical = Double(ProcessInfo.processInfo.physicalMemory)
        let files = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]   // v2, v1
        let limits = files.compactMap { path in
            (try? String(contentsOfFile: path, encoding: .utf8))
                .flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }   // "max" → nil
        }
        return ([physical] + limits).min()!
    }

    /// Refuses a run whose `ranks` sharing this machine's memory need more than `available` bytes:
    /// throws `TrainingError.memory` with the numbers and the fix. With `force` it returns the same
    /// numbers as a warning instead. Returns nil when the run fits.
    public func check(ranks: Int, available: Double = availableMemory, force: Bool = false) throws -> String? {
        let total = perRank * Double(ranks)
        guard total > available else { return nil }
        let parts = components.filter { $0.bytes > 0 }.map { "\($0.name) \(Self.format($0.bytes))" }
        let who = ranks == 1 ? "" : " × \(ranks) ranks on this machine = \(Self.format(total))"
        let needs = "this run needs about \(Self.format(perRank)) per rank (\(parts.joined(separator: ", ")))\(who), "
            + "but this machine has \(Self.format(available))"
        guard !force else {
            return "warning: \(needs); --force runs it anyway, and it may fail to allocate or be killed"
        }
        let largest = components.max { $0.bytes < $1.bytes }!
        let first = largest.name == "activations"
            ? "activations are the largest part: use a smaller micro-batch (--mbs) or a shorter sequence (--seq-len)"
            : "\(largest.name) are the largest part: use a smaller model (fewer model.num_hidden_layers, a smaller "
                + "hidden_size, intermediate_size or vocab_size)"
        let then = largest.name == "activations" ? "a smaller model or more tensor parallelism (--tp)"
            : "more tensor parallelism (--tp)"
        let ranksFix = ranks > 1 ? "; or run fewer ranks on this machine" : ""
        throw TrainingError.memory("\(needs). \(first); \(then) shrinks every part, across machines with mpirun"
                                   + "\(ranksFix). The formula is in MemoryEstimate.swift; --force skips this check")
    }

    /// Bytes in binary units with three significant digits: "791 KiB", "4.17 TiB".
    public static func format(_ bytes: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = bytes, unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        guard value.isFinite else { return "\(bytes) B" }
        guard unit > 0 else { return "\(Int(value)) B" }
        return String(format: value < 10 ? "%.2f %@" : value < 100 ? "%.1f %@" : "%.0f %@", value, units[unit])
    }
}
