// All-gather attention, the simple exact version (Llama 3 and torchtitan do this): gather every
// rank's keys and values, attend with the global causal mask, and in backward send each rank the
// sum of everyone's gradients of its keys and values.
// Legend: B = batch, T = sequence, Tl = T/cp tokens on this rank, nh = query heads, nkv = key/value
// heads (only those travel: grouped-query attention keeps traffic at nkv/nh of the queries'), hs =
// head size, cp = ranks.
//
//   forward   K, V [B, Tl, nkv, hs] ──all-gather──▶ [B, T, nkv, hs] (in global position order)
//             O = attention(Q, K_all, V_all, causal by global positions)       [B, Tl, nh, hs]
//   backward  dK_all, dV_all [B, T, nkv, hs] ──reduce-scatter──▶ each owner's [B, Tl, nkv, hs]
// Exact, but every rank holds the whole sequence's K and V: O(T) memory per rank.

import Distributed
import Foundation
import TensorCore

/// The context-parallel group as attention sees it: collectives inside forward and backward cannot
/// throw, so the first error is kept and `check()` rethrows it after the step.
public final class ContextGroup {
    public let comm: Communicator
    var failure: Error?
    /// The most key/value floats one attention call held at once (the lesson compares all-gather
    /// with ring): measured where the arrays are made.
    public internal(set) var peakKeyValueFloats = 0
    /// Milliseconds spent in attention kernels (not waiting for blocks): the causal work measured.
    public internal(set) var computeMilliseconds = 0.0

    /// Runs `body` and adds its time to `computeMilliseconds`.
    func timed<T>(_ body: () -> T) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { computeMilliseconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
        return body()
    }
    public init(_ comm: Communicator) { self.comm = comm }
    public var rank: Int { comm.rank }
    public var size: Int { comm.size }
    public func check() throws { if let failure { throw failure } }

    /// Runs `body` unless a collective failed already; keeps its error.
    func run<T>(_ fallback: T, _ body: () throws -> T) -> T {
        guard failure == nil else { return fallback }
        do { return try body() } catch { failure = error; return fallback }
    }
}

/// Attention of this rank's queries over the whole sequence: q `[B, Tl, nh, hs]`, k and v
/// `[B, Tl, nkv, hs]` of the tokens at global `positions[r]` on rank r (every rank's, in rank
/// order). Returns `[B, Tl, nh, hs]`.
public func allGatherAttention(q: Tensor, k: Tensor, v: Tensor, positions: [[Int]], group: ContextGroup) -> Tensor {
    let (b, tl, nkv, hs) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3])
    let cp = group.size, t = tl * cp, row = nkv * hs
    // Gathered arrays are rank-major [cp, B, Tl, nkv, hs]; the kernel wants [B, T, nkv, hs] with
    // keys in increasing position: rank r's token i of row b is key positions[r][i] of row b.
    func sorted(_ gathered: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: gathered.count)
        for r in 0 ..< cp { for bi in 0 ..< b { for (i, p) in positions[r].enumerated() {
            let from = ((r * b + bi) * tl + i) * row, to = (bi * t + p) * row
            for j in 0 ..< row { out[to + j] = gathered[from + j] }
        } } }
        return out
    }
    func rankMajor(_ full: [Float]) -> [Float] {   // the inverse of `sorted`
        var out = [Float](repeating: 0, count: full.count)
        for r in 0 ..< cp { for bi in 0 ..< b { for (i, p) in positions[r].enumerated() {
            let to = ((r * b + bi) * tl + i) * row, from = (bi * t + p) * row
            for j in 0 ..< row { out[to + j] = full[from + j] }
        } } }
        return out
    }
    func zeros(_ count: Int) -> [Float] { [Float](repeating: 0, count: count) }   // what a failed collective gives
    // TASK(Step4.3) allGatherAttention's gather and reduce-scatter @ Lessons/04-context-parallel.md#task-43
    // > kAll and vAll: every rank's k and v (`group.comm.allGather` inside `group.run(zeros(…))`), put
    // > in position order with `sorted`: [B, T, nkv, hs]; `keys` their positions, 0 ..< T.
    // > `scatter` takes dK (or dV) of every key [B, T, nkv, hs] from this rank and returns the sum
    // > over the ranks of this rank's own keys' [B, Tl, nkv, hs]: back to rank order with
    // > `rankMajor`, then one `reduceScatter`. Every rank calls each collective in the same order.
    let kAll = sorted(group.run(zeros(cp * k.count)) { try group.comm.allGather(k.data) })    // [B, T, nkv, hs]
    let vAll = sorted(group.run(zeros(cp * v.count)) { try group.comm.allGather(v.data) })    // [B, T, nkv, hs]
    let keys = Array(0 ..< t)                                                                   // their positions
    let scatter = { (d: [Float]) in group.run(zeros(k.count)) { try group.comm.reduceScatter(rankMajor(d)) } }
    // STAND-IN: let (kAll, vAll, keys) = (k.data, v.data, positions[group.rank])   // this rank's keys only
    // STAND-IN: let scatter = { (d: [Float]) in d }
    // END TASK(Step4.3)
    group.peakKeyValueFloats = max(group.peakKeyValueFloats, kAll.count + vAll.count)      // the whole sequence's
    let s = AttentionKernel.Shape(batch: b, queryLength: tl, keyLength: keys.count, heads: q.shape[2], kvHeads: nkv,
                                  headDim: hs)
    let mask = AttentionMask.causal(queryPositions: positions[group.rank], keyPositions: keys)
    // O [B, Tl, nh, hs] and lse [B, nh, Tl]
    let (out, lse) = group.timed { AttentionKernel.forward(s, mask: mask, q: q.data, k: kAll, v: vAll) }
    return Tensor.custom(inputs: [q, k, v], shape: q.shape, data: out) { dOut in
        var dq = [Float](repeating: 0, count: q.count)
        var dk = [Float](repeating: 0, count: kAll.count), dv = [Float](repeating: 0, count: vAll.count)
        dq.withUnsafeMutableBufferPointer { pq in dk.withUnsafeMutableBufferPointer { pk in
            dv.withUnsafeMutableBufferPointer { pv in
                AttentionKernel.backward(s, mask: mask, q: q.data, k: kAll, v: vAll, out: out, lse: lse, gradOut: dOut,
                                         dq: pq.baseAddress, dk: pk.baseAddress, dv: pv.baseAddress)
            }
        } }
        return [dq, scatter(dk), scatter(dv)]      // every rank's dK of every key; each owner gets the sum of its own
    }
}
