// Pipeline parallelism in the trainer: the stage (or interleaved chunks) of this rank, its
// schedule in place of the plain micro-batch loop, the loss and gradient norm of the whole
// pipeline, and checkpoints that hold the whole model under any layout (each parameter is
// broadcast over the pipeline group by the stage that holds it; resuming takes each stage's own).
// Legend: pp = stages, v = chunks per stage, A = micro-batches per step, B = micro-batch size,
// T = sequence length, C = hidden.

import Distributed
import Foundation
import Llama
import Step2_TensorParallel
import Step3_PipelineParallel
import TensorCore
import Training

/// How a run pipelines: the engine, the chunks per stage, the micro-batch shape.
public struct PipelinePlan {
    public var engine: PipelineEngine
    public var virtualStages: Int
    public var microBatches: Int, microBatchSize: Int, sequenceLength: Int

    public init(engine: PipelineEngine, virtualStages: Int, microBatches: Int, microBatchSize: Int, sequenceLength: Int) {
        (self.engine, self.virtualStages) = (engine, virtualStages)
        (self.microBatches, self.microBatchSize, self.sequenceLength) = (microBatches, microBatchSize, sequenceLength)
    }
}

extension ParallelPlan {
    /// Puts this rank's pipeline stage into `hooks`: its parameters, its schedule (which runs `sync`,
    /// data parallelism over the stage's parameters), the loss and norm over the pipeline group, and
    /// checkpoints gathered over it; returns the schedule. `tp` is the tensor-parallel group when the
    /// layers are cut.
    static func pipeline(_ plan: PipelinePlan, model: LlamaForCausalLM, grid: ProcessGrid, tp: Communicator?,
                         sync makeSync: ([(String, Tensor)]) -> GradientSynchronizer?,
                         hooks: inout ParallelHooks) throws -> PipelineStep {
        let (pp, v, s) = (grid.ppSize, plan.engine == .interleaved ? plan.virtualStages : 1, grid.ppRank)
        let chunks = (0 ..< v).map {
            PipelineStage(model: model, stage: $0 * pp + s, stages: pp * v, microBatches: plan.microBatches)
        }
        let hidden = model.hiddenShape(batch: plan.microBatchSize, length: plan.sequenceLength)   // [B, T, C], T/tp sequence parallel
        let link = PipelineLink(group: grid.ppGroup, count: hidden.reduce(1, *))
        let probe = PipelineStep(chunks: chunks, link: link)
        let stageParameters = probe.namedParameters
        let step = PipelineStep(chunks: chunks, link: link, synchronizer: makeSync(stageParameters))
        hooks.parameters = stageParameters
        hooks.synchronizer = nil   // the schedule runs it, around its own backwards
        hooks.schedule = { batches, _ in
            try step.run(batches.map { MicroBatch(inputs: $0.inputs, targets: $0.targets, batch: $0.batchSize,
                                                  length: $0.sequenceLength, positions: $0.positions) },
                         engine: plan.engine)
        }
        // The loss lives on the stage that computes it: a sum over the pipeline puts it everywhere.
        let averageOverDP = hooks.averageOverDataParallel
        hooks.averageOverDataParallel = { try averageOverDP(try grid.ppGroup.allReduced([$0], op: .sum)[0]) }
        // The norm counts every parameter once: a tied embedding's head copy (last stage) is left out.
        let tiedCopy = model.config.tieWordEmbeddings && !chunks.contains { $0.isFirst }
        let counted = Set(stageParameters.map(\.0).filter { !(tiedCopy && $0 == "model.embed_tokens.weight") })
        hooks.globalSquaredNorm = { _ in
            let local = try tp.map { try squaredGradNorm(of: model, group: $0, only: counted) }
                ?? GradientClipping.localSquaredNorm(stageParameters.filter { counted.contains($0.0) }.map(\.1))
            return Double(try grid.ppGroup.allReduced([Float(local)], op: .sum)[0])
        }
        hooks.checkpointLayout = fullShapes(model.config)
        hooks.gatherCheckpoint = { local, write in
            guard grid.dpRank == 0 && grid.cpRank == 0 else { return }   // every replica holds the same values
            try gatherPipeline(local, config: model.config, grid: grid, write: write,
                               whole: { values, name in try tp.map { try gatherWhole(values, spec: tensorParallelSpecs(of: model, group: $0)[name]!, group: $0) } ?? values },
                               owner: { owner(of: $0, config: model.config, pp: pp, v: v) })
        }
        hooks.scatterCheckpoint = { checkpoint, model, optimizer in
            let specs = tp.map { tensorParallelSpecs(of: model, group: $0) }
            try checkpoint.install(into: stageParameters, optimizer: optimizer) { name, whole in
                specs?[name].map { whole.count == $0.fullShape.reduce(1, *) ? $0.slice(whole) : whole } ?? whole
            }
        }
        return step
    }

