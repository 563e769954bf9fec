import Distributed
import Foundation
import Llama
import Step1_DataParallel
import Step2_TensorParallel
import Step3_PipelineParallel
import Step4_ContextParallel
import TensorCore
import Training

/// How one rank takes part in a run: its (possibly parallelised) model and the loop's hooks.
/// Each lesson's module supplies its piece; this is the one place they are put together, in
/// picotron's order: tensor parallelism cuts the layers, pipeline parallelism splits them into
/// stages, context parallelism replaces attention, data parallelism averages over the cp+dp group.
public struct ParallelPlan {
    public let model: LlamaForCausalLM
    public let hooks: ParallelHooks
    /// Assembles the whole model: a collective over the tensor-parallel group, so every rank
    /// calls it; the result is meaningful on tensor-parallel rank 0.
    public let fullModel: () throws -> LlamaForCausalLM
    /// This rank's pipeline schedule when pp > 1 (nil otherwise): what the loop runs each step, open to
    /// a measurement (`measureMemory`, its trace) without changing what it does.
    public let pipelineStep: PipelineStep?

    /// `sequenceParallel` splits the activations between the tensor-parallel blocks along the sequence
    /// (lesson 2, Tasks 2.9–2.11); it is ignored when tp is 1 (the config's note says so).
    /// `zeroStage` 1 slices AdamW's moments over the cp+dp group (ZeRO-1, lesson 1); 0 does not.
    public static func make(grid: ProcessGrid, modelConfig: LlamaConfig, seed: UInt64, bucketMB: Double,
                     pipeline: PipelinePlan, context: ContextPlan = ContextPlan(),
                     sequenceParallel: Bool = false, zeroStage: Int = 0) throws -> ParallelPlan {
        var hooks = ParallelHooks()
        hooks.isMainRank = grid.worldRank == 0
        hooks.worldSize = grid.worldSize
        if grid.worldSize > 1 {   // a stop request (Ctrl-C) counts when any rank has it
            hooks.anyRank = { flag in try grid.world.allReduced([flag ? 1 : 0], op: .max)[0] > 0 }
        }

        // Pipeline parallelism: a stage allocates only the weights it holds (the others are empty).
        let v = pipeline.engine == .interleaved ? pipeline.virtualStages : 1
        let (pp, stage) = (grid.ppSize, grid.ppRank)
        let keeps: (String) -> Bool = { name in
            pp == 1 || owner(of: name, config: modelConfig, pp: pp, v: v) == stage
                || (name == "model.embed_tokens.weight" && modelConfig.tieWordEmbeddings && stage == pp - 1)
        }

        // Tensor parallelism: each rank builds only its shards, straight from the seed; with sequence
        // parallelism a rank holds T/tp tokens of each sequence between the blocks (and sends them down the pipeline).
        let model: LlamaForCausalLM
        var tp: TensorParallelGroup?
        if grid.tpSize > 1 {
            let made = try makeTensorParallelLlama(config: modelConfig, seed: seed, group: grid.tpGroup,
                                                   sequenceParallel: sequenceParallel, keeps: keeps)
            (model, tp) = (made.model, made.group)
            hooks.globalSquaredNorm = { _ in try squaredGradNorm(of: model, group: grid.tpGroup) }
            hooks.checkpointLayout = fullShapes(modelConfig)
            hooks.gatherCheckpoint = { local, write in   // every dp and cp replica holds the same values
                guard grid.dpRank == 0 && grid.cpRank == 0 else { return }
                try gatherCheckpoint(local, of: model, group: grid.tpGroup, write: write)
            }
            hooks.scatterCheckpoint = { try scatterCheckpoint($0, into: $1, optimizer: $2, group: grid.tpGroup) }
        } else {
            model = try LlamaForCausalLM(config: modelConfig, seed: seed, building: LlamaBuilder.plain.keeping(keeps))
        }

        // Context parallelism: attention over the cp group, each rank its tokens of every sequence.
        let cp = grid.cpSize > 1 ? ParallelPlan.context(context, model: model, grid: grid, hooks: &hooks) : nil

        // Data parallelism: disjoint data per dp rank, bucketed all-reduce overlapped with backward.
        // With context parallelism over the cp+dp group (every cp rank saw other tokens of the same
        // sequences), as in picotron, but also when dp is 1 (picotron forgets that case).
        // With pipeline parallelism it averages only the stage's parameters, and the schedule runs it.
        // With ZeRO-1 the gradients are reduce-scattered after the step's backwards instead (below).
        let averaging = grid.cpSize > 1 ? grid.cpDPGroup : grid.dpGroup
        let zero = zeroStage == 1 && averaging.size > 1
        func synchronizer(_ parameters: [(String, Tensor)]) -> GradientSynchronizer? {
            var sync: GradientSynchronizer?
            if averaging.size > 1 && !zero {
                sync = BucketedDataParallel(parameters: parameters, group: averaging, bucketMB: bucketMB, movesGradients: true)
            }
            if let cp { sync = CommunicationErrors(check: cp.check, then: sync) }
            if let tp { sync = CommunicationErrors(check: tp.check, then: sync) }
            return sync
        }
        if grid.dpSize > 1 {
            hooks.dpRank = grid.dpRank
            hooks.dpSize = grid.dpSize
        }
        if averaging.size > 1 { hooks.averageOverDataParallel = { try averageLoss($0, over: averaging) } }
        // Pipeline parallelism: this rank's stage of the layers, run by a schedule (which runs the
        // synchronizer of the stage's parameters); otherwise the loop runs one for the whole model.
        var pipelineStep: PipelineStep?
        if grid.ppSize > 1 {
            pipelineStep = try ParallelPlan.pipeline(pipeline, model: model, grid: grid,
                                                     tp: grid.tpSize > 1 ? grid.tpGroup : nil, sync: synchronizer, hooks: &hooks)
        } else {
            hooks.synchronizer = synchronizer(model.namedParameters)
        }
        if zero { ParallelPlan.zero(over: averaging, hooks: &hooks) }

        let fullModel: () throws -> LlamaForCausalLM = {
            guard grid.tpSize > 1 || grid.ppSize > 1 else { return model }
            let full = LlamaForCausalLM(config: modelConfig, seed: seed)
            var parameters = grid.tpSize > 1 ? try gatherFullParameters(of: model, group: grid.tpGroup)
                : model.namedParameters.map { ($0.0, $0.1.shape, $0.1.data) }
            if grid.ppSize > 1 {   // each parameter from the stage that trained it
                let sizes = Dictionary(uniqueKeysWithValues: fullShapes(modelConfig).map { ($0.0, $0.1.reduce(1, *)) })
                for i in parameters.indices {
                    let n = sizes[parameters[i].name]!
                    if parameters[i].values.count != n {   // a placeholder here: receive the whole parameter
                        parameters[i] = (parameters[i].name, fullShapes(modelConfig).first { $0.0 == parameters[i].name }!.1,
                                         [Float](repeating: 0, count: n))
                    }
                    try grid.ppGroup.broadcast(&parameters[i].values,
                                               root: owner(of: parameters[i].name, config: modelConfig, pp: grid.ppSize, v: v))
                }
            }
            for ((name, p), gathered) in zip(full.namedParameters, parameters) {
                precondition(name == gathered.name, "gathered \(gathered.name) where \(name) was expected")
                p.data = gathered.values
            }
            return full
        }
        return ParallelPlan(model: model, hooks: hooks, fullModel: fullModel, pipelineStep: pipelineStep)
    }
}

/// Surfaces a communication error that a collective hit inside forward or backward (tensor-parallel
/// layers, context-parallel attention: code that cannot throw keeps its group's first error), then
/// lets data parallelism finish the step.
public final class CommunicationErrors: GradientSynchronizer {
    let check: () throws -> Void
    let next: GradientSynchronizer?

    public init(check: @escaping () throws -> Void, then next: GradientSynchronizer?) {
        (self.check, self.next) = (check, next)
    }

    public func beforeBackward(microBatch index: Int, of count: Int) { next?.beforeBackward(microBatch: index, of: count) }
    public func synchronizes(microBatch index: Int, of count: Int) -> Bool {
        next?.synchronizes(microBatch: index, of: count) ?? (index == count - 1)
    }

    public func finishStep() throws {
        try check()
        try next?.finishStep()
    }
}
