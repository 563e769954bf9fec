// Gradient buckets: many small gradients packed back to back into a few flat buffers, so the
// data-parallel group runs a few large all-reduces instead of one per parameter. Each
// all-reduce pays a fixed latency (α) plus a cost per byte (β), so n small ones cost n·α more
// than one big one; but one single bucket could only start after the whole backward pass.
// A few buckets of ~25 MB (torch DDP's and picotron's default) get both: few calls, and the
// first buckets' reductions run while the backward pass computes the rest.
//
// Legend: P_k = values in parameter k, S = bucket capacity in floats, n = trainable parameters.

import Distributed
import Foundation
import TensorCore
import Training

/// S, the capacity in floats of a bucket of `megabytes` MiB (picotron and torch count
/// `bucket_cap_mb` in MiB: 25 MB = 25 · 2²⁰ bytes). At least one float, at most
/// `maxBucketMB` MiB of them: the Double → Int conversion traps on infinity, NaN and values
/// beyond Int, so the value is clamped first (the command lines refuse such values anyway).
public func bucketCapacity(megabytes: Double) -> Int {
    let mb = megabytes.isNaN ? 0 : min(max(megabytes, 0), Double(maxBucketMB))
    return max(1, Int(mb * 1024 * 1024) / MemoryLayout<Float>.size)
}

/// The largest bucket the command lines accept, in MiB: 1 TiB, far beyond any model's gradients
/// here (a larger bucket behaves the same: everything in one bucket).
public let maxBucketMB = 1 << 20

/// Why `megabytes` is not a usable `--bucket-mb`, or nil when it is: it must be a finite number
/// in (0, maxBucketMB].
public func bucketSizeProblem(megabytes: Double) -> String? {
    guard megabytes > 0, megabytes <= Double(maxBucketMB) else {
        return "--bucket-mb \(megabytes) must be a number above 0 and at most \(maxBucketMB) (1 TiB); "
            + "25 is torch's and picotron's default, and a bucket larger than the model's gradients "
            + "changes nothing (they all fit in one)"
    }
    return nil
}

/// Assigns parameters to buckets. Task 1.3.
///
/// - Parameters:
///   - sizes: P_k of the trainable parameters, in the model's parameter order (embedding first).
///   - capacity: S, in floats.
/// - Returns: the buckets, each a list of indices into `sizes`. Parameters are taken in
///   *reverse* order, because backward makes gradients ready from the last layer to the first:
///   bucket 0 holds the LM head and the last layer and fills up first. A bucket takes the next
///   parameter while it fits (running size + P_k <= S); otherwise a new bucket starts. A
///   parameter larger than S gets a bucket of its own. Every index appears exactly once.
public func assignBuckets(sizes: [Int], capacity: Int) -> [[Int]] {
    // TASK(Step1.3) assignBuckets (which parameters share a bucket) @ Lessons/01-data-parallel.md#task-13
    // > walk the indices from last to first, filling a bucket while the next size
    // > fits and starting a new one when it does not. About ten lines. Until then: no buckets,
    // > so bucketed data parallelism reduces nothing.
    var buckets: [[Int]] = []
    var current: [Int] = [], filled = 0
    for k in sizes.indices.reversed() {
        if !current.isEmpty && filled + sizes[k] > capacity {
            buckets.append(current)
            (current, filled) = ([], 0)
        }
        current.append(k)
        filled += sizes[k]
    }
    if !current.isEmpty { buckets.append(current) }
    return buckets
    // STAND-IN: return []
    // END TASK(Step1.3)
}

/// One bucket: its parameters, where each one's gradient sits in the flat buffer, and the
/// state of this step's reduction.
public final class Bucket {
    /// A parameter's place in the bucket: values `offset ..< offset + count` of `buffer`.
    public struct Slot {
        public let name: String
        public let tensor: Tensor
        public let offset: Int
        public var count: Int { tensor.count }
    }

