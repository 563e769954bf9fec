// What the training loop needs around a tensor-parallel model: which parameters are cut and
// how, the full parameters (or gradients) back from the shards for checkpoints and checks,
// and the global gradient norm for clipping.
// Legend: tp = ranks in the group, r = this rank, P = a parameter's full element count.

import Distributed
import Foundation
import Llama
import TensorCore

/// How each of the model's parameters (by Hugging Face name, as `namedParameters` lists them)
/// is held on rank `group.rank` of `group.size`: the table's cut, with the full shape from the shard's.
public func tensorParallelSpecs(of model: LlamaForCausalLM, group: Communicator) -> [String: ShardSpec] {
    var specs = [String: ShardSpec]()
    for (name, p) in model.namedParameters {
        let cut = TensorParallelPlan.style(of: name).cut, tp = group.size
        let full = cut == .rows ? [p.shape[0] * tp, p.shape[1]] : cut == .columns ? [p.shape[0], p.shape[1] * tp] : p.shape
        specs[name] = ShardSpec(cut: cut, fullShape: full, rank: group.rank, size: tp)
    }
    return specs
}

/// Every parameter in full, by Hugging Face name, in `namedParameters` order: cut ones are
/// all-gathered over the tp group and reassembled, replicated ones taken as they are.
/// A collective: every rank of the group must call it. With `gradients`, the gradients instead
/// (zeros where a parameter has none).
public func gatherFullParameters(of model: LlamaForCausalLM, group: Communicator, gradients: Bool = false)
    throws -> [(name: String, shape: [Int], values: [Float])] {
    let specs = tensorParallelSpecs(of: model, group: group)
    return try model.namedParameters.map { name, p in
        let spec = specs[name]!
        let local = gradients ? (p.grad ?? [Float](repeating: 0, count: p.count)) : p.data
        guard spec.cut != .replicated else { return (name, p.shape, local) }
        return (name, spec.fullShape, spec.assemble(try group.allGather(local)))    // P values
    }
}

/// The squared L2 norm of all gradients of the full model: Σ over cut parameters is summed
/// over the tp group (each rank holds different values); replicated ones (the norms, whose
/// gradients are equal on every rank) are counted once. A collective over `group`. `only`
/// restricts it to those parameters (a pipeline stage's own).
public func squaredGradNorm(of model: LlamaForCausalLM, group: Communicator, only: Set<String>? = nil) throws -> Double {
    let specs = tensorParallelSpecs(of: model, group: group)
    var cut: Double = 0, replicated: Double = 0
    for (name, p) in model.namedParameters where only?.contains(name) ?? true {
        guard let g = p.grad else { continue }
        let s = g.reduce(0.0) { $0 + Double($1) * Double($1) }
        if specs[name]!.cut == .replicated { replicated += s } else { cut += s }
    }
    var total = [Float(cut)]
    try group.allReduce(&total)                                       // sync point: Σ over tp ranks
    return Double(total[0]) + replicated
}

/// The global gradient norm (√ of `squaredGradNorm`). Under data parallelism, call it after the
/// gradients are averaged: every dp replica then gets the same norm. With pipeline
/// parallelism, sum `squaredGradNorm` over the pp group before the square root.
public func gradNorm(of model: LlamaForCausalLM, group: Communicator) throws -> Float {
    Float(try squaredGradNorm(of: model, group: group).squareRoot())
}

/// Scales every gradient by min(1, maxNorm / norm), as `torch.nn.utils.clip_grad_norm_`;
/// returns the norm before clipping. A collective over `group`.
@discardableResult
public func clipGradNorm(of model: LlamaForCausalLM, maxNorm: Float, group: Communicator) throws -> Float {
    let norm = try gradNorm(of: model, group: group)
    let scale = maxNorm / (norm + 1e-6)
    guard scale < 1 else { return norm }
    for p in model.parameters where p.grad != nil { p.accumulateGrad { g in for i in 0..<p.count { g[i] *= scale } } }
    return norm
}
