// ZeRO-1: data parallelism that stops keeping dp copies of AdamW's moments. Every rank still holds
// the whole model and its whole gradient, but the optimizer state of only a dp-th of the values:
// the trainable parameters, laid end to end in model order, are cut into dp equal slices, and rank
// r keeps m and v (and does the update) for slice r only.
//
//   flat parameters  |■■■■■■■■ embed ■■■■■■■■|■■ layer 0 ■■|■■ layer 1 ■■|■ norm, head ■|░░|
//   owned by         |    rank 0    |    rank 1    |    rank 2    |    rank 3    |  (░ padding)
//
//   1. reduce-scatter the gradients: rank r receives the average of slice r only   (Task 1.8)
//   2. AdamW steps slice r (AdamW with `ranges`: the moments are slice r's values)
//   3. all-gather the parameters: every rank gets every updated slice               (Task 1.9)
//
// A ring all-reduce *is* a reduce-scatter followed by an all-gather, so the traffic is unchanged:
// ZeRO-1 moves the optimizer between the two halves. Clipping needs the norm of the whole
// gradient, while each rank holds the average of its slice only: Σ g² over the slice, summed over
// the ranks (Task 1.10). Picotron has no ZeRO; this follows the paper's stage 1 (P_os).
//
// Legend: P = trainable values (flat, model order), dp = ranks, S = ⌈P/dp⌉ values per slice,
//         n_k = values of parameter k, o_k = its offset in the flat order.
//
// ### References
// Rajbhandari et al., ZeRO: Memory Optimizations Toward Training Trillion Parameter Models, 2020,
// https://arxiv.org/abs/1910.02054 (stage 1, optimizer state partitioning).

import Distributed
import TensorCore
import Training

/// Which values of the flat parameters a rank owns, and where they fall in each parameter.
public struct ZeroPartition: Sendable, Equatable {
    /// P, the trainable values.
    public let total: Int
    /// S = ⌈P/dp⌉: every rank's slice has this length in the padded flat buffer `[dp · S]`.
    public let sliceLength: Int
    /// The flat values this rank owns: `[r·S, (r+1)·S) ∩ [0, P)` (the last ranks' may be shorter,
    /// or empty, when dp does not divide P).
    public let owned: Range<Int>
    /// For each parameter k, the part of it this rank owns, in the parameter's own indices
    /// (an empty range when it owns none of it): `[max(owned.lo, o_k), min(owned.hi, o_k + n_k)) − o_k`.
    public let pieces: [Range<Int>]

    public init(total: Int, sliceLength: Int, owned: Range<Int>, pieces: [Range<Int>]) {
        (self.total, self.sliceLength, self.owned, self.pieces) = (total, sliceLength, owned, pieces)
    }
}

/// Rank `rank`'s slice of parameters of `sizes` (n_k, model order) among `ranks`. Task 1.7.
public func zeroPartition(sizes: [Int], ranks: Int, rank: Int) -> ZeroPartition {
    precondition(ranks >= 1 && (0 ..< ranks).contains(rank), "rank \(rank) is not in 0..<\(ranks)")
    let total = sizes.reduce(0, +)
    // TASK(Step1.7) zeroPartition (the slice of the flat parameters a rank owns) @ Lessons/01-data-parallel.md#task-17
    // > S = ⌈P/dp⌉ (round up: the last slice is padded, never dropped); rank r owns flat values
    // > r·S ..< (r+1)·S, clamped to P. Then walk the parameters with their offset o_k and keep, for
    // > each, the overlap of its values o_k ..< o_k + n_k with the owned range, in its own indices
    // > (an empty range when none). About ten lines.
    let s = (total + ranks - 1) / ranks
    let owned = min(rank * s, total) ..< min((rank + 1) * s, total)
    var pieces: [Range<Int>] = [], offset = 0
    for n in sizes {
        let lo = min(max(owned.lowerBound - offset, 0), n)
        let hi = max(min(owned.upperBound - offset, n), lo)
        pieces.append(lo ..< hi)
        offset += n
    }
    return ZeroPartition(total: total, sliceLength: s, owned: owned, pieces: pieces)
    // STAND-IN: return ZeroPartition(total: total, sliceLength: total, owned: rank == 0 ? 0 ..< total : total ..< total, pieces: sizes.map { rank == 0 ? 0 ..< $0 : $0 ..< $0 })
    // END TASK(Step1.7)
}

