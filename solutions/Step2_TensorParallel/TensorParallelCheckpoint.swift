// Checkpoints hold the whole model whatever the layout that trained it, so any layout can resume
// any checkpoint: before a save every tensor-parallel rank all-gathers its cut parameters and
// AdamW moments (every rank calls it; the main rank writes), and after a load each rank takes
// its slice of each. Which parameters are cut, and how, is the table's (TensorParallelPlan).
// Legend: tp = ranks, P = a parameter's full element count.

import Distributed
import Llama
import Training

/// The whole model's checkpoint contents from this rank's `local` ones. A collective over `group`.
public func gatherCheckpoint(_ local: CheckpointContents, of model: LlamaForCausalLM, group: Communicator)
    throws -> CheckpointContents {
    let specs = tensorParallelSpecs(of: model, group: group)
    var whole = local
    for (i, p) in local.parameters.enumerated() {
        let spec = specs[p.name]!
        guard spec.cut != .replicated else { continue }
        whole.parameters[i] = (p.name, spec.fullShape, spec.assemble(try group.allGather(p.values)))         // [P]
        whole.optimizer[i].expAvg = spec.assemble(try group.allGather(local.optimizer[i].expAvg))            // [P]
        whole.optimizer[i].expAvgSq = spec.assemble(try group.allGather(local.optimizer[i].expAvgSq))        // [P]
    }
    return whole
}

/// Puts this rank's slices of the `whole` contents into its shards of `model` and its optimizer.
public func scatterCheckpoint(_ whole: CheckpointContents, into model: LlamaForCausalLM, optimizer: AdamW,
                              group: Communicator) throws {
    let specs = tensorParallelSpecs(of: model, group: group)
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
