// Ring attention: the keys and values travel around the ring of cp ranks, one block per step,
// while each rank attends its queries to the block in hand; partial results are merged with the
// log-sum-exp rule, so no rank ever holds more than two blocks: O(T/cp) memory.
// Legend: B = batch, Tl = T/cp tokens per rank, nh / nkv = query / key-value heads, hs = head size,
// cp = ranks, r = this rank; at step j rank r holds the block of rank (r − j) mod cp.
//
//   forward   step j: post send(block → r + 1) and receive(← r − 1), then attend to the block in
//             hand (skipped when entirely in the causal future), merge (O, lse), wait.
//   merge     lse = log(e^lse₁ + e^lse₂) computed as m + log(e^(lse₁−m) + e^(lse₂−m)), m = max:
//             without the running max, exp overflows; O = e^(lse₁−lse)·O₁ + e^(lse₂−lse)·O₂.
//   backward  the probabilities are recomputed from the merged lse (never stored). dQ accumulates
//             here; each block travels on with its dK and dV, every rank adding its share before
//             passing it, and after cp steps arrives back at its owner complete.
// ### References
// Liu, Zaharia, Abbeel, Ring Attention with Blockwise Transformers, https://arxiv.org/abs/2310.01889 ·
// picotron, context_parallel/context_parallel.py

import Distributed
import ExerciseKit
import Foundation
import TensorCore

/// Merges a partial attention result `(o2, lse2)` of the same queries into `(o, lse)`, in place.
/// o `[B, Tq, nh, hs]`, lse `[B, nh, Tq]`. A row that saw no key has lse −∞ and contributes nothing.
public func mergeAttention(_ o: inout [Float], _ lse: inout [Float], _ o2: [Float], _ lse2: [Float],
                           batch b: Int, queries tq: Int, heads nh: Int, headDim hs: Int) {
    // TODO(Step4.4): For every row (batch bi, head h, query i): lse at (bi·nh + h)·Tq + i, the row's hs values of
    // o at ((bi·Tq + i)·nh + h)·hs. With m the max of the two lse: lse = m + log(e^(lse₁−m) +
    // e^(lse₂−m)), o = e^(lse₁−lse)·o₁ + e^(lse₂−lse)·o₂. Without m, e^lse overflows for large
    // scores. A row where both lse are −∞ saw no key yet: leave it as it is.
    Todo.reached("Step4.4", "mergeAttention, the log-sum-exp merge", lesson: "Lessons/04-context-parallel.md#task-44")
}

/// The mask between this rank's queries and a block of keys: nil when every key is in every
/// query's future (skip the block), `.none` when every key is in every query's past.
func ringMask(queries qp: [Int], keys kp: [Int]) -> AttentionMask? {
    // TODO(Step4.5): qp and kp are increasing positions. Return nil (skip the block) when every key comes after
    // every query, `AttentionMask.none` (a plain `.none` here would be the optional's nil) when
    // no key comes after any query, and the causal mask by positions otherwise.
    Todo.reached("Step4.5", "ringMask, which blocks to skip", lesson: "Lessons/04-context-parallel.md#task-45")
    return .causal(queryPositions: qp, keyPositions: kp)   // right, but never skips
}