    public let index: Int
    public let slots: [Slot]
    /// The flat buffer the all-reduce works on: its address never moves while a reduction is in
    /// flight, as MPI requires of a non-blocking operation's memory. `[Σ P_k]`
    public private(set) var buffer: FloatBuffer
    /// Whether the gradients move into the bucket instead of being copied (PyTorch DDP's
    /// `gradient_as_bucket_view` saves the same memory): `pack` frees a gradient once copied, and the
    /// buffer lives only from the first `pack` to the `unpack`, so a rank never holds its gradients
    /// twice. Off in the lesson (the copy is easier to watch); `picotron train` turns it on.
    let movesGradients: Bool
    /// Σ P_k.
    private let total: Int
    /// How many of this bucket's gradients are final in the current backward pass.
    var readyCount = 0
    /// The reduction in flight, once launched; nil before launch and after the final wait.
    var inFlight: InFlight?

    init(index: Int, parameters: [(String, Tensor)], movesGradients: Bool = false) {
        var offset = 0
        var slots: [Slot] = []
        for (name, t) in parameters {
            slots.append(Slot(name: name, tensor: t, offset: offset))
            offset += t.count
        }
        self.index = index
        self.slots = slots
        total = offset
        self.movesGradients = movesGradients
        buffer = FloatBuffer(count: movesGradients ? 0 : offset)                      // [Σ P_k] or none yet
    }

    /// Σ P_k, the values in the bucket.
    public var count: Int { total }

    /// Copies `slot`'s gradient (zeros if it has none) into its place in the buffer.
    func pack(_ slot: Slot) {
        if buffer.count != total { buffer = FloatBuffer(count: total) }                 // [Σ P_k]
        defer { if movesGradients { slot.tensor.grad = nil } }
        buffer.withUnsafeMutableBufferPointer { b in
            guard let base = b.baseAddress else { return }
            if let g = slot.tensor.grad {
                g.withUnsafeBufferPointer { src in
                    base.advanced(by: slot.offset).update(from: src.baseAddress!, count: slot.count)
                }
            } else {
                base.advanced(by: slot.offset).update(repeating: 0, count: slot.count)
            }
        }
    }

    /// Writes `scale ×` the buffer's values back into every slot's gradient.
    func unpack(scale: Float) {
        buffer.withUnsafeBufferPointer { b in
            for slot in slots {
                var g = [Float](repeating: 0, count: slot.count)                   // [P_k]
                for j in 0..<slot.count { g[j] = b[slot.offset + j] * scale }
                slot.tensor.grad = g
            }
        }
        if movesGradients { buffer = FloatBuffer(count: 0) }
    }
}

/// A launched all-reduce and its watcher: a communication queue waits on the request as soon as
/// it is posted (as a GPU's communication stream would), so the time it completes is recorded
/// while the rank computes, and MPI is driven to make progress in the background.
final class InFlight: @unchecked Sendable {
    let launched: Double
    private(set) var completed: Double = 0
    private var outcome: Result<Void, CommError>?
    private let done = DispatchSemaphore(value: 0)

    /// The group the reduction runs on: the rank's final wait is counted in its ledger.
    private let group: Communicator

    init(request: CommRequest<FloatBuffer>, group: Communicator, on queue: DispatchQueue, launched: Double,
         finished: @escaping (Double) -> Void) {
        self.launched = launched
        self.group = group
        queue.async { [self] in
            CommClock.inBackground {   // overlapped with the backward: not time the rank waits
                do throws(CommError) { try request.wait(); outcome = .success(()) } catch { outcome = .failure(error) }
            }
            completed = Timeline.now()
            finished(completed)
            done.signal()
        }
    }

    /// Blocks until the reduction is complete; rethrows its error.
    func wait() throws(CommError) {
        let start = DispatchTime.now().uptimeNanoseconds
        done.wait()
        group.recordWait(.allReduce, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        if case .failure(let e) = outcome { throw e }
    }
}