/// ZeRO-1 over `group`: AdamW keeps the moments of this rank's slice only. The loop calls
/// `reduceScatterGradients()` after the step's backwards (instead of a synchronizer), clips with
/// `globalSquaredNorm`, steps `optimizer` (its `ranges` are this rank's pieces), then
/// `allGatherParameters()`. `step(lr:)` does the last two.
public final class ZeroOptimizer {
    public let group: Communicator
    /// The parameters it steps, model order; a frozen one takes no room in the flat order.
    public let parameters: [(String, Tensor)]
    public let partition: ZeroPartition
    /// AdamW over this rank's pieces: 8 bytes per owned value, 8P/dp in all.
    public let optimizer: AdamW
    /// n_k (0 for a frozen parameter) and o_k of each parameter.
    let sizes: [Int], offsets: [Int]
    /// C, the columns of the slices each round moves: dp·C floats ≈ `chunkMB` (a bucket's size), so
    /// no rank ever holds a second copy of the whole gradient or model, only one round's.
    public let chunk: Int

    public init(parameters: [(String, Tensor)], group: Communicator, hyper: AdamW.Hyperparameters, chunkMB: Double = 25) {
        self.group = group
        self.parameters = parameters
        sizes = parameters.map { $0.1.requiresGrad ? $0.1.count : 0 }
        offsets = sizes.reduce(into: [0]) { $0.append($0.last! + $1) }.dropLast()
        partition = zeroPartition(sizes: sizes, ranks: group.size, rank: group.rank)
        optimizer = AdamW(parameters: parameters.map(\.1), hyper: hyper, ranges: partition.pieces)
        chunk = max(1, bucketCapacity(megabytes: chunkMB) / group.size)
    }

    /// Every parameter k with its flat offset, its size n_k and its piece, frozen ones left out.
    var layout: [(p: Tensor, o: Int, n: Int, piece: Range<Int>)] {
        parameters.indices.filter { sizes[$0] > 0 }.map { (parameters[$0].1, offsets[$0], sizes[$0], partition.pieces[$0]) }
    }

    /// The parameters holding flat values `range`: values j of parameter p are flat values at + j.
    func parts(_ range: Range<Int>) -> [(p: Tensor, j: Range<Int>, at: Int)] {
        layout.compactMap { p, o, n, _ in
            let (lo, hi) = (max(range.lowerBound, o), min(range.upperBound, o + n))
            return lo < hi ? (p, lo - o ..< hi - o, lo - range.lowerBound) : nil
        }
    }

    /// Copies flat values `start ..< start + count` of the gradients (or the weights) into
    /// `buffer[into ..< into + count]`; values past P (the padding) and missing gradients stay zero.
    func pack(_ buffer: inout [Float], into: Int, flat start: Int, count: Int, gradients: Bool) {
        for (p, j, at) in parts(start ..< start + count) {
            guard let source = gradients ? p.grad : p.data else { continue }
            buffer.replaceSubrange(into + at ..< into + at + j.count, with: source[j])
        }
    }

    /// Writes `values` into the weights at flat values `start ..< start + values.count` (below P).
    func unpackWeights(_ values: ArraySlice<Float>, flat start: Int) {
        for (p, j, at) in parts(start ..< start + values.count) {
            let from = values.startIndex + at
            p.data.replaceSubrange(j, with: values[from ..< from + j.count])
        }
    }

    /// Replaces every gradient by its average over the group on this rank's slice, and zero
    /// elsewhere (so a norm over all gradients counts each value on its owner only). Task 1.8.
    ///
    /// In rounds of C columns: round i reduce-scatters columns i·C ..< (i+1)·C of every slice (the
    /// flat values r·S + i·C ..< r·S + (i+1)·C for each rank r), so rank r receives its own columns.
    public func reduceScatterGradients() throws {
        let (s, dp, owned) = (partition.sliceLength, group.size, partition.owned)
        var mine = [Float](repeating: 0, count: s)                           // [S], this rank's slice
        // TASK(Step1.8) ZeroOptimizer.reduceScatterGradients (the average of this rank's slice) @ Lessons/01-data-parallel.md#task-18
        // > For each round: pack columns `column ..< column + width` of every slice into `send`
        // > (row r from flat value r·S + column, with `pack(…, gradients: true)`), reduce-scatter it
        // > over `group` (sum): this rank receives its row, `width` values; store them divided by dp
        // > in `mine` at `column`. After the rounds, overwrite every gradient: value j of parameter k
        // > is flat value o_k + j, so mine[o_k + j − owned.lo] on its piece, and 0 off it.
        for column in stride(from: 0, to: s, by: chunk) {
            let width = min(chunk, s - column)
            var send = [Float](repeating: 0, count: dp * width)              // [dp, width], row r: slice r's
            for r in 0 ..< dp { pack(&send, into: r * width, flat: r * s + column, count: width, gradients: true) }
            let got = try group.reduceScatter(send, op: .sum)               // [width], Σ over ranks
            let scale = 1 / Float(dp)
            for j in 0 ..< width { mine[column + j] = got[j] * scale }
        }
        for (p, o, n, piece) in layout {
            var g = p.grad ?? [Float](repeating: 0, count: n)               // [n_k], rewritten in place
            p.grad = nil
            for j in 0 ..< n { g[j] = piece.contains(j) ? mine[o + j - owned.lowerBound] : 0 }
            p.grad = g
        }
        // STAND-IN: _ = (dp, owned, mine)
        // END TASK(Step1.8)
    }