/// Attention of this rank's queries over the whole sequence with the keys and values passed
/// around the ring: q `[B, Tl, nh, hs]`, k and v `[B, Tl, nkv, hs]`, `positions[r]` the global
/// positions of rank r's tokens. Returns `[B, Tl, nh, hs]`.
public func ringAttention(q: Tensor, k: Tensor, v: Tensor, positions: [[Int]], group: ContextGroup) -> Tensor {
    let (cp, r) = (group.size, group.rank)
    precondition(positions.count == cp, "ring attention: positions of \(positions.count) ranks for a ring of \(cp)")
    let (b, tl, nh, nkv, hs) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3])
    let s = AttentionKernel.Shape(batch: b, queryLength: tl, keyLength: tl, heads: nh, kvHeads: nkv, headDim: hs)
    let n = k.count                                                     // floats of K (and of V) in a block
    /// Starts sending `block` to rank `peer` and receiving one as large from rank `source`.
    func post(_ block: [Float], to peer: Int, from source: Int) -> Transfer {
        Transfer(block: block, requests: group.run(nil) {
            (sent: try group.comm.isend(block, to: peer, tag: 40),
             received: try group.comm.irecv(count: block.count, from: source, tag: 40))
        })
    }
    /// (O, lse) of this rank's queries against `block` = [K | V] (whose keys `mask` describes).
    func attend(_ mask: AttentionMask, _ block: [Float]) -> (out: [Float], lse: [Float]) {
        let (kj, vj) = (Array(block[..<n]), Array(block[n ..< 2 * n]))
        return group.timed { AttentionKernel.forward(s, mask: mask, q: q.data, k: kj, v: vj) }
    }
    var out = [Float](repeating: 0, count: q.count)                    // [B, Tl, nh, hs]
    var lse = [Float](repeating: -Float.infinity, count: b * nh * tl)  // [B, nh, Tl]
    group.peakKeyValueFloats = max(group.peakKeyValueFloats, 2 * 2 * n)   // K, V in hand, and the pair arriving
    // TODO(Step4.6): cp steps; at step j this rank holds the block ([K | V]) of rank (r − j) mod cp. Post the
    // transfer of the block in hand to rank r + 1 and from rank r − 1 (`post`; not at the last
    // step), attend to the block in hand (`ringMask` says the mask; nil: skip it), merge into
    // (out, lse), then `wait()` for the next block: the transfer hides behind the compute.
    Todo.reached("Step4.6", "ringAttention's forward loop", lesson: "Lessons/04-context-parallel.md#task-46")
    (out, lse) = attend(.causal(queryPositions: positions[r], keyPositions: positions[r]), k.data + v.data)
    let (finalOut, finalLSE) = (out, lse)
    return Tensor.custom(inputs: [q, k, v], shape: q.shape, data: out) { dOut in
        var dq = [Float](repeating: 0, count: q.count)
        /// Adds this rank's share to dq and to the dK, dV of `packet` = [K | V | dK | dV], the
        /// probabilities recomputed from the merged lse (never stored).
        func addGradients(_ mask: AttentionMask, _ packet: inout [Float]) {
            let (kj, vj) = (Array(packet[..<n]), Array(packet[n ..< 2 * n]))
            dq.withUnsafeMutableBufferPointer { pq in packet.withUnsafeMutableBufferPointer { pp in
                AttentionKernel.backward(s, mask: mask, q: q.data, k: kj, v: vj, out: finalOut, lse: finalLSE,
                                         gradOut: dOut, dq: pq.baseAddress, dk: pp.baseAddress! + 2 * n,
                                         dv: pp.baseAddress! + 3 * n)
            } }
        }
        // TODO(Step4.7): A packet [K | V | dK | dV] travels the ring as the blocks did, starting with this rank's
        // block and zero gradients. At step j it is rank (r − j)'s: add this rank's share
        // (`addGradients`, unless `ringMask` skips it), then pass it on (`post`, then `wait()`)
        // at every step, the last too: after cp passes the packet is back with its owner. Return
        // [dq, this rank's dK, its dV].
        Todo.reached("Step4.7", "ringAttention's backward loop", lesson: "Lessons/04-context-parallel.md#task-47")
        var packet = k.data + v.data + [Float](repeating: 0, count: 2 * n)
        addGradients(.causal(queryPositions: positions[r], keyPositions: positions[r]), &packet)
        return [dq, Array(packet[(2 * n) ..< (3 * n)]), Array(packet[(3 * n)...])]
    }
}

/// A block on its way: the send to the next rank and the receive from the previous one, posted
/// (nil when a collective failed already).
struct Transfer {
    let block: [Float]
    let requests: (sent: CommRequest<Void>, received: CommRequest<[Float]>)?

    /// Waits for both; returns the block received (the block sent, unchanged, after a failure).
    func wait(_ group: ContextGroup) -> [Float] {
        guard let (sent, received) = requests else { return block }
        return group.run(block) { try sent.wait(); return try received.wait() }
    }
}
