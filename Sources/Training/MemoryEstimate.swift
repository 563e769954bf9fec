// MemoryEstimate.swift: the memory one rank of a run needs, estimated from the sizes before anything
// is allocated, so that a run too large for the machine is refused with the numbers and the fix
// instead of aborting in the allocator (or being killed by the kernel) minutes later.
//
// Legend: P = parameters on this rank, B = micro-batch (sequences), T = sequence length, N = B·T tokens,
// L = layers, C = hidden, qd = heads·head_dim, kvd = kv heads·head_dim, I = intermediate, V = vocabulary,
// tp/dp/cp/pp = tensor/data/context/pipeline-parallel sizes; with cp, T is a rank's T/cp tokens. Everything
// is float32 (4 bytes). With pp > 1 each stage s is estimated on its own: L is its L_s layers, the V·C
// matrices are the embedding (first stage) and the head (last stage), the final norm's C is the last
// stage's, and the activations are those of the micro-batches its schedule holds.
//
//   P             = (VC·(number of V·C matrices) + L·(2·C·qd + 2·C·kvd + 3·C·I)) / tp + L·2C (+ C, last stage)
//                   (every matrix is cut over tp, RMSNorm weights are replicated; one process holds the
//                   embedding and, untied, lm_head: 2 matrices; tied, 1)
//   weights       = 4·P;   gradients = 4·P;   optimizer (AdamW's m and v) = 8·P, or 8·P/(dp·cp) with ZeRO-1
//   activations   = 4·N·(L·(6C/s + 3·(qd + kvd + I)/tp) + C/s (first stage) + C/s + 3V/tp (last stage)) + 16·N
//                   (s = tp with sequence parallelism, 1 without)
//                   (what autograd keeps per token and layer until the backward: the two norms' outputs,
//                   o_proj's and down_proj's outputs and the two residual sums (6C); q before and after
//                   RoPE and the attention output (3qd), k before and after RoPE and v (3kvd), gate, up
//                   and their SwiGLU product (3I); then the embedding and final norm (2C), the logits,
//                   their softmax and gradient (3V); and the token ids, inputs and targets as Int (16 bytes).
//                   Attention keeps no [T, T] matrix: the fused kernel recomputes it in the backward.
//                   One micro-batch at a time: accumulation frees each graph after its backward.
//                   Sequence parallelism splits the 6C between the blocks and the ends' C over tp.)
//   communication = one bucket, min(4·P, 25 MiB), when dp·cp > 1: the gradients move into the data-parallel
//                   buckets and back (they are never held twice), so a bucket is extra only while it is
//                   copied back; with ZeRO-1 instead the all-gather's 4·P, received while the weights are held
//
// Not counted: the process itself (runtime, OpenBLAS's buffers, 100–200 MB), a memory-mapped token file,
// and what a checkpoint save assembles for a moment (one whole parameter at a time, on the ranks that
// hold it and on the main rank). It is an estimate to catch runs that cannot fit, not an accountant.
// Against the peak resident memory of real runs: see docs/memory.md.

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
    ///   - pp, stage: pipeline stages, and the stage this rank runs (nil: the busiest, stage 0's layers
    ///     with one V·C matrix and both ends' activations: an upper bound for any stage).
    ///   - virtualStages: chunks per stage of the interleaved schedule (its stage's layers).
    ///   - heldMicroBatches: how many micro-batches' activations the stage keeps at once (1 without a
    ///     pipeline; AFAB all of the step's, 1F1B up to pp − stage; see `heldMicroBatches(…)`).
    ///   - zeroStage: 1 slices AdamW's moments over the dp · cp ranks (ZeRO-1).
    public init(model c: LlamaConfig, microBatchSize: Int, sequenceLength: Int, tp: Int = 1, dp: Int = 1, cp: Int = 1,
                pp: Int = 1, stage: Int? = nil, virtualStages: Int = 1, heldMicroBatches: Double = 1,
                sequenceParallel: Bool = false, zeroStage: Int = 0) {
        let (tp, C) = (Double(max(1, tp)), Double(c.hiddenSize))
        let pp = max(1, pp)
        let (first, last) = stage.map { ($0 == 0, $0 == pp - 1) } ?? (true, pp == 1)
        let L = stage.map { Double(Self.layers(c.numHiddenLayers, pp: pp, virtualStages: virtualStages, stage: $0)) }
            ?? (Double(c.numHiddenLayers) / Double(pp)).rounded(.up)
        let (V, I) = (Double(c.vocabSize), Double(c.intermediateSize))
        let qd = Double(c.numAttentionHeads) * Double(c.headDim)
        let kvd = Double(c.numKeyValueHeads) * Double(c.headDim)
        let matrices = pp == 1 ? (c.tieWordEmbeddings ? 1.0 : 2) : stage == nil ? 1 : (first ? 1 : 0) + (last ? 1 : 0)
        let cut = V * C * matrices + L * (2 * C * qd + 2 * C * kvd + 3 * C * I)
        let p = cut / tp + L * 2 * C + (last || stage == nil ? C : 0)
        let n = Double(microBatchSize) * Double(sequenceLength)
        let sp = sequenceParallel ? tp : 1   // the activations between the blocks: T/tp tokens each
        let ends = (first ? C / sp : 0) + (last || stage == nil ? C / sp + 3 * V / tp : 0)
        parametersPerRank = p
        weights = 4 * p
        gradients = 4 * p
        let zero = zeroStage == 1 && dp * cp > 1
        optimizer = zero ? 8 * p / Double(dp * cp) : 8 * p
        activations = heldMicroBatches * (4 * n * (L * (6 * C / sp + 3 * (qd + kvd + I) / tp) + ends) + 16 * n)
        communication = zero ? 4 * p : dp * cp > 1 ? min(4 * p, Self.bucketBytes) : 0
    }

    /// The data-parallel bucket (25 MiB, torch DDP's and picotron's default).
    public static let bucketBytes = 25.0 * 1024 * 1024

    /// The estimate for a rank of `config`'s run with its resolved `model`: the busiest stage's.
    public init(config: PicotronConfig, model: LlamaConfig) {
        self = Self.stages(config: config, model: model).max { $0.perRank < $1.perRank }!
    }

    /// One estimate per pipeline stage of `config`'s run (every rank of a stage needs the same).
    public static func stages(config: PicotronConfig, model: LlamaConfig) -> [MemoryEstimate] {
        let d = config.distributed, a = config.training.gradientAccumulationSteps
        let v = d.ppEngine == "interleaved" ? d.ppVirtualStages : 1
        return (0 ..< max(1, d.ppSize)).map { s in
            MemoryEstimate(model: model, microBatchSize: config.training.microBatchSize,
                           sequenceLength: config.training.seqLength / max(1, d.cpSize),   // a cp rank's tokens
                           tp: d.tpSize, dp: d.dpSize, cp: d.cpSize, pp: d.ppSize, stage: s, virtualStages: v,
                           heldMicroBatches: heldMicroBatches(engine: d.ppEngine, pp: d.ppSize, microBatches: a,
                                                              virtualStages: d.ppVirtualStages, stage: s),
                           sequenceParallel: d.sequenceParallel, zeroStage: d.zeroStage)
        }
    }

    /// Layers on `stage` when L layers are split into pp · v chunks (picotron's split: the first
    /// L mod chunks chunks one more), chunk k on stage k mod pp.
    public static func layers(_ l: Int, pp: Int, virtualStages v: Int, stage: Int) -> Int {
        let chunks = pp * max(1, v)
        return stride(from: stage, to: chunks, by: pp).reduce(0) { $0 + l / chunks + ($1 < l % chunks ? 1 : 0) }
    }

    /// Micro-batches of stage s's activations alive at once (stage 0 holds the most): without a
    /// pipeline 1 (accumulation frees each graph after its backward); AFAB all M; 1F1B min(M, pp − s);
    /// interleaved 2(pp − 1 − s) + (v − 1)·pp + 1 chunks of 1/v of a stage each; zb 1F1B's plus
    /// one (its queued weight-gradient products keep their inputs: under a micro-batch's worth on
    /// the first stages, up to two on the last; under tp nothing is put off and this is one too many).
    public static func heldMicroBatches(engine: String, pp: Int, microBatches m: Int, virtualStages v: Int,
                                        stage s: Int = 0) -> Double {
        guard pp > 1 else { return 1 }
        switch engine {
        case "afab": return Double(m)
        case "interleaved":
            let chunks: Int = min(m * v, 2 * (pp - 1 - s) + (v - 1) * pp + 1)
            return Double(chunks) / Double(max(1, v))
        case "zb": return Double(min(m, pp - s + 1))
        default: return Double(min(m, pp - s))
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
        try Self.check(stages: [self], ranks: ranks, available: available, force: force)
    }

    /// The same for a pipelined run, one estimate per stage: the ranks sharing the machine are spread
    /// evenly over the stages (each stage has dp · cp · tp of them), so they need the stages' average each.
    public static func check(stages: [MemoryEstimate], ranks: Int, available: Double = availableMemory,
                             force: Bool = false) throws -> String? {
        let average = stages.reduce(0) { $0 + $1.perRank } / Double(stages.count)
        let total = average * Double(ranks)
        guard total > available else { return nil }
        let busiest = stages.indices.max { stages[$0].perRank < stages[$1].perRank }!
        let largest = stages[busiest]
        let parts = largest.components.filter { $0.bytes > 0 }.map { "\($0.name) \(format($0.bytes))" }
        let perRank = stages.count == 1 ? "\(format(average)) per rank (\(parts.joined(separator: ", ")))"
            : "\(format(average)) per rank on average over its \(stages.count) pipeline stages (stage \(busiest), the "
                + "largest: \(format(largest.perRank)): \(parts.joined(separator: ", ")))"
        let who = ranks == 1 ? "" : " × \(ranks) ranks on this machine = \(format(total))"
        let needs = "this run needs about \(perRank)\(who), but this machine has \(format(available))"
        guard !force else {
            return "warning: \(needs); --force runs it anyway, and it may fail to allocate or be killed"
        }
        let top = largest.components.max { $0.bytes < $1.bytes }!
        let first = top.name == "activations"
            ? "activations are the largest part: use a smaller micro-batch (--mbs) or a shorter sequence (--seq-len)"
            : "\(top.name) are the largest part: use a smaller model (fewer model.num_hidden_layers, a smaller "
                + "hidden_size, intermediate_size or vocab_size)"
        let then = top.name == "activations" ? "a smaller model or more tensor parallelism (--tp)"
            : "more tensor or pipeline parallelism (--tp, --pp)"
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
