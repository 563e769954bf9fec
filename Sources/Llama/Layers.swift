// The replaceable building blocks of the model. A parallel step swaps a layer for its parallel
// version (picotron's `apply_tensor_parallel(model)` replaces nn.Linear the same way), so the
// model talks to them only through these protocols.
// Legend: B = batch, T = sequence, C = hidden, V = vocabulary, N = B·T rows.

import TensorCore

/// Anything with named parameters. Names are Hugging Face's, relative to the owner.
public protocol ParameterHolder: AnyObject {
    /// (name, tensor) for every parameter this layer owns, names relative to the layer.
    var namedParameters: [(String, Tensor)] { get }
}

/// A bias-free linear map y = x · Wᵀ, or a parallel version of it.
public protocol LinearLayer: ParameterHolder {
    /// x `[.., in]` → `[.., out]`.
    func forward(_ x: Tensor) -> Tensor
}

/// A token-embedding lookup, or a parallel version of it.
public protocol EmbeddingLayer: ParameterHolder {
    /// ids `[B, T]` → `[B, T, C]`.
    func forward(_ ids: [Int], shape: [Int]) -> Tensor
}

/// `nn.Linear(in, out, bias=False)`: weight `[out, in]`.
public final class Linear: LinearLayer {
    public let weight: Tensor   // [out, in]

    public init(weight: Tensor) {
        precondition(weight.rank == 2, "Linear weight must be 2-D, got \(weight.shape)")
        self.weight = weight
    }

    public func forward(_ x: Tensor) -> Tensor { Tensor.linear(x, weight) }   // [.., out]
    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// `nn.Embedding(V, C)`: weight `[V, C]`.
public final class Embedding: EmbeddingLayer {
    public let weight: Tensor   // [V, C]

    public init(weight: Tensor) { self.weight = weight }

    public func forward(_ ids: [Int], shape: [Int]) -> Tensor {
        Tensor.embedding(ids, shape: shape, weight: weight)   // [B, T, C]
    }
    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// Llama's RMSNorm: weight `[C]`, initialised to ones.
public final class RMSNorm: ParameterHolder {
    public let weight: Tensor   // [C]
    public let eps: Float
    /// The weight as the forward reads it: the weight itself, or (sequence parallelism, lesson 2) the
    /// weight through an op whose backward sums its gradient over the ranks that hold the other tokens.
    public var readWeight: (Tensor) -> Tensor = { $0 }

    public init(weight: Tensor, eps: Float) {
        self.weight = weight
        self.eps = eps
    }

    public func forward(_ x: Tensor) -> Tensor { Tensor.rmsNorm(x, weight: readWeight(weight), eps: eps) }   // [.., C]
    public var namedParameters: [(String, Tensor)] { [("weight", weight)] }
}

/// Makes parameters from a seed: a parameter's values depend only on (seed, its name, index),
/// so a rank that builds one shard gets exactly the slice of the full parameter.
public struct ParameterFactory: Sendable {
    public let seed: UInt64
    public let std: Float

    public init(seed: UInt64, std: Float) {
        self.seed = seed
        self.std = std
    }

    /// Rows `rows` and columns `cols` of the full `[fullRows, fullCols]` matrix named `name`,
    /// drawn from normal(0, std) as Hugging Face's `_init_weights` does for Linear/Embedding.
    public func normal(_ name: String, fullCols: Int, rows: Range<Int>, cols: Range<Int>) -> Tensor {
        let values = CounterRNG(seed: seed, stream: name)
            .normalBlock(std: std, cols: fullCols, rowRange: rows, colRange: cols)
        return Tensor(shape: [rows.count, cols.count], data: values, requiresGrad: true, name: name)
    }

    /// The whole `[rows, cols]` matrix.
    public func normal(_ name: String, _ rows: Int, _ cols: Int) -> Tensor {
        normal(name, fullCols: cols, rows: 0..<rows, cols: 0..<cols)
    }

    /// A vector of ones (RMSNorm weights).
    public func ones(_ name: String, _ n: Int) -> Tensor {
        Tensor(shape: [n], data: [Float](repeating: 1, count: n), requiresGrad: true, name: name)
    }
}

/// Makes the weight-holding layers of a model being initialised, by Hugging Face name and full
/// shape `[out, in]` (or `[V, C]`). `plain` makes whole layers; a parallel step makes shards.
public struct LlamaBuilder {
    public var linear: (_ name: String, _ out: Int, _ in: Int, _ f: ParameterFactory) throws -> any LinearLayer
    public var embedding: (_ name: String, _ vocab: Int, _ hidden: Int, _ f: ParameterFactory) throws -> any EmbeddingLayer
    /// The head of a tied model, from its embedding (nil: the model multiplies by the embedding itself).
    public var tiedHead: (_ embedding: any EmbeddingLayer) -> (any LinearLayer)?
    /// Ranks the attention heads are divided among (each rank computes heads / ranks of them).
    public var ranks: Int
    /// Which weights (by Hugging Face name) this rank holds. The others get empty placeholders
    /// (`[0, in]`, `[0, C]`): a pipeline stage allocates only its own layers. Norms are always made
    /// (C floats each).
    public var keeps: (_ name: String) -> Bool = { _ in true }

    public init(ranks: Int = 1,
                linear: @escaping (_ name: String, _ out: Int, _ in: Int, _ f: ParameterFactory) throws -> any LinearLayer,
                embedding: @escaping (_ name: String, _ vocab: Int, _ hidden: Int, _ f: ParameterFactory) throws -> any EmbeddingLayer,
                tiedHead: @escaping (_ embedding: any EmbeddingLayer) -> (any LinearLayer)? = { _ in nil }) {
        (self.ranks, self.linear, self.embedding, self.tiedHead) = (ranks, linear, embedding, tiedHead)
    }

    /// The same builder, keeping only the weights `keeps` names.
    public func keeping(_ keeps: @escaping (_ name: String) -> Bool) -> LlamaBuilder {
        var b = self
        b.keeps = keeps
        return b
    }

    /// Whole layers, as `LlamaForCausalLM(config:seed:)` makes them.
    public static let plain = LlamaBuilder(
        linear: { name, out, inn, f in Linear(weight: f.normal(name, out, inn)) },
        embedding: { name, v, c, f in Embedding(weight: f.normal(name, v, c)) })
}
