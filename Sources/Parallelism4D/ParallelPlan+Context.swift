// Context parallelism in the trainer: every layer's attention over the cp group (ring or
// all-gather), and each rank's tokens of every micro-batch (zigzag or contiguous). The gradients
// are averaged over the cp+dp group by the data-parallel synchroniser (ParallelPlan.swift).
// Legend: cp = ranks, T = sequence length, T/cp tokens per rank.

import Distributed
import Llama
import Step4_ContextParallel
import Training

/// How a run cuts its sequences: the layout of the tokens and the attention.
public struct ContextPlan {
    public var layout: ContextLayout = .zigzag
    public var attention: ContextAttention = .ring
    public var sequenceLength = 0

    public init(layout: ContextLayout = .zigzag, attention: ContextAttention = .ring, sequenceLength: Int = 0) {
        (self.layout, self.attention, self.sequenceLength) = (layout, attention, sequenceLength)
    }
}

extension ParallelPlan {
    /// Makes `model` context-parallel over the grid's cp group and puts the batch slicing into `hooks`.
    static func context(_ plan: ContextPlan, model: LlamaForCausalLM, grid: ProcessGrid,
                        hooks: inout ParallelHooks) -> ContextGroup {
        let (cp, t) = (grid.cpSize, plan.sequenceLength)
        let positions = (0 ..< cp).map { contextPositions(length: t, ranks: cp, rank: $0, layout: plan.layout) }
        let mine = positions[grid.cpRank]
        let group = applyContextParallel(to: model, group: grid.cpGroup, positions: positions, attention: plan.attention)
        hooks.prepareBatch = { batch in   // this rank's tokens of each row, at their global positions
            let (b, length) = (batch.batchSize, batch.sequenceLength)
            return Batch(inputs: contextShard(batch.inputs, batch: b, length: length, positions: mine),
                         targets: contextShard(batch.targets, batch: b, length: length, positions: mine),
                         positions: mine.map { batch.positions[$0] }, windowStarts: batch.windowStarts)
        }
        return group
    }
}
