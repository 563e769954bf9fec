// The data-parallel training step, as the lesson and its tests run it: each rank reads its own
// rows with the Training module's MicroBatchLoader, runs A micro-batches through the whole model
// (each loss scaled by 1/A), lets a GradientSynchronizer average the gradients, steps AdamW,
// and averages the loss over the group for logging. `picotron train` does the same with its
// own loop; it only needs a GradientSynchronizer from this module.
//
// Legend: B = rows per micro-batch on one rank, T = sequence length, A = accumulation steps,
//         dp = data-parallel ranks, G = B · A · dp = global batch (rows per optimizer step).
//
// Equal shards make the loss exact: every rank averages over the same number of tokens B·T,
// so the mean over ranks of the per-rank means is the mean over all G·T tokens, which is
// what the single-process reference computes. With unequal shards (or ignored targets) a
// plain average of means would weight some tokens more than others.

import Distributed
import Llama
import TensorCore
import Training

/// The mean of `loss` over the ranks of `group`: the global batch's mean loss when every rank
/// averaged over the same number of tokens. For logging only; gradients never need it.
/// Task 1.6.
public func averageLoss(_ loss: Float, over group: Communicator) throws -> Float {
    // TASK(Step1.6) averageLoss (the loss averaged over the data-parallel group) @ Lessons/01-data-parallel.md#task-16
    // > all-reduce the loss over `group` and divide by its size. Until then each
    // > rank logs its own loss.
    var value = [loss]                                      // [1]
    try group.allReduce(&value, op: .sum)
    return value[0] / Float(group.size)
    // STAND-IN: return loss
    // END TASK(Step1.6)
}

/// Forward and backward of one optimizer step on this rank: `accumulation` micro-batches from
/// `loader`, each loss scaled by 1/A so the gradients add up to the gradient of the mean.
/// Calls the synchronizer around the backward passes, exactly as the training loop does.
/// Returns this rank's mean loss over its A micro-batches (not yet averaged over ranks) and the
/// batches it read.
public func accumulateGradients(model: LlamaForCausalLM, loader: inout MicroBatchLoader, accumulation: Int,
                                synchronizer: GradientSynchronizer) throws -> (loss: Float, batches: [Batch]) {
    precondition(accumulation >= 1, "accumulation steps must be >= 1, got \(accumulation)")
    var total: Float = 0
    var batches: [Batch] = []
    for i in 0..<accumulation {
        let batch = loader.next()                                                        // [B, T]
        let logits = model.logits(batch.inputs, batch: batch.batchSize, length: batch.sequenceLength,
                                  positions: batch.positions)                           // [B, T, V]
        let loss = model.lossFunction(logits, batch.targets)                            // [] mean over B·T
        synchronizer.beforeBackward(microBatch: i, of: accumulation)
        ((1 / Float(accumulation)) * loss).backward()
        total += loss.item
        batches.append(batch)
    }
    try synchronizer.finishStep()
    return (total / Float(accumulation), batches)
}

/// Which synchronizer to use: how the lesson, its tests and its executable name the strategies.
public enum DataParallelStrategy: Sendable, Equatable, CustomStringConvertible {
    /// One blocking all-reduce per parameter after its gradient is ready; `everyMicroBatch`
    /// switches the no-sync rule off (to measure what it saves).
    case naive(everyMicroBatch: Bool)
    /// Bucketed, overlapped with backward; buckets of `megabytes` MiB.
    case bucketed(megabytes: Double)

    public static let naive = DataParallelStrategy.naive(everyMicroBatch: false)

    /// A synchronizer of this kind for `model`'s parameters over `group`.
    public func make(model: LlamaForCausalLM, group: Communicator) -> GradientSynchronizer {
        switch self {
        case .naive(let every):
            return NaiveDataParallel(parameters: model.namedParameters, group: group, syncEveryMicroBatch: every)
        case .bucketed(let mb):
            return BucketedDataParallel(parameters: model.namedParameters, group: group, bucketMB: mb)
        }
    }

    public var description: String {
        switch self {
        case .naive(let every): return every ? "naive, sync every micro-batch" : "naive"
        case .bucketed(let mb): return "bucketed \(mb) MB"
        }
    }
}
