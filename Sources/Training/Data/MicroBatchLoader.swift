// Deterministic micro-batches for every data-parallel rank, resumable from a checkpoint.
//
// The dataset is cut into W non-overlapping windows of T + 1 tokens (window w = tokens
// w·(T+1) ..< (w+1)·(T+1); the < T + 1 tokens left at the end are unused). A window gives one row:
// its first T tokens are the inputs, its last T the targets (the next token at every position).
// Windows share no token, so "disjoint shards" holds at the level of tokens, not only of windows.
//
// Legend: N = tokens, T = sequence length, W = windows per epoch = N / (T + 1), B = micro-batch size,
//         dp = data-parallel ranks, A = gradient-accumulation steps, G = B · A · dp = global batch (windows).

import TensorCore

/// Where the loader is in the window stream; tiny and `Codable`, saved in checkpoints.
///
/// The position is global (shared by all dp ranks, which advance in lockstep) and counts windows, not
/// micro-batches, so it means the same thing whatever B and dp the run resumes with.
public struct LoaderState: Codable, Sendable, Hashable {
    /// Epochs completed: the next window is in epoch `epoch`'s order.
    public var epoch: Int
    /// Index, within epoch `epoch`'s order, of the next window the dp group consumes.
    public var window: Int
    /// The run's shuffle seed and W; a resumed loader checks both so a different corpus, seq_len or seed
    /// fails loudly instead of silently re-reading other windows.
    public var seed: Int
    public var windowsPerEpoch: Int

    public init(epoch: Int = 0, window: Int = 0, seed: Int, windowsPerEpoch: Int) {
        (self.epoch, self.window, self.seed, self.windowsPerEpoch) = (epoch, window, seed, windowsPerEpoch)
    }
}

/// Micro-batches of `[B, T]` for data-parallel rank `dpRank` of `dpSize`.
///
/// **Order.** Epoch e visits all W windows once, in a seeded permutation of 0..<W (Fisher–Yates driven by
/// the counter-based `CounterRNG` of (seed, e), our own code so the order never changes with the Swift version), or in
/// order 0, 1, 2, … when `shuffle` is false. The epochs' orders, one after another, form the window
/// stream S; wrapping into the next epoch is just reading on in S.
///
/// **Sharding.** S is read in chunks of B windows, one chunk per micro-batch. Rank r takes chunks
/// r, r + dp, r + 2·dp, …: at micro-step m (counted from the start of training) rank r's rows are
/// S[(m·dp + r)·B ..< (m·dp + r + 1)·B]. This is PyTorch's DistributedSampler stride (r, r + dp, …)
/// applied to micro-batch-sized chunks instead of single windows (with B = 1 the two coincide);
/// chunks keep each rank's rows contiguous in S, which buys the exact equivalence below, row for row.
///
/// **Equivalence with one process.** At micro-step m the dp micro-batches, concatenated rank-major
/// (`Batch.concatenated` of ranks 0, 1, …, dp − 1), are S[m·dp·B ..< (m + 1)·dp·B]: exactly micro-step
/// m of a single process (dp = 1, same seed) with micro-batch dp·B. With A accumulation steps,
/// optimizer step s spans micro-steps s·A ..< (s + 1)·A, i.e. S[s·G ..< (s + 1)·G], G = B·A·dp; so the
/// reference for (dp ranks × A micro-batches of B) is one process with micro-batch dp·B and the same A,
/// or equally one process with micro-batch G and A = 1: same windows, same order, no duplicates, and
/// within an epoch no window is seen twice by any two ranks.
public struct MicroBatchLoader: Sendable {
    public let dataset: TokenDataset
    /// B, rows per micro-batch on this rank.
    public let microBatchSize: Int
    /// T, tokens per row.
    public let sequenceLength: Int
    public let dpRank: Int
    public let dpSize: Int
    public let shuffle: Bool
    /// W = N / (T + 1).
    public let windowsPerEpoch: Int
    /// Position in the stream after the micro-batches returned so far; save it with the checkpoint.
    public private(set) var state: LoaderState
    /// The order of the epoch read last, cached: an epoch is read over many micro-steps. `[W]`
    private var cached: (epoch: Int, order: [Int])?

