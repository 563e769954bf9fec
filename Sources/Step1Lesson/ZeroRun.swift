// Running ZeRO-1 (Tasks 1.7–1.10) on one rank of the lesson problem, as the tests, the lesson
// executable and `mpirun` CI do: A micro-batches, the reduce-scatter, the global norm, the sliced
// AdamW step and the all-gather, for a few steps; what the rank holds and sends on the way.
// Legend: P = trainable values, dp = ranks, S = ⌈P/dp⌉, A = accumulation steps.

import Distributed
import ExerciseKit
import LessonKit
import Step1_DataParallel
import TensorCore
import Training

/// What one rank ends up with after `setup.steps` ZeRO-1 steps.
public struct ZeroRankResult: Sendable {
    public let rank: Int
    public let partition: ZeroPartition
    /// Gradients after step 1's reduce-scatter, by name: the average on this rank's piece, zeros
    /// elsewhere. `[n_k]` each
    public let gradients: [String: [Float]]
    /// Step 1's Σ g² over the whole gradient (Task 1.10), as this rank computed it.
    public let squaredNorm: Double
    /// The loss of each step averaged over the group.
    public let losses: [Float]
    /// Parameters after the steps. `[n_k]` each
    public let parameters: [String: [Float]]
    /// AdamW's moments on this rank, in bytes (8 per owned value).
    public let stateBytes: Int
    /// Step 1's traffic: the reduce-scatter, the norm, the all-gather (the loss average not included).
    public let traffic: CommStats
}

/// Backward passes that leave the gradients alone: ZeRO-1 reduces after the last one.
final class NoSynchronization: GradientSynchronizer {
    func beforeBackward(microBatch index: Int, of count: Int) {}
    func finishStep() throws {}
}

/// Runs `setup` (its dp, A, B, steps and AdamW settings; not its strategy) with ZeRO-1 on this rank
/// of `group`, moving rounds of `chunkMB` (the lesson's bucket size: several rounds for its model).
public func runZero(_ setup: DataParallelSetup, group: Communicator, chunkMB: Double = 0.05) throws -> ZeroRankResult {
    precondition(group.size == setup.dp, "group '\(group.name)' has \(group.size) ranks, the setup dp \(setup.dp)")
    let problem = setup.problem
    let model = problem.makeModel(frozen: setup.frozen)
    var loader = try problem.loader(microBatch: setup.microBatch, dpRank: group.rank, dpSize: group.size)
    let zero = ZeroOptimizer(parameters: model.namedParameters, group: group, hyper: setup.hyper, chunkMB: chunkMB)
    var gradients: [String: [Float]] = [:], losses: [Float] = [], norm = 0.0, traffic = CommStats()
    for step in 0 ..< max(1, setup.steps) {
        let (loss, _) = try accumulateGradients(model: model, loader: &loader, accumulation: setup.accumulation,
                                                synchronizer: NoSynchronization())
        let before = group.stats
        try zero.reduceScatterGradients()
        let squared = try zero.globalSquaredNorm()
        if setup.steps > 0 { try zero.step() }
        if step == 0 {
            (norm, traffic) = (squared, group.stats.since(before))
            for (name, p) in model.namedParameters where p.grad != nil { gradients[name] = p.grad! }
        }
        zero.optimizer.zeroGrad()
        losses.append(try averageLoss(loss, over: group))
    }
    return ZeroRankResult(rank: group.rank, partition: zero.partition, gradients: gradients, squaredNorm: norm,
                          losses: losses,
                          parameters: Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.data) }),
                          stateBytes: zero.optimizer.stateBytes, traffic: traffic)
}

/// Comparisons of a ZeRO-1 rank with the single-process reference.
public enum ZeroCheck {
    /// Each gradient on the rank's piece vs the reference's same values, and zero off the piece.
    /// Tolerance `ReferenceCheck.relativeTolerance` of the largest reference value, as for DP.
    public static func gradients(_ r: ZeroRankResult, names: [String], reference: [String: [Float]]) -> [Comparison] {
        zip(names, r.partition.pieces).compactMap { name, piece in
            guard let want = reference[name] else { return nil }
            var expected = [Float](repeating: 0, count: want.count)
            for j in piece { expected[j] = want[j] }
            let got = r.gradients[name] ?? [Float](repeating: .nan, count: want.count)
            // The tolerance of the whole tensor's largest value, even where the piece holds small ones.
            let (whole, part) = (want.map(abs).max() ?? 0, expected.map(abs).max() ?? 0)
            return ReferenceCheck.compare("rank \(r.rank): \(name) gradient (owned \(piece))", got: got, want: expected,
                                          relative: ReferenceCheck.relativeTolerance * whole / max(part, 1e-30))
                .withHint("after the reduce-scatter a rank holds the average (sum / dp) of the values it owns and "
                          + "zeros elsewhere: check the op, the scale, and that value j of a parameter at flat offset "
                          + "o is slice value o + j − owned.lowerBound")
        }
    }
}

