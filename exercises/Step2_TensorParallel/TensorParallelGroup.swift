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
    /// with the same count, in the same order. The operation has no default: a row max that is
    /// summed instead (forgetting `op: .max`) still looks like a bound, and no test of a tiny
    /// batch sees it, so every call says which reduction it means.
    public func allReduce(_ x: inout [Float], op: ReduceOp) {
        guard failure == nil else { return }
        do { try comm.allReduce(&x, op: op) } catch { failure = error }
    }

    /// Chunk r (this rank's) of the reduction of `x` over the group (`x.count / tp` values).
    public func reduceScatter(_ x: [Float], op: ReduceOp) -> [Float] {
        guard failure == nil else { return [Float](repeating: 0, count: x.count / size) }
        do { return try comm.reduceScatter(x, op: op) } catch {
            failure = error
            return [Float](repeating: 0, count: x.count / size)
        }
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