    /// The pipeline stage (group rank) that holds parameter `name`: a layer's stage under the split
    /// of L layers into pp · v chunks; the embedding on stage 0; the final norm and head on the
    /// stage of the last chunk (pp − 1).
    public static func owner(of name: String, config: LlamaConfig, pp: Int, v: Int) -> Int {
        if name.hasPrefix("model.layers."), let i = Int(name.split(separator: ".")[2]) {
            let chunk = (0 ..< pp * v).first { stageLayers(layers: config.numHiddenLayers, stages: pp * v, stage: $0).contains(i) }!
            return chunk % pp
        }
        return name.hasPrefix("model.embed_tokens.") ? 0 : pp - 1
    }

    /// Streams the whole model's checkpoint, in model order, one parameter part at a time: the stage
    /// that holds a parameter assembles it (`whole`: over its tensor-parallel group) and sends it to
    /// stage 0, whose tensor-parallel rank 0 is the main rank that writes. Only one part is in flight
    /// at a time, so no rank ever holds more than one whole tensor beyond its own training state.
    /// A collective over the pipeline group (and the tensor-parallel groups of the owning stages).
    static func gatherPipeline(_ local: CheckpointContents, config: LlamaConfig, grid: ProcessGrid, write: CheckpointSink,
                               whole: (_ shard: [Float], _ name: String) throws -> [Float],
                               owner: (String) -> Int) throws {
        let mine = Dictionary(uniqueKeysWithValues: local.parameters.enumerated().map { ($0.element.name, $0.offset) })
        let (stage, group) = (grid.ppRank, grid.ppGroup)
        let relays = grid.tpRank == 0   // the pipeline group that holds the main rank
        for (name, shape) in fullShapes(config) {
            let o = owner(name), n = shape.reduce(1, *)
            for part in CheckpointPart.allCases {
                if stage == o, let i = mine[name] {
                    let st = local.optimizer[i]
                    let values = try whole(part.of(local.parameters[i].values, st), name)                   // [P]
                    if stage == 0 { try write(name, part, values, st.step) }
                    else if relays { try group.send(values + [Float(st.step)], to: 0) }                          // [P + 1]
                } else if stage == 0 && relays {
                    let got = try group.recv(count: n + 1, from: o)                                              // [P + 1]
                    try write(name, part, Array(got[0 ..< n]), Int(got[n]))
                }
            }
        }
    }

    /// Every parameter of the whole model with its shape, in `namedParameters` order.
    public static func fullShapes(_ c: LlamaConfig) -> [(String, [Int])] {
        let (h, hd, i) = (c.hiddenSize, c.headDim, c.intermediateSize)
        var all: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabSize, h])]
        for l in 0 ..< c.numHiddenLayers {
            let p = "model.layers.\(l)."
            all += [(p + "input_layernorm.weight", [h]),
                    (p + "self_attn.q_proj.weight", [c.numAttentionHeads * hd, h]),
                    (p + "self_attn.k_proj.weight", [c.numKeyValueHeads * hd, h]),
                    (p + "self_attn.v_proj.weight", [c.numKeyValueHeads * hd, h]),
                    (p + "self_attn.o_proj.weight", [h, c.numAttentionHeads * hd]),
                    (p + "post_attention_layernorm.weight", [h]),
                    (p + "mlp.gate_proj.weight", [i, h]), (p + "mlp.up_proj.weight", [i, h]),
                    (p + "mlp.down_proj.weight", [h, i])]
        }
        all.append(("model.norm.weight", [h]))
        if !c.tieWordEmbeddings { all.append(("lm_head.weight", [c.vocabSize, h])) }
        return all
    }
}
