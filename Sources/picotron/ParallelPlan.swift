import Distributed
import Foundation
import Llama
import Step1_DataParallel
import Step2_TensorParallel
import TensorCore
import Training

/// How one rank takes part in a run: its (possibly parallelised) model and the loop's hooks.
/// Each lesson's module supplies its piece; this is the one place they are put together, in
/// picotron's order: tensor parallelism cuts the model, data parallelism averages its gradients.
struct ParallelPlan {
    let model: LlamaForCausalLM
    let hooks: ParallelHooks
    /// Assembles the whole model: a collective over the tensor-parallel group, so every rank
    /// calls it; the result is meaningful on tensor-parallel rank 0.
    let fullModel: () throws -> LlamaForCausalLM

    static func make(grid: ProcessGrid, modelConfig: LlamaConfig, seed: UInt64, bucketMB: Double) throws -> ParallelPlan {
        for (name, size, lesson) in [("pp_size", grid.ppSize, "3 (pipeline)"), ("cp_size", grid.cpSize, "4 (context)")]
        where size > 1 {
            throw TrainingError.config("distributed.\(name) \(size): this dimension arrives with lesson \(lesson); "
                                       + "set \(name) to 1 for now")
        }
        var hooks = ParallelHooks()
        hooks.isMainRank = grid.worldRank == 0
        hooks.worldSize = grid.worldSize
        if grid.worldSize > 1 {   // a stop request (Ctrl-C) counts when any rank has it
            hooks.anyRank = { flag in try grid.world.allReduced([flag ? 1 : 0], op: .max)[0] > 0 }
        }

        // Tensor parallelism: each rank builds only its shards, straight from the seed.
        let model: LlamaForCausalLM
        var tp: TensorParallelGroup?
        if grid.tpSize > 1 {
            let made = try makeTensorParallelLlama(config: modelConfig, seed: seed, group: grid.tpGroup)
            (model, tp) = (made.model, made.group)
            hooks.globalSquaredNorm = { _ in try squaredGradNorm(of: model, group: grid.tpGroup) }
            hooks.gatherCheckpoint = { try gatherCheckpoint($0, of: model, group: grid.tpGroup) }
            hooks.scatterCheckpoint = { try scatterCheckpoint($0, into: $1, optimizer: $2, group: grid.tpGroup) }
        } else {
            model = LlamaForCausalLM(config: modelConfig, seed: seed)
        }

        // Data parallelism: disjoint data per dp rank, bucketed all-reduce overlapped with backward.
        // (With context parallelism this becomes the cp+dp group, as in picotron.)
        var sync: GradientSynchronizer?
        if grid.dpSize > 1 {
            hooks.dpRank = grid.dpRank
            hooks.dpSize = grid.dpSize
            sync = BucketedDataParallel(parameters: model.namedParameters, group: grid.dpGroup, bucketMB: bucketMB)
            hooks.averageOverDataParallel = { try averageLoss($0, over: grid.dpGroup) }
        }
        if let tp { sync = TensorParallelErrors(group: tp, then: sync) }
        hooks.synchronizer = sync

        let fullModel: () throws -> LlamaForCausalLM = {
            guard grid.tpSize > 1 else { return model }
            let full = LlamaForCausalLM(config: modelConfig, seed: seed)
            let parameters = try gatherFullParameters(of: model, group: grid.tpGroup)
            for ((name, p), gathered) in zip(full.namedParameters, parameters) {
                precondition(name == gathered.name, "gathered \(gathered.name) where \(name) was expected")
                p.data = gathered.values
            }
            return full
        }
        return ParallelPlan(model: model, hooks: hooks, fullModel: fullModel)
    }
}

/// Surfaces a communication error that a tensor-parallel collective hit inside forward or
/// backward (where it cannot throw), then lets data parallelism finish the step.
final class TensorParallelErrors: GradientSynchronizer {
    let group: TensorParallelGroup
    let next: GradientSynchronizer?

    init(group: TensorParallelGroup, then next: GradientSynchronizer?) {
        self.group = group
        self.next = next
    }

    func beforeBackward(microBatch index: Int, of count: Int) { next?.beforeBackward(microBatch: index, of: count) }

    func finishStep() throws {
        try group.check()
        try next?.finishStep()
    }
}
