// One micro-batch as the model consumes it: token ids in, next-token ids out, and the position of each
// column for RoPE. Plain [Int] row-major arrays, so the same value feeds the reference model, a
// tensor-parallel embedding and a context-parallel rank, and tests can compare batches with ==.
//
// Legend: B = micro-batch size (rows), T = sequence length (columns), cp = context-parallel ranks,
//         Tc = T / cp, the columns one context-parallel rank keeps.

/// A micro-batch: `inputs` and `targets` `[B, T]` row-major, `positions` `[T]`.
public struct Batch: Sendable, Equatable, Codable {
    /// Token ids fed to the model. `[B, T]`
    public var inputs: [Int]
    /// The next token after each input: targets[b, t] = inputs[b, t + 1] within a window, and the last
    /// column is the window's extra (T + 1)-th token. `[B, T]`
    public var targets: [Int]
    /// Position id of each column (0..<T for a whole window), shared by all rows; a context shard keeps
    /// its global positions so RoPE rotates each token by where it sits in the full sequence. `[T]`
    public var positions: [Int]
    /// Token offset in the dataset where each row's window starts: provenance, for tests and for
    /// printing which data a rank saw. `[B]`
    public var windowStarts: [Int]

    /// B
    public var batchSize: Int { windowStarts.count }
    /// T (after a context shard, the shard's length Tc)
    public var sequenceLength: Int { positions.count }

    public init(inputs: [Int], targets: [Int], positions: [Int], windowStarts: [Int]) {
        precondition(inputs.count == windowStarts.count * positions.count && targets.count == inputs.count,
                     "batch shapes disagree: inputs \(inputs.count), targets \(targets.count), "
                     + "B \(windowStarts.count) × T \(positions.count)")
        (self.inputs, self.targets, self.positions, self.windowStarts) = (inputs, targets, positions, windowStarts)
    }

    /// Row `b` of the inputs. `[T]`
    public func inputRow(_ b: Int) -> ArraySlice<Int> { inputs[(b * sequenceLength)..<((b + 1) * sequenceLength)] }
    /// Row `b` of the targets. `[T]`
    public func targetRow(_ b: Int) -> ArraySlice<Int> { targets[(b * sequenceLength)..<((b + 1) * sequenceLength)] }

    /// Rows of several batches stacked in order: `[ΣB, T]`. Concatenating the dp ranks' micro-batches
    /// rank-major gives the single-process micro-batch (see `MicroBatchLoader`), which is how data-parallel
    /// tests build their reference input.
    public static func concatenated(_ parts: [Batch]) -> Batch {
        precondition(!parts.isEmpty, "nothing to concatenate")
        let positions = parts[0].positions
        precondition(parts.allSatisfy { $0.positions == positions },
                     "batches to concatenate have different positions (sequence lengths or shards)")
        return Batch(inputs: parts.flatMap(\.inputs), targets: parts.flatMap(\.targets), positions: positions,
                     windowStarts: parts.flatMap(\.windowStarts))
    }

    /// The part of this batch that context-parallel rank `rank` of `size` processes: the columns
    /// `split` assigns it, from inputs and targets `[B, T] → [B, Tc]` and positions `[T] → [Tc]`.
    /// Every row is cut the same way, and positions stay global (rank 1 of 2 with T = 8 gets 4...7).
    /// Throws if T does not divide by `size`.
    public func contextShard(rank: Int, size: Int, split: SequenceSplit = .contiguous) throws -> Batch {
        precondition(size > 0 && (0..<size).contains(rank), "context-parallel rank \(rank) not in 0..<\(size)")
        let columns = try split.columns(rank: rank, size: size, sequenceLength: sequenceLength)   // [Tc]
        let (B, T) = (batchSize, sequenceLength)
        var inputs: [Int] = [], targets: [Int] = []
        inputs.reserveCapacity(B * columns.count)
        targets.reserveCapacity(B * columns.count)
        for b in 0..<B {
            for t in columns {
                inputs.append(self.inputs[b * T + t])     // [B, Tc]
                targets.append(self.targets[b * T + t])   // [B, Tc]
            }
        }
        return Batch(inputs: inputs, targets: targets, positions: columns.map { positions[$0] },
                     windowStarts: windowStarts)
    }
}

/// How a sequence is cut among context-parallel ranks. The extension point for the context-parallel
/// lesson: a new split is a new case whose `columns` lists the columns each rank keeps; `contextShard`
/// gathers any list, contiguous or not.
///
/// Naive first: `contiguous` gives rank r the r-th block of T / cp columns. With a causal mask the last
/// block attends to the whole sequence and the first to almost nothing, so ranks finish at very
/// different times; Step 4 adds the load-balanced zigzag split (rank r keeps blocks r and 2·cp − 1 − r
/// of 2·cp blocks, so every rank gets an early and a late block; needs T divisible by 2·cp).
public enum SequenceSplit: String, Sendable, Codable, CaseIterable {
    /// Rank r keeps columns r·T/cp ..< (r + 1)·T/cp.
    case contiguous

    /// The columns (sequence positions) `rank` of `size` keeps, in order. `[Tc]`
    public func columns(rank: Int, size: Int, sequenceLength T: Int) throws -> [Int] {
        switch self {
        case .contiguous:
            guard T % size == 0 else {
                throw TrainingError.config("sequence length \(T) is not divisible by the context-parallel size "
                                           + "\(size): use a seq_len that is a multiple of \(size) "
                                           + "(e.g. \(Swift.max(size, T / size * size))) or change cp")
            }
            let chunk = T / size
            return Array((rank * chunk)..<((rank + 1) * chunk))
        }
    }
}
