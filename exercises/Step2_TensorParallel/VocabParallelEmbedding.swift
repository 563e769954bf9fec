// The embedding cut by vocabulary rows, and the LM head that shares (tied) or mirrors (untied)
// that cut. Rank r owns tokens r·V/tp ..< (r+1)·V/tp.
// Legend: B = batch, T = sequence, N = B·T tokens, C = hidden, V = vocabulary, tp = ranks.
//
//   embedding  E [V, C] cut by rows   rank r: E_r [V/tp, C]
//   forward    h = g(masked lookup)   a token outside the shard contributes a zero row,
//              the owner contributes its row, the all-reduce (g) puts the row on every rank.
// ### References
// Megatron-LM's VocabParallelEmbedding, https://github.com/NVIDIA/Megatron-LM

import ExerciseKit
import Llama
import TensorCore

/// `nn.Embedding(V, C)` cut by vocabulary rows.
public final class VocabParallelEmbedding: EmbeddingLayer {
    public let weight: Tensor          // [V/tp, C]
    public let spec: ShardSpec
    /// Reduce-scatter the rows along the sequence (sequence parallelism) instead of g.
    public let sequenceParallel: Bool
    let group: TensorParallelGroup

    /// The shard of a full embedding `[V, C]`.
    public convenience init(sliceOf full: Tensor, group: TensorParallelGroup, sequenceParallel: Bool = false) throws {
        let spec = try VocabParallelEmbedding.spec(full.shape, group)
        self.init(shard: Tensor(shape: spec.shardShape, data: spec.slice(full.data), requiresGrad: true,
                                name: full.name), spec: spec, group: group, sequenceParallel: sequenceParallel)
    }

    /// The shard drawn straight from the seed.
    public convenience init(factory: ParameterFactory, name: String, vocab: Int, hidden: Int,
                            group: TensorParallelGroup, sequenceParallel: Bool = false) throws {
        let spec = try VocabParallelEmbedding.spec([vocab, hidden], group)
        self.init(shard: factory.normal(name, fullCols: hidden, rows: spec.range, cols: 0..<hidden),
                  spec: spec, group: group, sequenceParallel: sequenceParallel)   // [V/tp, C]
    }

    public init(shard: Tensor, spec: ShardSpec, group: TensorParallelGroup, sequenceParallel: Bool = false) {
        precondition(shard.shape == spec.shardShape, "shard \(shard.shape) does not match \(spec)")
        (weight, self.spec, self.group, self.sequenceParallel) = (shard, spec, group, sequenceParallel)
    }

    static func spec(_ shape: [Int], _ group: TensorParallelGroup) throws -> ShardSpec {
        try TensorParallelError.checkDivides(group.size, [("vocab_size", shape[0])])
        return ShardSpec(cut: .rows, fullShape: shape, rank: group.rank, size: group.size)
    }

    /// This rank's tokens: `vocabStart ..< vocabStart + V/tp`.
    public var vocabRange: Range<Int> { spec.range }

    /// ids `[B, T]` (full vocabulary) → `[B, T, C]`, the same on every rank (sequence parallel:
    /// `[B, T/tp, C]`, this rank's tokens).
    public func forward(_ ids: [Int], shape: [Int]) -> Tensor {
        let partial = VocabParallelEmbedding.maskedLookup(ids, shape: shape, weight: weight, vocab: vocabRange)
        return sequenceParallel ? reduceScatterToSequenceParallelRegion(partial, group)   // [B, T/tp, C]
            : reduceFromTensorParallelRegion(partial, group)          // [B, T, C] g: Σ over ranks
    }

    /// The rows of this rank's tokens, zeros for every other token: ids `[B, T]` → `[B, T, C]`.
    /// Backward adds each owned token's gradient row into its shard row; others get nothing.
    static func maskedLookup(_ ids: [Int], shape: [Int], weight: Tensor, vocab: Range<Int>) -> Tensor {
        let c = weight.shape[1]
        // TODO(Step2.7): forward: row i of y is row (id − vocab.lowerBound) of the shard when
        // `vocab` contains ids[i], zeros otherwise. Backward (a `Tensor.custom` on [weight]): add
        // dy's row i into that shard row, for owned ids only (a token seen twice adds twice).
        Todo.reached("Step2.7", "VocabParallelEmbedding masked lookup",
                     lesson: "Lessons/02-tensor-parallel.md, Task 2.7")
        return Tensor.custom(inputs: [weight], shape: shape + [c], data: [Float](repeating: 0, count: ids.count * c)) { _ in
            [nil]
        }
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}
