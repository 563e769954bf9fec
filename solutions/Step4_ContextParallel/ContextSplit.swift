// How context parallelism cuts a sequence: each of the cp ranks holds T/cp of its tokens, with
// their global positions (for RoPE and the causal mask) and their labels. Everything but attention
// is per token and needs nothing from the other ranks.
// Legend: B = batch, T = sequence length, cp = ranks, r = this rank, T/cp tokens per rank.
//
//   contiguous  rank r: tokens r·T/cp ..< (r+1)·T/cp. Simple, but under the causal mask the last
//               rank's queries see every key and the first rank's almost none: the work is uneven.
//   zigzag      the sequence in 2·cp chunks; rank r holds chunks r and 2·cp − 1 − r, one early and
//               one late, so every rank does the same causal work (Striped / zigzag attention).
// ### References
// Liu et al., Ring Attention, https://arxiv.org/abs/2310.01889 · Brandon et al., Striped Attention,
// https://arxiv.org/abs/2311.09431 · Llama 3, §3.3.2, https://arxiv.org/abs/2407.21783

/// How the tokens of a sequence are dealt to the context-parallel ranks.
public enum ContextLayout: String, CaseIterable, Sendable {
    case contiguous, zigzag
}

/// The global positions rank `r` of `cp` holds, in increasing order (`T/cp` of them).
public func contextPositions(length t: Int, ranks cp: Int, rank r: Int, layout: ContextLayout) -> [Int] {
    // TASK(Step4.1) contextPositions, contiguous and zigzag @ Lessons/04-context-parallel.md#task-41
    // > Return the global positions of rank r's T/cp tokens, in increasing order. contiguous: the
    // > r-th of cp equal runs. zigzag: cut the sequence in 2·cp chunks of c = T/(2·cp) tokens;
    // > rank r holds chunk r and chunk 2·cp − 1 − r. RoPE and the causal mask read these, so they
    // > are positions in the whole sequence, never 0 ..< T/cp.
    switch layout {
    case .contiguous:
        let n = t / cp                                                   // tokens per rank
        return Array((r * n) ..< ((r + 1) * n))
    case .zigzag:
        let c = t / (2 * cp)                                             // tokens per chunk
        return Array((r * c) ..< ((r + 1) * c)) + Array(((2 * cp - 1 - r) * c) ..< ((2 * cp - r) * c))
    }
    // STAND-IN: return Array(0 ..< t / cp)                                    // the local index: wrong positions
    // END TASK(Step4.1)
}

/// The columns `positions` of each row of a `[B, T]` array: this rank's tokens `[B, T/cp]`.
public func contextShard<T>(_ rows: [T], batch b: Int, length t: Int, positions: [Int]) -> [T] {
    (0 ..< b).flatMap { row in positions.map { rows[row * t + $0] } }
}
