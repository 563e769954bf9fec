// Making a model context-parallel: every layer's attention becomes ring (or all-gather) attention
// over the cp group, fed this rank's global positions, and the loss becomes this rank's share of
// the whole sequence's mean.
// Legend: cp = ranks, r = this rank, n_r = this rank's counted targets (not ignored), n = Σ n_r.
//
// The loss. One process averages over all n counted targets. Rank r sums its own targets' losses
// and divides by the global n (an all-reduce of the counts in forward), times cp:
//     L_r = cp · (Σ_{i∈r} ℓ_i) / n,   and   (1/cp) Σ_r L_r = (Σ_i ℓ_i) / n = L.
// So averaging the gradients over the cp group (with data parallelism: over the cp·dp group, as
// picotron does) gives exactly the single process's, even when ranks count different targets.
// picotron averages over the cp group only when dp > 1: with cp 2, dp 1 each rank steps on its
// half of the gradient alone.

import Distributed
import ExerciseKit
import Llama
import TensorCore

/// Which attention a context-parallel model uses.
public enum ContextAttention: String, CaseIterable, Sendable {
    case ring, allgather
}

/// Makes `model` context-parallel over `comm` in place: this rank holds the tokens at
/// `positions[comm.rank]` of every sequence (`positions[r]` for every rank r). Returns the group to
/// `check()` after a step.
@discardableResult
public func applyContextParallel(to model: LlamaForCausalLM, group comm: Communicator, positions: [[Int]],
                                 attention: ContextAttention = .ring) -> ContextGroup {
    let group = ContextGroup(comm)
    for layer in model.layers {
        layer.selfAttn.attend = { q, k, v, _ in                              // the positions say the mask
            attention == .ring ? ringAttention(q: q, k: k, v: v, positions: positions, group: group)
                : allGatherAttention(q: q, k: k, v: v, positions: positions, group: group)
        }
    }
    // The model's own loss (plain, or vocab-parallel under tensor parallelism): a mean over counted targets.
    let mean = model.lossFunction
    model.lossFunction = { logits, targets in
        // TODO(Step4.2): `mean(logits, targets)` averages over this rank's n_r counted targets (labels other than
        // `LlamaForCausalLM.ignoreIndex`). Return cp · n_r / n · mean, with n = Σ n_r over the group
        // (an all-reduce inside `group.run`), so that the average over the cp ranks is the single
        // process's mean. A rank with n_r = 0 returns `0 * logits.sum()` (its mean would be 0/0).
        Todo.reached("Step4.2", "the loss, each rank's share", lesson: "Lessons/04-context-parallel.md#task-42")
        return mean(logits, targets)                              // this rank's own mean
    }
    return group
}
