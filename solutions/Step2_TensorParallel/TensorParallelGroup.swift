// The tensor-parallel group as the layers see it. Layers talk through autograd closures, and
// those cannot throw, so this wrapper keeps the first communication error instead of throwing
// it; `check()` rethrows it once the step is done. In-process, a failing rank aborts the
// world, so every other rank's next collective fails too and nobody waits forever.
// Legend: tp = ranks in the group, r = this rank.

import Distributed

/// A tensor-parallel communicator whose collectives never throw inside forward or backward.
public final class TensorParallelGroup {
    public let comm: Communicator
    /// The first error a collective hit, if any (later collectives are skipped).
    public private(set) var failure: (any Error)?

    public init(_ comm: Communicator) { self.comm = comm }

    /// This rank's index r in `0 ..< tp`.
    public var rank: Int { comm.rank }
    /// The tensor-parallel size tp.
    public var size: Int { comm.size }

    /// Rethrows the first communication error of the layers, if there was one.
    public func check() throws { if let failure { throw failure } }

    /// Reduces `x` over the group in place. A sync point: every rank of the group must call it
    /// with the same count, in the same order.
    public func allReduce(_ x: inout [Float], op: ReduceOp = .sum) {
        guard failure == nil else { return }
        do { try comm.allReduce(&x, op: op) } catch { failure = error }
    }

    /// Every rank's `x` concatenated in rank order (`tp · x.count` values).
    public func allGather(_ x: [Float]) -> [Float] {
        guard failure == nil else { return [Float](repeating: 0, count: x.count * size) }
        do { return try comm.allGather(x) } catch {
            failure = error
            return [Float](repeating: 0, count: x.count * size)
        }
    }
}

/// A size that tensor parallelism cannot split: the message states the rule, the numbers and
/// the sizes that would work.
public struct TensorParallelError: Error, CustomStringConvertible, Equatable {
    public let description: String

    public init(_ description: String) { self.description = description }

    /// Throws unless `tp` divides every `(name, value)`; the fix lists the sizes that divide all.
    static func checkDivides(_ tp: Int, _ sizes: [(String, Int)]) throws {
        guard tp >= 1 else { throw TensorParallelError("tensor parallel size must be >= 1, got \(tp)") }
        guard let (name, value) = sizes.first(where: { $0.1 % tp != 0 }) else { return }
        let good = (1...max(1, sizes.map(\.1).min()!)).filter { d in sizes.allSatisfy { $0.1 % d == 0 } }
        let list = good.count == 1 ? "\(good[0])"
            : good.dropLast().map(String.init).joined(separator: ", ") + " or \(good.last!)"
        throw TensorParallelError("tensor parallel size \(tp) must divide \(name) \(value): use tp \(list)")
    }
}

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
