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
            (hooks.gatherCheckpoint, hooks.scatterCheckpoint) = checkpointShards(model, grid.tpGroup)
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

/// Checkpoints hold the whole model, so any layout can resume any checkpoint: a tensor-parallel
/// rank all-gathers its cut parameters and AdamW moments before a save (every rank calls it; the
/// main rank writes), and takes its slice of each after a load.
func checkpointShards(_ model: LlamaForCausalLM, _ group: Communicator)
    -> (gather: (CheckpointContents) throws -> CheckpointContents,
        scatter: (CheckpointContents, LlamaForCausalLM, AdamW) throws -> Void) {
    let specs = tensorParallelSpecs(of: model)
    let gather: (CheckpointContents) throws -> CheckpointContents = { local in
        var whole = local
        for (i, p) in local.parameters.enumerated() {
            let spec = specs[p.name]!
            guard spec.cut != .replicated else { continue }
            whole.parameters[i] = (p.name, spec.fullShape, spec.assemble(try group.allGather(p.values)))
            whole.optimizer[i].expAvg = spec.assemble(try group.allGather(local.optimizer[i].expAvg))
            whole.optimizer[i].expAvgSq = spec.assemble(try group.allGather(local.optimizer[i].expAvgSq))
        }
        return whole
    }
    let scatter: (CheckpointContents, LlamaForCausalLM, AdamW) throws -> Void = { whole, model, optimizer in
        let index = Dictionary(uniqueKeysWithValues: whole.parameters.enumerated().map { ($0.element.name, $0.offset) })
        var states = [AdamW.State]()
        for (name, p) in model.namedParameters {
            guard let i = index[name], let spec = specs[name] else {
                throw TrainingError.checkpoint("the checkpoint has no \(name)")
            }
            guard whole.parameters[i].values.count == spec.fullShape.reduce(1, *) else {
                throw TrainingError.checkpoint("the checkpoint's \(name) has shape \(whole.parameters[i].shape), the model "
                                               + "\(spec.fullShape): its config.json and weights disagree")
            }
            p.data = spec.slice(whole.parameters[i].values)
            var s = whole.optimizer[i]
            (s.expAvg, s.expAvgSq) = (spec.slice(s.expAvg), spec.slice(s.expAvgSq))
            states.append(s)
        }
        try optimizer.restore(states)
    }
    return (gather, scatter)
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
