// The seam between the training loop and data parallelism. The loop knows nothing about
// communication; a strategy from the data-parallel lesson plugs in here.

/// Makes every rank's gradients equal to the average over its data-parallel group.
///
/// The loop calls `beforeBackward` before each micro-batch's backward pass and `finishStep`
/// after the last one. A strategy may reduce then (naive: all at once in `finishStep`) or
/// during the backward pass (bucketed: from gradient-ready hooks), and may skip every
/// micro-batch but the last (gradient accumulation without synchronisation).
public protocol GradientSynchronizer: AnyObject {
    /// Called before the backward pass of micro-batch `index` (0-based) of `count` in this step.
    func beforeBackward(microBatch index: Int, of count: Int)
    /// Called after the last micro-batch's backward pass. On return every parameter's gradient
    /// is the average over the data-parallel group.
    func finishStep() throws
    /// Whether the backward of micro-batch `index` of `count` synchronises (by default only the
    /// last): a schedule that puts weight gradients off must complete those before the next one.
    func synchronizes(microBatch index: Int, of count: Int) -> Bool
}

extension GradientSynchronizer {
    public func synchronizes(microBatch index: Int, of count: Int) -> Bool { index == count - 1 }
}