extension DataParallelLesson {
    /// The lesson's ZeRO-1 part: what each rank keeps (AdamW's bytes measured beside 8 B × its values),
    /// the traffic beside the all-reduce's, and the training steps against the single-process run.
    /// Returns the number of failed checks (the same on every rank).
    static func zeroReport(group: Communicator, options: Options, allReduce: CommStats.Entry,
                           out: (String) -> Void) throws -> Int {
        let N = group.size
        let setup = DataParallelSetup(dp: N, accumulation: options.accumulation, microBatch: options.microBatch,
                                      steps: max(1, options.steps))
        let r = try runZero(setup, group: group, chunkMB: options.bucketMB)
        let model = setup.problem.makeModel()
        let whole = AdamW(parameters: model.parameters, hyper: setup.hyper).stateBytes   // measured: plain AdamW
        let (P, S) = (r.partition.total, r.partition.sliceLength)
        let mine: [Float] = [Float(r.partition.owned.lowerBound), Float(r.partition.owned.upperBound), Float(r.stateBytes)]
        let all = try group.allGather(mine).map { Int($0) }                                 // [N · 3]
        if !options.verifyOnly {
            var held = Table(["rank", "owned flat values", "AdamW state (measured)", "8 B × owned"])
            for q in 0 ..< N {
                let (lo, hi, bytes) = (all[3 * q], all[3 * q + 1], all[3 * q + 2])
                held.add(["\(q)", "\(lo) ..< \(hi)", "\(bytes) B", "\(8 * (hi - lo)) B"])
            }
            out("\nZeRO-1: each rank keeps AdamW's moments of its slice of the \(P) flat parameters "
                + "(S = ⌈P/dp⌉ = \(S))\n" + held.render(indent: 2)
                + "\n  AdamW state per rank: \(whole) B without ZeRO (8P, measured), \(8 * S) B or less with ZeRO-1 (8P/dp)")
            var traffic = Table(["one step, rank 0", "calls", "payload", "ring traffic"])
            traffic.add(["all-reduce (bucketed, above)", "\(allReduce.calls)", "\(allReduce.bytes) B", "\(allReduce.ringBytes) B"])
            var ring = 0
            for (name, op) in [("ZeRO-1 reduce-scatter, \(options.bucketMB) MB rounds", CommOp.reduceScatter),
                               ("ZeRO-1 all-gather, \(options.bucketMB) MB rounds", .allGather)] {
                var e = CommStats.Entry()
                for (k, x) in r.traffic.entries where k.op == op {
                    (e.calls, e.bytes, e.ringBytes) = (e.calls + x.calls, e.bytes + x.bytes, e.ringBytes + x.ringBytes)
                }
                traffic.add([name, "\(e.calls)", "\(e.bytes) B", "\(e.ringBytes) B"])
                ring += e.ringBytes
            }
            out("\nTraffic of ZeRO-1 beside the all-reduce (ledger counters)\n" + traffic.render(indent: 2)
                + "\n  formula: reduce-scatter (N−1)/N × 4·dp·S + all-gather (N−1) × 4·S = 2(N−1)/N × 4·dp·S = \(ring) B per rank,"
                + "\n  the all-reduce's \(allReduce.ringBytes) B (dp·S = \(N * S) ≥ P, the padding)")
        }
        let ref = setup.problem.referenceAfterSteps(setup.steps, hyper: setup.hyper, frozen: [])
        var table = Table(["step", "loss (ZeRO-1)", "loss (single process)", "|Δ|"])
        var lossWorst: Float = 0
        for (i, (a, b)) in zip(r.losses, ref.losses).enumerated() {
            table.add(["\(i + 1)", LessonOutput.fixed(a), LessonOutput.fixed(b), LessonOutput.diff(abs(a - b))])
            lossWorst = max(lossWorst, abs(a - b))
        }
        let params = ref.parameters.keys.sorted().map { name in
            ReferenceCheck.compare("rank \(r.rank): \(name) after ZeRO-1 steps", got: r.parameters[name]!,
                                   want: ref.parameters[name]!)
        }
        let details = Todo.pending("Step1.").isEmpty
        for c in params where details && !c.passed { RankPrinter(group).error(c.description) }
        var summary: [Float] = [params.map(\.maxAbsDiff).max() ?? 0, params.allSatisfy(\.passed) ? 0 : 1,
                                lossWorst <= 1e-5 * abs(ref.losses[0]) ? 0 : 1]
        try group.allReduce(&summary, op: .max)
        out("\nTraining \(setup.steps) steps with ZeRO-1 (AdamW lr \(setup.hyper.lr))\n" + table.render(indent: 2)
            + "\n  parameters after \(setup.steps) steps: max |Δ| = \(LessonOutput.diff(summary[0])) over ranks "
            + "\(summary[1] == 0 ? "PASS" : "FAIL"); losses \(summary[2] == 0 ? "PASS" : "FAIL")")
        return Int(summary[1] + summary[2])
    }
}
