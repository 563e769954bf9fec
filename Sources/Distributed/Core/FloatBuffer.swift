/// A heap array of `Float` whose address never moves: the buffer of a non-blocking operation.
///
/// A `[Float]` may be moved or copied by Swift at any time, but MPI keeps writing into a
/// receive buffer after `MPI_Irecv` returns. So non-blocking calls take a `FloatBuffer`, and
/// the request keeps it alive until `wait()`. Between posting and `wait()` the buffer belongs
/// to the communicator: do not read or write it. Not thread-safe otherwise.
public final class FloatBuffer: @unchecked Sendable {
    /// The storage; backends pass its address to MPI. Never handed out beyond a closure.
    let storage: UnsafeMutableBufferPointer<Float>

    public var count: Int { storage.count }

    /// `count` zeros (or `value`s).
    public init(count: Int, repeating value: Float = 0) {
        precondition(count >= 0, "FloatBuffer count \(count) must be >= 0")
        storage = .allocate(capacity: count)
        storage.initialize(repeating: value)
    }

    /// A copy of `array`.
    public init(_ array: [Float]) {
        storage = .allocate(capacity: array.count)
        _ = storage.initialize(from: array)
    }

    deinit { storage.deallocate() }

    public subscript(index: Int) -> Float {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    /// A copy of the contents.
    public var array: [Float] { Array(storage) }

    /// Overwrites the contents with `array`, which must have the same count.
    public func assign(_ array: [Float]) {
        precondition(array.count == count, "assign: \(array.count) floats into a buffer of \(count)")
        array.withUnsafeBufferPointer { src in
            guard let s = src.baseAddress, let d = storage.baseAddress else { return }
            d.update(from: s, count: count)
        }
    }

    public func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws(E) -> R
    ) throws(E) -> R {
        try body(storage)
    }

    public func withUnsafeBufferPointer<R, E: Error>(
        _ body: (UnsafeBufferPointer<Float>) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeBufferPointer(storage))
    }
}
