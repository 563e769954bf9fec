// One data-parallel configuration as the lesson, its tests and `mpirun` CI describe it: the
// sizes, the strategy, how long to train, and the problem every rank shares with the reference.
// Legend: dp = data-parallel ranks, A = accumulation steps, B = rows per micro-batch,
//         G = B · A · dp rows in the global batch, T = sequence length.

import ExerciseKit
import LessonKit
import Step1_DataParallel
import Training

/// One data-parallel run: sizes, strategy, and how long to train.
public struct DataParallelSetup: Sendable {
    public var dp: Int
    /// A, micro-batches per optimizer step.
    public var accumulation: Int
    /// B, rows per micro-batch on one rank.
    public var microBatch: Int
    public var strategy: DataParallelStrategy
    /// Optimizer steps (0: only the first step's gradients, no update).
    public var steps: Int
    /// Parameters held fixed (requiresGrad = false) on every rank and in the reference.
    public var frozen: Set<String>
    public var hyper: AdamW.Hyperparameters
    /// The lesson problem's seed and sequence length; its batch is G = B · A · dp rows.
    public var seed: UInt64
    public var length: Int

    public init(dp: Int, accumulation: Int = 1, microBatch: Int = 1, strategy: DataParallelStrategy = .naive,
                steps: Int = 0, frozen: Set<String> = [], hyper: AdamW.Hyperparameters = DataParallelSetup.hyper,
                seed: UInt64 = 1234, length: Int = 16) {
        (self.dp, self.accumulation, self.microBatch, self.strategy) = (dp, accumulation, microBatch, strategy)
        (self.steps, self.frozen, self.hyper, self.seed, self.length) = (steps, frozen, hyper, seed, length)
    }

    /// The lesson's AdamW settings: lr 1e-2 and ε = 1e-3. Why so large an ε: AdamW divides by
    /// √v + ε, and where a gradient is near zero that division turns float32 rounding (1e-9,
    /// from summing in another order) into a weight change of up to lr · 1e-9 / ε; with torch's
    /// ε = 1e-8 that is 1e-3, and a parameter check after a few steps would fail on noise. With
    /// ε = 1e-3 the amplification is at most lr/ε = 10, so "equal to 1e-5" stays meaningful.
    public static let hyper = AdamW.Hyperparameters(lr: 1e-2, eps: 1e-3)

    /// G = B · A · dp.
    public var globalBatch: Int { microBatch * accumulation * dp }

    /// The problem every rank and the reference share: G rows of T tokens.
    public var problem: LessonProblem { LessonProblem(seed: seed, batch: globalBatch, length: length) }
}
