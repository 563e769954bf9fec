// Bucketed data parallelism with overlap: the fast version of NaiveDataParallel.swift.
// Gradients are packed into a few flat buckets (Buckets.swift); the gradient-ready hook of each
// parameter copies its gradient into its bucket, and the hook that completes a bucket launches
// that bucket's non-blocking all-reduce at once, while the backward pass goes on computing the
// earlier layers. One wait at the end of the step, then the averaged values go back into the
// gradients. Same numbers as the naive version (bucket size never changes them), fewer calls,
// and most of the communication hidden behind compute.
//
//   backward  |████████████████████████████████|        compute, last layer → first
//   bucket 0  |     ▒▒▒▒                       |        launched from a hook, in flight
//   bucket 1  |               ▒▒▒▒             |
//   bucket 2  |                          ▒▒▒▒▒▒|▒▒      the last one is what we wait for
//
// Legend: S = bucket capacity in floats, dp = ranks in the data-parallel group.
//
// ### References
// Li et al., PyTorch Distributed: Experiences on Accelerating Data Parallel Training, 2020,
// https://arxiv.org/abs/2006.15704 (gradient bucketing, overlap); picotron `data_parallel.py`
// and `bucket.py` (DataParallelBucket, BucketManager).

import Distributed
import ExerciseKit
import Foundation
import TensorCore
import Training

/// Averages gradients over `group` with bucketed all-reduces launched during backward.
///
/// Pass the data-parallel group (the cp+dp group once context parallelism exists, see
/// `NaiveDataParallel`). Frozen parameters are left out of every bucket: never reduced.
public final class BucketedDataParallel: GradientSynchronizer {
    public let group: Communicator
    /// The buckets, in launch order on a typical backward (bucket 0 = the last layers).
    public let buckets: [Bucket]
    /// When each bucket's reduction ran, relative to the backward pass that synchronised (the
    /// last micro-batch of the last step): drawn by the lesson.
    public let recorder = TimelineRecorder()

    /// For each parameter, its bucket and its slot in that bucket.
    private var location: [ObjectIdentifier: (bucket: Int, slot: Int)] = [:]
    private var syncThisBackward = true
    private var backwardStart = 0.0
    private var failure: (any Error)?
    /// The communication queue: waits on the launched requests, in launch order.
    private let commQueue = DispatchQueue(label: "picotron.dp.comm")

    /// - Parameters:
    ///   - bucketMB: capacity of a bucket in MiB (25 in torch DDP and picotron; the lesson
    ///     model is tiny, so the lesson and tests use small values to get several buckets).
    ///   - movesGradients: the gradients move into the buckets and back instead of being copied,
    ///     so they are never held twice (see `Bucket.movesGradients`); same numbers.
    public init(parameters: [(String, Tensor)], group: Communicator, bucketMB: Double = 25, movesGradients: Bool = false) {
        self.group = group
        let trainable = parameters.filter { $0.1.requiresGrad }
        let plan = assignBuckets(sizes: trainable.map { $0.1.count }, capacity: bucketCapacity(megabytes: bucketMB))
        buckets = plan.enumerated().map { b, members in
            Bucket(index: b, parameters: members.map { trainable[$0] }, movesGradients: movesGradients)
        }
        for bucket in buckets {
            for (s, slot) in bucket.slots.enumerated() {
                location[ObjectIdentifier(slot.tensor)] = (bucket.index, s)
                slot.tensor.onGradReady { [unowned self] param in self.gradientReady(param) }
            }
        }
    }

    /// The last synchronising backward pass as spans relative to its start: the backward, each
    /// bucket's reduction (launch → complete), and the final wait.
    public var timeline: Timeline {
        let t = recorder.timeline.relative(to: backwardStart)
        func order(_ s: Timeline.Span) -> Int { s.kind == .compute ? -1 : s.kind == .waiting ? Int.max : s.label.count }
        return Timeline(spans: t.spans.sorted { (order($0), $0.label) < (order($1), $1.label) })
    }

    /// Removes the hooks (call before handing the model to another synchronizer).
    public func detach() { for b in buckets { for s in b.slots { s.tensor.removeGradReadyHooks() } } }

    public func beforeBackward(microBatch index: Int, of count: Int) {
        // A reduction still in flight from an earlier micro-batch (only when the rule syncs
        // more than once a step) must land before this backward adds to the gradients.
        completeReductions()
        syncThisBackward = shouldSynchronize(microBatch: index, of: count)
        if syncThisBackward {
            recorder.reset()
            backwardStart = Timeline.now()
        }
    }

    public func synchronizes(microBatch index: Int, of count: Int) -> Bool {
        shouldSynchronize(microBatch: index, of: count)
    }

    /// Waits for every bucket's reduction and writes the averages into the gradients.
    public func finishStep() throws {
        let backwardEnd = Timeline.now()
        recorder.record(.init("backward", start: backwardStart, end: backwardEnd, kind: .compute))
        // A bucket whose hook never completed it (a parameter unused by this backward): launch it
        // now, so every rank still makes the same calls. Not after a failed launch: posting again
        // would make a call no peer matches, and the rank would stall until the timeout.
        if syncThisBackward && failure == nil {
            for b in buckets where b.inFlight == nil && b.readyCount > 0 { launchReduction(b) }
        }
        completeReductions()
        recorder.record(.init("wait", start: backwardEnd, end: Timeline.now(), kind: .waiting))
        if let failure {
            self.failure = nil
            throw failure
        }
    }

    /// The hook: the gradient of `param` is final for this backward pass. Task 1.4.
    private func gradientReady(_ param: Tensor) {
        guard syncThisBackward, failure == nil, let (b, s) = location[ObjectIdentifier(param)] else { return }
        let bucket = buckets[b]
        // TODO(Step1.4): copy this parameter's gradient into its slot of the bucket (`pack`), count
        // it as ready, and when it is the bucket's last one, `launchReduction(bucket)`. Three lines.
        Todo.reached("Step1.4", "BucketedDataParallel.gradientReady (launch a bucket's all-reduce from the hook)",
                     lesson: "Lessons/01-data-parallel.md#task-14")
        _ = (bucket, s)
    }

    /// Starts the non-blocking all-reduce of a full bucket; backward continues meanwhile.
    private func launchReduction(_ bucket: Bucket) {
        do {
            let request = try group.iallReduce(bucket.buffer, op: .sum)
            let n = bucket.slots.count
            let (label, note) = ("bucket \(bucket.index)", "\(n) tensor\(n == 1 ? "" : "s"), \(bucket.count) floats")
            let start = Timeline.now()
            bucket.inFlight = InFlight(request: request, group: group, on: commQueue, launched: start) { [recorder] end in
                recorder.record(.init(label, start: start, end: end, kind: .communication, note: note))
            }
        } catch {
            failure = failure ?? error
        }
    }

    /// The final wait: for each launched bucket, wait for its reduction, then copy the sum
    /// divided by dp back into the gradients. Task 1.5.
    private func completeReductions() {
        for bucket in buckets {
            defer { bucket.readyCount = 0 }
            guard let inFlight = bucket.inFlight else { continue }
            bucket.inFlight = nil
            // TODO(Step1.5): wait for the bucket's reduction (`inFlight.wait()`, it throws), then
            // `unpack` the sum divided by dp into the gradients; keep the first error in `failure`.
            // Until then the reductions complete unseen and the gradients stay this rank's own.
            Todo.reached("Step1.5", "BucketedDataParallel.completeReductions (the final wait and copy-back)",
                         lesson: "Lessons/01-data-parallel.md#task-15")
            _ = inFlight
        }
    }
}
