/// The element-wise reduction of the in-process backend, in a fixed order.
///
/// Each element is combined as ((x₀ ⊕ x₁) ⊕ x₂) ⊕ … in rank order, whatever thread does the
/// work, so a result repeats bit for bit run to run and is identical on every rank (float
/// addition is not associative: a different order would change the last bits).
enum Reduction {
    /// Elements per block: 16 KB of scratch, small enough to stay in L1.
    static let block = 4096

    /// Reduces `sources[k][0 ..< count]` over k and writes the result to every
    /// `destinations[j][0 ..< count]`. Sources and destinations may be the same buffers
    /// (the block is read completely before it is written).
    static func reduce(
        _ sources: [UnsafePointer<Float>], count: Int, op: ReduceOp,
        into destinations: [UnsafeMutablePointer<Float>]
    ) {
        precondition(!sources.isEmpty)
        let divisor = Float(sources.count)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { tmp in
            let t = tmp.baseAddress!
            var start = 0
            while start < count {
                let n = min(block, count - start)
                t.update(from: sources[0] + start, count: n)
                for k in 1 ..< sources.count {
                    let s = sources[k] + start
                    switch op {
                    case .sum, .average:
                        for i in 0 ..< n { t[i] += s[i] }
                    case .max:
                        for i in 0 ..< n { t[i] = s[i] > t[i] ? s[i] : t[i] }
                    }
                }
                if op == .average {
                    // Divide (not multiply by 1/N) so the result equals sum / N exactly.
                    for i in 0 ..< n { t[i] /= divisor }
                }
                for d in destinations { (d + start).update(from: t, count: n) }
                start += n
            }
        }
    }

    /// Elements `lo ..< hi` of the chunk rank `r` of `n` handles when `count` elements are
    /// split as evenly as possible (the first `count % n` chunks get one extra element).
    static func chunk(_ r: Int, of n: Int, count: Int) -> Range<Int> {
        let base = count / n, extra = count % n
        let lo = r * base + min(r, extra)
        return lo ..< lo + base + (r < extra ? 1 : 0)
    }
}
