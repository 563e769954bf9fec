// Checkpoints hold the whole model whatever the layout that trained it, so any layout can resume
// any checkpoint: before a save every tensor-parallel rank all-gathers its cut parameters and
// AdamW moments (every rank calls it; the main rank writes), and after a load each rank takes
// its slice of each. Which parameters are cut, and how, is the table's (TensorParallelPlan).
// Legend: tp = ranks, P = a parameter's full element count.

import Distributed
import Llama
import Training

/// Streams the whole model's checkpoint from this rank's `local` contents, one parameter part at a
/// time: a cut part is all-gathered over `group` and assembled, a replicated one is already whole.
/// `write` gets every whole part, on every rank. A collective over `group`.
public func gatherCheckpoint(_ local: CheckpointContents, of model: LlamaForCausalLM, group: Communicator,
                             write: CheckpointSink) throws {
    let specs = tensorParallelSpecs(of: model, group: group)
    for (p, state) in zip(local.parameters, local.optimizer) {
        for part in CheckpointPart.allCases {
            try write(p.name, part, try gatherWhole(part.of(p.values, state), spec: specs[p.name]!, group: group), state.step) // [P]
        }
    }
}

/// One parameter part in full from this rank's shard of it. A collective over `group` when it is cut.
public func gatherWhole(_ shard: [Float], spec: ShardSpec, group: Communicator) throws -> [Float] {
    spec.cut == .replicated ? shard : spec.assemble(try group.allGather(shard))                            // [P]
}

/// Puts this rank's slices of `checkpoint` into its shards of `model` and its optimizer.
public func scatterCheckpoint(_ checkpoint: CheckpointReader, into model: LlamaForCausalLM, optimizer: AdamW,
                              group: Communicator) throws {
    let specs = tensorParallelSpecs(of: model, group: group)
    try checkpoint.install(into: model.namedParameters, optimizer: optimizer) { name, whole in
        specs[name].map { whole.count == $0.fullShape.reduce(1, *) ? $0.slice(whole) : whole } ?? whole
    }
}