    /// After `optimizer.step`: every rank sends its updated slice and receives everyone's, so the
    /// replicas hold the same whole model again. Task 1.9. In rounds of C columns, as the reduce-scatter.
    public func allGatherParameters() throws {
        let (s, dp, owned) = (partition.sliceLength, group.size, partition.owned)
        for column in stride(from: 0, to: s, by: chunk) {
            let width = min(chunk, s - column)
            // TASK(Step1.9) ZeroOptimizer.allGatherParameters (every rank gets every updated slice) @ Lessons/01-data-parallel.md#task-19
            // > Pack columns `column ..< column + width` of this rank's slice of the weights (flat values
            // > owned.lo + column ..., zeros past P: every rank sends `width` values) with
            // > `pack(…, gradients: false)`, all-gather them over `group`, and write row r of the result
            // > (slice r's columns, flat values r·S + column ...) into the weights with `unpackWeights`.
            var part = [Float](repeating: 0, count: width)                   // [width]
            pack(&part, into: 0, flat: owned.lowerBound + column, count: width, gradients: false)
            let all = try group.allGather(part)                              // [dp, width], row r: slice r's
            for r in 0 ..< dp { unpackWeights(all[r * width ..< (r + 1) * width], flat: r * s + column) }
            // STAND-IN: _ = (dp, owned, width)
            // END TASK(Step1.9)
        }
    }

    /// The sliced AdamW step, then the all-gather.
    public func step(lr: Double? = nil) throws {
        optimizer.step(lr: lr)
        try allGatherParameters()
    }

    /// Σ g² of the whole averaged gradient, from this rank's gradients after
    /// `reduceScatterGradients` (its slice, zeros elsewhere).
    public func globalSquaredNorm() throws -> Double {
        try zeroGlobalSquaredNorm(GradientClipping.localSquaredNorm(parameters.map(\.1)), over: group)
    }

    /// Parameter k's whole AdamW state from the slices (`state`, this rank's piece of it), for a
    /// checkpoint: on group rank 0; empty moments elsewhere. A collective over `group` (an all-reduce
    /// of the pieces, each rank's placed in zeros).
    public func wholeState(_ k: Int, _ state: AdamW.State) throws -> AdamW.State {
        let (n, piece) = (parameters[k].1.count, partition.pieces[k])
        var moments = [Float](repeating: 0, count: 2 * n)                   // [2 · n_k]: m, then v
        moments.replaceSubrange(piece, with: state.expAvg)
        moments.replaceSubrange(n + piece.lowerBound ..< n + piece.upperBound, with: state.expAvgSq)
        try group.allReduce(&moments, op: .sum)
        guard group.rank == 0 else { return AdamW.State(step: state.step, expAvg: [], expAvgSq: []) }
        return AdamW.State(step: state.step, expAvg: Array(moments[..<n]), expAvgSq: Array(moments[n...]))
    }
}

/// The squared norm of the whole gradient when each rank holds the average of its own slice only
/// (`local` = Σ g² over that slice): the sum over the ranks. Clipping with the local value would
/// scale each slice by a different factor. Task 1.10.
public func zeroGlobalSquaredNorm(_ local: Double, over group: Communicator) throws -> Double {
    // TASK(Step1.10) zeroGlobalSquaredNorm (the gradient norm over all slices) @ Lessons/01-data-parallel.md#task-110
    // > all-reduce `local` over `group` (sum; the squares add, the norms do not). One or two lines.
    return Double(try group.allReduced([Float(local)], op: .sum)[0])
    // STAND-IN: return local
    // END TASK(Step1.10)
}
