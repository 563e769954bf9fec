// What Step 4's task tests add to the shared vocabulary (LessonTesting): the positions of both
// layouts written another way than the solution, one attention call on cp ranks compared with
// attention over the whole sequence, and a run on ranks whose failure (a hang: 5 s without the
// peer's message) names the task.
// Legend: B = batch, T = sequence, Tl = T/cp, nh / nkv = query / key-value heads, hs = head size.

import Distributed
import LessonKit
import LessonTesting
@testable import Step4_ContextParallel
import TensorCore
import XCTest

/// Runs `body` on `n` in-process ranks. A rank that throws, or waits 5 s for a peer (a hang), fails
/// the test naming `task` (or the TODO the code reached) and gives nil.
func onRanks<T>(_ n: Int, task: String, file: StaticString = #filePath, line: UInt = #line,
                _ body: @escaping (Communicator) throws -> T) -> [T]? {
    do { return try InProcessRanks.run(n, timeout: 5, body) } catch {
        if !unfinished(task, file: file, line: line) {
            failTask("\(error) (a rank waited 5 s for a message no peer sent: do all ranks make the same calls?)",
                     task: task, file: file, line: line)
        }
        return nil
    }
}

/// Every rank's positions, by a token's rank rather than a rank's tokens (not the solution's formula).
func expectedPositions(length t: Int, cp: Int, layout: ContextLayout) -> [[Int]] {
    (0 ..< cp).map { r in
        (0 ..< t).filter { p in
            switch layout {
            case .contiguous: return p / (t / cp) == r
            case .zigzag: let chunk = p / (t / (2 * cp)); return chunk == r || chunk == 2 * cp - 1 - r
            }
        }
    }
}

/// One attention call over a whole sequence (random q, k, v and upstream gradient; 4 query heads
/// over 2 key/value heads), its single-process output and gradients, and each rank's rows of them.
struct AttentionCase {
    let b = 2, t = 16, nh = 4, nkv = 2, hs = 4
    let q, k, v, dOut: [Float]                                           // [B, T, nh or nkv, hs]
    let out: [Float], dq: [Float], dk: [Float], dv: [Float]                // the reference

    init() {
        let q = randomValues(b * t * nh * hs, seed: 41, "q"), dOut = randomValues(b * t * nh * hs, seed: 44, "dOut")
        let k = randomValues(b * t * nkv * hs, seed: 42, "k"), v = randomValues(b * t * nkv * hs, seed: 43, "v")
        let s = AttentionKernel.Shape(batch: b, queryLength: t, keyLength: t, heads: nh, kvHeads: nkv, headDim: hs)
        let mask = AttentionMask.causal(queryPositions: Array(0 ..< t), keyPositions: Array(0 ..< t))
        let (o, lse) = AttentionKernel.forward(s, mask: mask, q: q, k: k, v: v)
        var (gq, gk, gv) = ([Float](repeating: 0, count: q.count), [Float](repeating: 0, count: k.count),
                            [Float](repeating: 0, count: v.count))
        gq.withUnsafeMutableBufferPointer { pq in gk.withUnsafeMutableBufferPointer { pk in gv.withUnsafeMutableBufferPointer { pv in
            AttentionKernel.backward(s, mask: mask, q: q, k: k, v: v, out: o, lse: lse, gradOut: dOut,
                                     dq: pq.baseAddress, dk: pk.baseAddress, dv: pv.baseAddress)
        } } }
        (self.q, self.k, self.v, self.dOut) = (q, k, v, dOut)
        (out, dq, dk, dv) = (o, gq, gk, gv)
    }

    /// The rows at `positions` of `x` `[B, T, width]`: `[B, Tl, width]`.
    func rows(_ x: [Float], width: Int, _ positions: [Int]) -> [Float] {
        var out = [Float]()
        for bi in 0 ..< b { for p in positions { let start = (bi * t + p) * width; out += x[start ..< start + width] } }
        return out
    }

    /// Runs `attention` on cp ranks, each with its tokens' q, k, v (the positions of `layout`), and
    /// compares the output (and, with `backward`, dq, dk and dv) with the reference's rows. Nil when
    /// the run failed (already reported, naming `task`).
    func run(cp: Int, layout: ContextLayout, attention: ContextAttention, backward: Bool, task: String,
             file: StaticString = #filePath, line: UInt = #line) -> [Check]? {
        let positions = expectedPositions(length: t, cp: cp, layout: layout)
        let hint = attention == .ring
            ? "at step j the block in hand is rank (r − j)'s: its mask from its positions, merged into (out, lse)"
            : "every rank's K and V, in position order, under the causal mask of the global positions"
        return onRanks(cp, task: task, file: file, line: line) { comm -> [Check] in
            let (r, mine) = (comm.rank, positions[comm.rank])
            let group = ContextGroup(comm)
            let qr = Tensor(shape: [b, mine.count, nh, hs], data: rows(q, width: nh * hs, mine), requiresGrad: true)
            let kr = Tensor(shape: [b, mine.count, nkv, hs], data: rows(k, width: nkv * hs, mine), requiresGrad: true)
            let vr = Tensor(shape: [b, mine.count, nkv, hs], data: rows(v, width: nkv * hs, mine), requiresGrad: true)
            let o = attention == .ring ? ringAttention(q: qr, k: kr, v: vr, positions: positions, group: group)
                : allGatherAttention(q: qr, k: kr, v: vr, positions: positions, group: group)
            if backward { o.backward(gradient: rows(dOut, width: nh * hs, mine)) }
            try group.check()
            var checks = [check(r, "O", got: o.data, want: rows(out, width: nh * hs, mine), hint: hint)]
            guard backward else { return checks }
            let send = attention == .ring
                ? "each block's dK and dV travel on with it, every rank adding its share, back to the owner"
                : "reduce-scatter (sum) every rank's dK and dV of all keys, in rank order, to their owners"
            checks += [check(r, "dQ", got: qr.grad ?? [], want: rows(dq, width: nh * hs, mine),
                             hint: "this rank's queries against every block they may see"),
                       check(r, "dK", got: kr.grad ?? [], want: rows(dk, width: nkv * hs, mine), hint: send),
                       check(r, "dV", got: vr.grad ?? [], want: rows(dv, width: nkv * hs, mine), hint: send)]
            return checks
        }?.flatMap { $0 }
    }
}
