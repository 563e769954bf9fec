// Running one data-parallel configuration on one rank and checking it against the
// single-process reference: the code the tests, the lesson executable and `mpirun` CI share.
// A check's failure names the rank, the tensor, max |Δ| and where, and guesses the cause.
//
// Legend: dp = data-parallel ranks, A = accumulation steps, B = rows per micro-batch,
//         G = B · A · dp rows in the global batch, P = values in one parameter.

import Distributed
import ExerciseKit
import LessonKit
import Llama
import Step1_DataParallel
import TensorCore
import Training

/// What one rank ends up with after `DataParallelSetup.steps` steps.
public struct DataParallelRankResult: Sendable {
    public let rank: Int
    /// Rows of the problem's batch this rank read in step 1, one list per micro-batch. `[A][B]`
    public let rows: [[Int]]
    /// Gradients after step 1's synchronisation, before the optimizer (frozen: absent). `[P]` each
    public let gradients: [String: [Float]]
    /// Shapes of all parameters, by name, for messages.
    public let shapes: [String: [Int]]
    /// The loss of each step averaged over the group (step 1 first), and this rank's own step-1 loss.
    public let losses: [Float]
    public let localLoss: Float
    /// Parameters after the optimizer steps (the initial ones when steps = 0). `[P]` each
    public let parameters: [String: [Float]]
    /// Step 1's gradient-synchronisation traffic of this rank (the loss average not included).
    public let traffic: CommStats
    /// Bucketed only: the buckets' sizes in floats, and the timeline of the last step.
    public let bucketSizes: [Int]
    public let timeline: Timeline?
}

/// Runs `setup` on this rank of `group` (the data-parallel group; its size must be `setup.dp`).
/// `synchronizer`, if given, replaces the setup's strategy (tests use it to plant known bugs).
public func runDataParallel(
    _ setup: DataParallelSetup, group: Communicator,
    synchronizer make: ((LlamaForCausalLM, Communicator) -> GradientSynchronizer)? = nil
) throws -> DataParallelRankResult {
    precondition(group.size == setup.dp, "group '\(group.name)' has \(group.size) ranks, the setup dp \(setup.dp)")
    let problem = setup.problem
    let model = problem.makeModel(frozen: setup.frozen)
    var loader = try problem.loader(microBatch: setup.microBatch, dpRank: group.rank, dpSize: group.size)
    let synchronizer = make?(model, group) ?? setup.strategy.make(model: model, group: group)
    let optimizer = AdamW(parameters: model.parameters, hyper: setup.hyper)
    var rows: [[Int]] = [], gradients: [String: [Float]] = [:], losses: [Float] = []
    var localLoss: Float = 0, traffic = CommStats()
    for step in 0..<max(1, setup.steps) {
        let before = group.stats
        let (loss, batches) = try accumulateGradients(model: model, loader: &loader, accumulation: setup.accumulation,
                                                      synchronizer: synchronizer)
        if step == 0 {
            traffic = group.stats.since(before)
            rows = batches.map { $0.windowStarts.map { $0 / (setup.length + 1) } }
            for (name, p) in model.namedParameters where p.grad != nil { gradients[name] = p.grad! }
            localLoss = loss
        }
        losses.append(try averageLoss(loss, over: group))
        if setup.steps > 0 {
            optimizer.step()
            optimizer.zeroGrad()
        }
    }
    let bucketed = synchronizer as? BucketedDataParallel
    (synchronizer as? NaiveDataParallel)?.detach()
    bucketed?.detach()
    return DataParallelRankResult(
        rank: group.rank, rows: rows, gradients: gradients,
        shapes: Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.shape) }),
        losses: losses, localLoss: localLoss,
        parameters: Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.data) }),
        traffic: traffic, bucketSizes: bucketed?.buckets.map(\.count) ?? [], timeline: bucketed?.timeline)
}

/// Comparisons of a rank's result with the single-process reference, with hints.
public enum DataParallelCheck {
    /// Every trainable parameter's gradient on `result`'s rank vs the reference gradient of the
    /// global batch. Tolerance: `ReferenceCheck.relativeTolerance` (1e-5 of the largest
    /// reference value): the ranks sum the same products in another order (per shard, then
    /// across ranks), which moves float32 results by a few ulp; a real bug is off by 1e-2+.
    public static func gradients(_ result: DataParallelRankResult, setup: DataParallelSetup,
                                 reference: [String: [Float]]) -> [Comparison] {
        var local: [String: [Float]]?   // this rank's own gradients, computed only to explain a failure
        return reference.keys.sorted().map { name in
            let want = reference[name]!
            let label = "rank \(result.rank): \(name) gradient"
            guard let got = result.gradients[name] else {
                return ReferenceCheck.compare(label, got: [Float](repeating: .nan, count: want.count), want: want)
                    .withHint("no gradient on this rank: did the synchronizer drop it (or freeze it)?")
            }
            let c = ReferenceCheck.compare(label, got: got, want: want, shape: result.shapes[name])
            if c.passed { return c }
            if local == nil {
                local = setup.problem.gradients(rowList: result.rows.flatMap { $0 }, frozen: setup.frozen).gradients
            }
            return c.withHint(hint(got: got, want: want, local: local?[name], setup: setup))
        }
    }

    /// Every parameter after the optimizer steps vs the reference run's.
    public static func parameters(_ result: DataParallelRankResult, reference: [String: [Float]]) -> [Comparison] {
        reference.keys.sorted().map { name in
            ReferenceCheck.compare("rank \(result.rank): \(name) after steps", got: result.parameters[name]!,
                                   want: reference[name]!, shape: result.shapes[name])
                .withHint("the parameters drifted from the reference although each step starts from equal "
                          + "weights: check the gradients first (they are what the ranks must agree on)")
        }
    }

    /// The likely cause of a gradient that differs from the reference.
    static func hint(got: [Float], want: [Float], local: [Float]?, setup: DataParallelSetup) -> String {
        let (dp, A) = (Float(setup.dp), Float(setup.accumulation))
        if got.allSatisfy({ $0 == 0 }) {
            return "the gradient is all zeros: were the reduced values copied back into the gradient after the wait?"
        }
        if let local, ReferenceCheck.compare("", got: got, want: local).passed {
            return "this is the rank's own gradient, never reduced: does the hook all-reduce param.grad (not "
                + "param.data, picotron issue #39), and does the no-sync rule let the last micro-batch synchronise?"
        }
        if let k = ReferenceCheck.ratio(got: got, want: want) {
            func near(_ x: Float) -> Bool { abs(k - x) < 1e-2 * x }
            if dp > 1 && near(dp) {
                return "gradients are dp× too large (×\(Int(dp))): did you average (divide the sum by dp)?"
            }
            if dp > 1 && near(1 / dp) { return "gradients are dp× too small: did you divide by dp twice?" }
            if A > 1 && near(A) {
                return "gradients are A× too large (×\(Int(A))): scale each micro-batch loss by 1/A"
            }
            return String(format: "gradients are %.3g× the reference: check the averaging factor", k)
        }
        return "the values are not a multiple of the reference: check which slice of the bucket each gradient uses "
            + "(offsets), that every bucket is launched once and waited for, and that no micro-batch is skipped"
    }
}