    /// Throws if a token id is outside `vocabSize` (checked once, here), if the dataset holds fewer than
    /// (T + 1) · dp tokens, or if `state` was saved for another corpus, seq_len or seed.
    /// - Parameter state: where a checkpoint left off; nil starts at epoch 0, window 0.
    public init(dataset: TokenDataset, microBatchSize: Int, sequenceLength: Int, vocabSize: Int,
                dpRank: Int = 0, dpSize: Int = 1, seed: Int = 0, shuffle: Bool = true,
                state: LoaderState? = nil) throws {
        precondition(microBatchSize > 0 && sequenceLength > 0, "micro-batch size and sequence length must be positive")
        precondition(dpSize > 0 && (0..<dpSize).contains(dpRank), "data-parallel rank \(dpRank) not in 0..<\(dpSize)")
        try dataset.checkLength(sequenceLength: sequenceLength, dataParallelSize: dpSize)
        try dataset.validate(vocabSize: vocabSize)
        let W = dataset.windowCount(sequenceLength: sequenceLength)
        if let state {
            guard state.windowsPerEpoch == W else {
                throw TrainingError.checkpoint("loader state was saved with \(state.windowsPerEpoch) windows per "
                                               + "epoch, but \(dataset.name) with seq_len \(sequenceLength) has \(W): "
                                               + "resume with the same data and seq_len")
            }
            guard state.seed == seed else {
                throw TrainingError.checkpoint("loader state was saved with seed \(state.seed), but this run has "
                                               + "seed \(seed): resume with seed \(state.seed)")
            }
            guard state.epoch >= 0, (0..<W).contains(state.window) else {
                throw TrainingError.checkpoint("loader state (epoch \(state.epoch), window \(state.window)) is "
                                               + "outside epoch >= 0, window 0..<\(W): the checkpoint is damaged")
            }
        }
        self.dataset = dataset
        (self.microBatchSize, self.sequenceLength) = (microBatchSize, sequenceLength)
        (self.dpRank, self.dpSize, self.shuffle, self.windowsPerEpoch) = (dpRank, dpSize, shuffle, W)
        self.state = state ?? LoaderState(seed: seed, windowsPerEpoch: W)
    }

    /// This rank's next micro-batch; advances the shared position by dp · B windows (everyone's rows).
    public mutating func next() -> Batch {
        let (B, T) = (microBatchSize, sequenceLength)
        let first = state.epoch * windowsPerEpoch + state.window + dpRank * B   // this rank's chunk in S
        var inputs: [Int] = [], targets: [Int] = [], starts: [Int] = []
        inputs.reserveCapacity(B * T)
        targets.reserveCapacity(B * T)
        for row in 0..<B {
            let start = window(atStreamIndex: first + row) * (T + 1)
            let tokens = dataset.tokens(start..<(start + T + 1))   // [T + 1]
            inputs += tokens[0..<T]                                // [B, T]
            targets += tokens[1...T]                               // [B, T], shifted by one: the next token
            starts.append(start)
        }
        let after = state.epoch * windowsPerEpoch + state.window + dpSize * B
        (state.epoch, state.window) = (after / windowsPerEpoch, after % windowsPerEpoch)
        return Batch(inputs: inputs, targets: targets, positions: Array(0..<T), windowStarts: starts)
    }

    /// The window at index `i` of the stream S (epoch i / W, place i % W of that epoch's order).
    mutating func window(atStreamIndex i: Int) -> Int {
        let (epoch, place) = (i / windowsPerEpoch, i % windowsPerEpoch)
        if cached?.epoch != epoch {
            cached = (epoch, Self.order(epoch: epoch, windows: windowsPerEpoch, seed: state.seed, shuffle: shuffle))
        }
        return cached!.order[place]
    }

    /// Epoch `epoch`'s visiting order of windows 0..<W: a permutation, seeded by (seed, epoch). `[W]`
    public static func order(epoch: Int, windows W: Int, seed: Int, shuffle: Bool) -> [Int] {
        var order = Array(0..<W)
        guard shuffle else { return order }
        let rng = CounterRNG(seed: UInt64(bitPattern: Int64(seed)), stream: "data-order-epoch-\(epoch)")
        // Fisher–Yates. `% (i + 1)` has a bias of at most W / 2⁶⁴: irrelevant, and keeps it readable.
        for i in stride(from: W - 1, to: 0, by: -1) {
            let j = Int(rng.bits(UInt64(i)) % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}
