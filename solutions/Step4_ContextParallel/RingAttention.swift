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
import Foundation
import TensorCore

/// Merges a partial attention result `(o2, lse2)` of the same queries into `(o, lse)`, in place.
/// o `[B, Tq, nh, hs]`, lse `[B, nh, Tq]`. A row that saw no key has lse −∞ and contributes nothing.
public func mergeAttention(_ o: inout [Float], _ lse: inout [Float], _ o2: [Float], _ lse2: [Float],
                           batch b: Int, queries tq: Int, heads nh: Int, headDim hs: Int) {
    for bi in 0 ..< b { for h in 0 ..< nh { for i in 0 ..< tq {
        let li = (bi * nh + h) * tq + i
        let (l1, l2) = (lse[li], lse2[li])
        let m = max(l1, l2)
        guard m > -Float.infinity else { continue }                      // neither block had an allowed key
        let l = m + Foundation.log(Foundation.exp(l1 - m) + Foundation.exp(l2 - m))
        let (w1, w2) = (Foundation.exp(l1 - l), Foundation.exp(l2 - l))
        let row = ((bi * tq + i) * nh + h) * hs
        for j in 0 ..< hs { o[row + j] = w1 * o[row + j] + w2 * o2[row + j] }
        lse[li] = l
    } } }
}

/// The mask between this rank's queries and a block of keys: nil when every key is in every
/// query's future (skip the block), `.none` when every key is in every query's past.
func ringMask(queries qp: [Int], keys kp: [Int]) -> AttentionMask? {
    if kp.first! > qp.last! { return nil }
    if kp.last! <= qp.first! { return AttentionMask.none }
    return .causal(queryPositions: qp, keyPositions: kp)
}

/// Attention of this rank's queries over the whole sequence with the keys and values passed
/// around the ring: q `[B, Tl, nh, hs]`, k and v `[B, Tl, nkv, hs]`, `positions[r]` the global
/// positions of rank r's tokens. Returns `[B, Tl, nh, hs]`.
public func ringAttention(q: Tensor, k: Tensor, v: Tensor, positions: [[Int]], group: ContextGroup) -> Tensor {
    let (cp, r) = (group.size, group.rank)
    let (b, tl, nh, nkv, hs) = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3])
    let s = AttentionKernel.Shape(batch: b, queryLength: tl, keyLength: tl, heads: nh, kvHeads: nkv, headDim: hs)
    let (next, previous, n) = ((r + 1) % cp, (r + cp - 1) % cp, k.count)
    /// Sends `block` on and receives the previous rank's, around `work` done meanwhile.
    func pass(_ block: [Float], while work: () -> Void) -> [Float] {
        let posted = group.run(nil) { () throws -> (CommRequest<Void>, CommRequest<[Float]>)? in
            (try group.comm.isend(block, to: next, tag: 40), try group.comm.irecv(count: block.count, from: previous, tag: 40))
        }
        work()                                                          // compute overlaps the transfer
        guard let (sent, received) = posted else { return block }
        return group.run(block) { try sent.wait(); return try received.wait() }
    }
    var out = [Float](repeating: 0, count: q.count)                    // [B, Tl, nh, hs]
    var lse = [Float](repeating: -Float.infinity, count: b * nh * tl)  // [B, nh, Tl]
    var block = k.data + v.data                                         // the block in hand: [K | V]
    group.peakKeyValueFloats = max(group.peakKeyValueFloats, 2 * block.count)   // in hand, and the one arriving
    for j in 0 ..< cp {
        let owner = (r - j + cp) % cp
        let work = {
            guard let mask = ringMask(queries: positions[r], keys: positions[owner]) else { return }   // the future
            let (o2, l2) = group.timed { AttentionKernel.forward(s, mask: mask, q: q.data, k: Array(block[..<n]), v: Array(block[n...])) }
            mergeAttention(&out, &lse, o2, l2, batch: b, queries: tl, heads: nh, headDim: hs)
        }
        if j < cp - 1 { block = pass(block, while: work) } else { work() }
    }
    let (finalOut, finalLSE) = (out, lse)
    return Tensor.custom(inputs: [q, k, v], shape: q.shape, data: out) { dOut in
        var dq = [Float](repeating: 0, count: q.count)
        var packet = k.data + v.data + [Float](repeating: 0, count: 2 * n)   // [K | V | dK | dV] travels
        for j in 0 ..< cp {
            let owner = (r - j + cp) % cp
            if let mask = ringMask(queries: positions[r], keys: positions[owner]) {   // else: the future
                let (kj, vj) = (Array(packet[..<n]), Array(packet[n ..< 2 * n]))
                dq.withUnsafeMutableBufferPointer { pq in packet.withUnsafeMutableBufferPointer { pp in
                    AttentionKernel.backward(s, mask: mask, q: q.data, k: kj, v: vj, out: finalOut, lse: finalLSE,
                                             gradOut: dOut, dq: pq.baseAddress, dk: pp.baseAddress! + 2 * n,
                                             dv: pp.baseAddress! + 3 * n)
                } }
            }
            packet = pass(packet) {}   // on with this rank's share of dK and dV added
        }
        // After cp passes the packet is this rank's own block, with every rank's dK and dV added.
        return [dq, Array(packet[(2 * n) ..< (3 * n)]), Array(packet[(3 * n)...])]
    }
}
