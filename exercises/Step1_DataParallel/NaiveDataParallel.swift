// Naive data parallelism: every rank holds the whole model and runs it on its own rows of the
// global batch; as soon as a gradient is final, the rank all-reduces it over the data-parallel
// group and divides by the group size, blocking, one parameter at a time. Simple and exact;
// slow because each small all-reduce pays the full latency and the backward pass waits for it.
// BucketedDataParallel.swift is the fast version.
//
// Legend: P = values in one parameter, dp = ranks in the data-parallel group.
//
// ### References
// picotron `data_parallel.py` (DataParallelNaive); PyTorch DDP, Li et al. 2020,
// https://arxiv.org/abs/2006.15704

import Distributed
import ExerciseKit
import TensorCore
import Training

/// Averages every trainable parameter's gradient over `group`, one blocking all-reduce per
/// parameter, from its gradient-ready hook (as picotron's naive DP does).
///
/// Pass the data-parallel group. Once context parallelism exists the training loop passes the
/// cp+dp group instead: ranks that hold different tokens of the same rows also each hold only
/// part of the gradient (picotron uses `cp_dp_group` here for that reason).
///
/// Frozen parameters (`requiresGrad == false`) get no hook: they are never reduced, and AdamW
/// skips them.
public final class NaiveDataParallel: GradientSynchronizer {
    public let group: Communicator
    /// The parameters this synchronizer reduces (the trainable ones), by name.
    public let parameters: [(String, Tensor)]
    /// Sync on every micro-batch instead of the last one only: same result, A× the traffic.
    /// Only for measuring what the no-sync rule saves.
    public let syncEveryMicroBatch: Bool

    /// Whether this backward pass reduces (set by `beforeBackward`, read by the hooks).
    private var syncThisBackward = true
    /// Hooks cannot throw; the first communication error waits here for `finishStep`.
    private var failure: (any Error)?

    public init(parameters: [(String, Tensor)], group: Communicator, syncEveryMicroBatch: Bool = false) {
        self.group = group
        self.parameters = parameters.filter { $0.1.requiresGrad }
        self.syncEveryMicroBatch = syncEveryMicroBatch
        for (_, p) in self.parameters {
            // The hook receives the *parameter*, not its gradient (like torch's
            // register_post_accumulate_grad_hook). Unowned: the model must not keep us alive.
            p.onGradReady { [unowned self] param in self.gradientReady(param) }
        }
    }

    /// Removes the hooks (call before handing the model to another synchronizer).
    public func detach() { for (_, p) in parameters { p.removeGradReadyHooks() } }

    public func beforeBackward(microBatch index: Int, of count: Int) {
        syncThisBackward = synchronizes(microBatch: index, of: count)
    }

    public func synchronizes(microBatch index: Int, of count: Int) -> Bool {
        syncEveryMicroBatch || shouldSynchronize(microBatch: index, of: count)
    }

    /// Everything was reduced inside backward; report a communication error if one happened.
    public func finishStep() throws {
        if let failure {
            self.failure = nil
            throw failure
        }
    }

    private func gradientReady(_ param: Tensor) {
        guard syncThisBackward, failure == nil else { return }
        do { try allReduceAndAverage(param) } catch { failure = error }
    }

    /// Replaces `param.grad` by its average over the group. Task 1.1.
    ///
    /// Reduce the *gradient*: all-reducing `param.data` averages weights that are already equal
    /// on every rank, changes nothing, and leaves each rank with its own gradient (picotron
    /// issue #39). A sum is not enough either: every rank computed the mean over its own rows,
    /// so the global mean is the sum divided by dp.
    func allReduceAndAverage(_ param: Tensor) throws {
        guard param.grad != nil else { return }
        // TODO(Step1.1): all-reduce param.grad over `group` (sum), then divide it by the group size.
        // Two lines. Until then the gradient stays this rank's own, and the test says so.
        Todo.reached("Step1.1", "NaiveDataParallel.allReduceAndAverage (all-reduce and average a gradient)",
                     lesson: "Lessons/01-data-parallel.md#task-11")
    }
}
