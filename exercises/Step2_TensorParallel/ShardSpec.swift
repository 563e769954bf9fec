// Which part of a full parameter one rank holds, and the way between the two: slice a full
// parameter into this rank's shard, assemble the full one from every rank's shards.
// Legend: tp = ranks, r = this rank; a cut matrix is [rows, cols], split in tp equal chunks.

/// Which part of a full parameter one rank holds.
public struct ShardSpec: Sendable, Equatable, CustomStringConvertible {
    /// Rows (column-parallel and vocab-parallel weights: output features or vocabulary),
    /// columns (row-parallel weights: input features), or all of it (norms).
    public enum Cut: String, Sendable { case rows, columns, replicated }

    public let cut: Cut
    /// The full parameter's shape, `[rows, cols]` or `[C]`.
    public let fullShape: [Int]
    public let rank: Int, size: Int

    public init(cut: Cut, fullShape: [Int], rank: Int, size: Int) {
        precondition(cut == .replicated || fullShape.count == 2, "only matrices are cut, got \(fullShape)")
        (self.cut, self.fullShape, self.rank, self.size) = (cut, fullShape, rank, size)
    }

    /// The rows or columns this rank holds (everything when replicated).
    public var range: Range<Int> {
        switch cut {
        case .replicated: return 0..<(fullShape.first ?? 1)
        case .rows: return Self.chunk(rank, of: size, total: fullShape[0])
        case .columns: return Self.chunk(rank, of: size, total: fullShape[1])
        }
    }

    /// The shape of this rank's shard.
    public var shardShape: [Int] {
        switch cut {
        case .replicated: return fullShape
        case .rows: return [range.count, fullShape[1]]
        case .columns: return [fullShape[0], range.count]
        }
    }

    /// Chunk r of tp equal chunks of `0 ..< total` (tp divides total: checked when layers are built).
    public static func chunk(_ r: Int, of tp: Int, total: Int) -> Range<Int> {
        (r * total / tp)..<((r + 1) * total / tp)
    }

    /// This rank's shard of the full values (row-major).
    public func slice(_ full: [Float]) -> [Float] {
        switch cut {
        case .replicated: return full
        case .rows: return Array(full[(range.lowerBound * fullShape[1])..<(range.upperBound * fullShape[1])])
        case .columns:
            let (rows, cols, r) = (fullShape[0], fullShape[1], range)
            var out = [Float]()
            out.reserveCapacity(rows * r.count)
            for i in 0..<rows { out += full[(i * cols + r.lowerBound)..<(i * cols + r.upperBound)] }
            return out
        }
    }

    /// The full values from every rank's shard concatenated in rank order (an all-gather).
    public func assemble(_ gathered: [Float]) -> [Float] {
        switch cut {
        case .replicated, .rows: return gathered
        case .columns:
            let (rows, cols) = (fullShape[0], fullShape[1])
            let w = cols / size
            var out = [Float](repeating: 0, count: rows * cols)
            for s in 0..<size { for i in 0..<rows { for j in 0..<w {
                out[i * cols + s * w + j] = gathered[(s * rows + i) * w + j]
            } } }
            return out
        }
    }

    /// `rows 0..<32 of [64, 64] → [32, 64]`.
    public var description: String {
        switch cut {
        case .replicated: return "all of \(fullShape)"
        case .rows, .columns: return "\(cut.rawValue) \(range) of \(fullShape) → \(shardShape)"
        }
    }
}
