// ZeRO-1 in the trainer (lesson 1, Tasks 1.7–1.10): AdamW keeps the moments of this rank's slice of
// its parameters only, over the group that averages gradients (cp+dp, or dp). Composed last, on top
// of whatever tensor, pipeline and context parallelism put into the hooks: the gradients are
// reduce-scattered after the step's backwards (after a pipeline's tied-embedding sum, which adds
// the two copies' own gradients), the norm adds the slices' squares over the group (each rank's
// part computed by the tp/pp rule already in the hooks), the update is followed by the all-gather,
// and a checkpoint assembles each parameter's moments from the slices before the tp/pp gather.
// Legend: P = this rank's trainable values (its tp shard, its pp stage), dp = ranks of the group.

import Distributed
import Step1_DataParallel
import TensorCore
import Training

extension ParallelPlan {
    /// Replaces the optimizer of `hooks` by ZeRO-1 over `group`; the reduce-scatter is blocking, after
    /// the backwards (no bucketed overlap yet: the Communicator has no non-blocking reduce-scatter).
    static func zero(over group: Communicator, hooks: inout ParallelHooks) {
        final class Box { var zero: ZeroOptimizer? }
        let box = Box()
        func zero() -> ZeroOptimizer {
            guard let z = box.zero else { preconditionFailure("ZeRO-1's hooks ran before the trainer made its optimizer") }
            return z
        }
        hooks.makeOptimizer = { parameters, hyper in
            let z = ZeroOptimizer(parameters: parameters, group: group, hyper: hyper)
            box.zero = z
            return z.optimizer
        }
        hooks.afterBackward = { try zero().reduceScatterGradients() }
        hooks.afterOptimizerStep = { try zero().allGatherParameters() }
        let norm = hooks.globalSquaredNorm   // this rank's slices, over tp and pp as before
        hooks.globalSquaredNorm = { try zeroGlobalSquaredNorm(try norm($0), over: group) }
        // Whole moments on group rank 0 (dp 0, cp 0: the rank the tp/pp gathers use). A model that is
        // not cut streams them one parameter at a time; the tp/pp gathers take them all at once.
        if let gather = hooks.gatherCheckpoint {
            hooks.gatherCheckpoint = { local, write in
                var whole = local
                whole.optimizer = try local.optimizer.indices.map { try zero().wholeState($0, local.optimizer[$0]) }
                try gather(whole, write)
            }
        } else {
            hooks.gatherCheckpoint = { local, write in
                for (k, (p, st)) in zip(local.parameters, local.optimizer).enumerated() {
                    let one = CheckpointContents(config: local.config, parameters: [p],
                                                 optimizer: [try zero().wholeState(k, st)], trainer: local.trainer)
                    try one.write(to: write)
                }
            }
        }
        // Resuming needs nothing more: AdamW.restore keeps its slice of each whole state it is given.
    }
}
