// The tensor: float32, contiguous, row-major, with an optional gradient and the link back to
// the op that produced it (the autograd tape is the graph of these links, see Autograd.swift).
//
// Shape legend for the whole module: N = rows (batch × tokens), K = inner, M = out,
// B = batch, T = sequence, C = hidden, nh = query heads, nkv = key/value heads, hs = head size.

/// A float32 tensor that can take part in reverse-mode automatic differentiation.
///
/// Values are stored contiguously in row-major order. A tensor made by an op on tensors that
/// require gradients remembers its parents and a backward closure; `backward()` on a scalar
/// walks that graph in reverse topological order (see `Autograd.swift`).
public final class Tensor {
    /// The extent of each dimension; `[]` is a scalar.
    public private(set) var shape: [Int]
    /// The values, row-major.
    public var data: [Float]
    /// The gradient of the last `backward()` (accumulated over calls until `zeroGrad()`).
    public var grad: [Float]?
    /// Whether gradients flow to (and through) this tensor.
    public var requiresGrad: Bool
    /// A name for messages and checkpoints (parameters carry their Hugging Face name).
    public var name: String

    // Autograd links: filled by ops, released once backward has used them.
    var parents: [Tensor] = []
    var backwardFn: ((Tensor) -> Void)?
    /// The function of the op that made it (for `OpProfiler`).
    var op: StaticString = ""
    var gradReadyHooks: [(Tensor) -> Void] = []

    /// A tensor holding `data` with the given shape.
    public init(shape: [Int], data: [Float], requiresGrad: Bool = false, name: String = "") {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == data.count,
                     "shape \(shape) holds \(shape.reduce(1, *)) values but \(data.count) were given")
        self.shape = shape
        self.data = data
        self.requiresGrad = requiresGrad
        self.name = name
    }

    /// A tensor of zeros.
    public convenience init(zeros shape: [Int], requiresGrad: Bool = false, name: String = "") {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)),
                  requiresGrad: requiresGrad, name: name)
    }

    /// A scalar.
    public convenience init(scalar: Float) {
        self.init(shape: [], data: [scalar])
    }

    /// The number of values.
    public var count: Int { data.count }
    /// The number of dimensions.
    public var rank: Int { shape.count }
    /// The only value of a one-element tensor.
    public var item: Float {
        precondition(data.count == 1, "item needs one value, tensor has shape \(shape)")
        return data[0]
    }

    /// Clears the gradient (the next backward starts from zero).
    public func zeroGrad() { grad = nil }

    /// A new leaf with the same values that does not require gradients.
    public func detached() -> Tensor { Tensor(shape: shape, data: data, name: name) }

    /// Rows × columns when the last dimension is the feature dimension: `[.., C]` → `(N, C)`.
    public var rowsAndColumns: (rows: Int, cols: Int) {
        precondition(!shape.isEmpty, "a scalar has no rows")
        return (shape.dropLast().reduce(1, *), shape[shape.count - 1])   // product, so [2, 0] has 2 rows
    }

    /// Replaces the shape in place (same number of values); used by reshape.
    func setShape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == data.count, "cannot view \(shape) as \(newShape)")
        shape = newShape
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = data.prefix(6).map { String(format: "%.5g", Double($0)) }.joined(separator: ", ")
        let label = name.isEmpty ? "Tensor" : name
        return "\(label)\(shape)[\(head)\(data.count > 6 ? ", …" : "")]"
    }
}

// MARK: - Unsafe access in small closures

extension Tensor {
    /// Reads the values through a raw pointer (no bounds checks in hot loops).
    @inlinable
    public func withValues<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try data.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// Gives a pointer to the gradient, allocated as zeros on first use, to accumulate into.
    /// Every backward closure adds (`+=`) into it: a tensor used twice receives both parts.
    public func accumulateGrad(_ body: (UnsafeMutablePointer<Float>) -> Void) {
        guard requiresGrad else { return }
        if grad == nil { grad = [Float](repeating: 0, count: data.count) }
        grad!.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// Like `accumulateGrad(_:)`, but tells `body` whether the gradient was just created: then
    /// its memory is uninitialised and `body` must write (not add) every element. Saves zeroing
    /// a buffer only to add into it, e.g. a matrix product writes with beta = 0 instead of 1.
    public func accumulateGrad(_ body: (UnsafeMutablePointer<Float>, _ fresh: Bool) -> Void) {
        guard requiresGrad else { return }
        if grad == nil {
            grad = uninitializedFloats(data.count) { body($0, true) }
            return
        }
        grad!.withUnsafeMutableBufferPointer { body($0.baseAddress!, false) }
    }

    /// Adds `values` (same count) into the gradient; the first contribution is kept as it is
    /// (no copy: arrays are copy-on-write), so pass-through backwards (reshape, add) cost nothing.
    public func accumulateGrad(_ values: [Float]) {
        precondition(values.count == data.count,
                     "gradient for \(name)\(shape) has \(values.count) values, expected \(data.count)")
        guard requiresGrad else { return }
        if grad == nil { grad = values; return }
        values.withUnsafeBufferPointer { v in
            accumulateGrad { g in for i in 0..<v.count { g[i] += v[i] } }
        }
    }
}

/// Allocates an array without zeroing it; `body` must write every element.
@inlinable
func uninitializedFloats(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { body(buffer.baseAddress!) }
        initialized = count
    }
}
