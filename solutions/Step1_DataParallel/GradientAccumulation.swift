// Step 1 of the lessons: data parallelism. Lessons/01-data-parallel.md tells the story; this
// file holds the one rule every strategy shares: with gradient accumulation, synchronise only
// after the last micro-batch of a step.
//
// Legend: A = micro-batches per optimizer step (gradient-accumulation steps), i = 0 ..< A,
//         dp = ranks in the data-parallel group, g_{r,i} = gradient of micro-batch i on rank r.
//
// Why skipping is exact: averaging is linear. The step's gradient on rank r is Σ_i g_{r,i}
// (each micro-batch loss scaled by 1/A), and
//     (1/dp) Σ_r Σ_i g_{r,i}  =  Σ_i (1/dp) Σ_r g_{r,i},
// so one all-reduce of the accumulated sum gives the same average as A all-reduces of the
// parts, for 1/A of the traffic. (picotron sets `require_backward_grad_sync` on the last
// micro-batch only; torch DDP calls it `no_sync()`.)


/// Whether the backward pass of micro-batch `index` (0-based) of `count` should reduce
/// gradients across the data-parallel group. Task 1.2.
///
/// Synchronising on *every* micro-batch is also correct (the average of a sum is the sum of
/// the averages) but costs A times the traffic; never synchronising leaves each rank with
/// its own gradients, so the replicas drift apart.
public func shouldSynchronize(microBatch index: Int, of count: Int) -> Bool {
    precondition(count >= 1 && (0..<count).contains(index), "micro-batch \(index) is not in 0..<\(count)")
    guard count > 1 else { return true }   // one micro-batch: it is the last
    // TASK(Step1.2) shouldSynchronize (the no-sync rule of gradient accumulation) @ Lessons/01-data-parallel.md#task-12
    // > return whether micro-batch `index` of `count` must synchronise. One line.
    // > Until then every micro-batch synchronises: correct, but A times the traffic.
    return index == count - 1
    // STAND-IN: return true
    // END TASK(Step1.2)
}
