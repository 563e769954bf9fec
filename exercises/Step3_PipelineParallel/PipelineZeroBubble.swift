// 1F1B with the weight gradients put off into the bubble (the idea of zero-bubble pipelines,
// ZB-H1). A backward is two kinds of work: B, the gradient of the stage's input, which the
// previous stage waits for, and W, the gradients of the weights, which nobody needs before the
// optimizer step. 1F1B does both at once; here each backward does B, sends it, and queues W
// (TensorCore's DeferredGradients). The queued W runs where the stage would otherwise wait:
// just before it blocks on a gradient from the next stage, and at the end of the step.
// Legend: pp = stages, s = this stage, M = micro-batches, F m / B m / W m = forward, input
// gradient, weight gradients of micro-batch m.
//
//   pp = 2, M = 2, with F = 1, B = 1, W = 1 time units (1F1B: 9 units, here 7):
//     stage 0   F0 F1 ·· B0 W0 B1 W1
//     stage 1      F0 B0 F1 B1 W0 W1
//
// The same order as 1F1B, so the same activations held, plus the queued W's inputs: at most
// pp − s + 1 micro-batches' worth before a forward runs them. The gradients are the same sums;
// data parallelism's hooks fire when a weight's last queued product has run. Only products on
// Tensor.matmul are put off: tensor-parallel layers compute theirs in their own backward.
// ### References
// Qi et al., Zero Bubble Pipeline Parallelism, https://arxiv.org/abs/2401.10241

import Distributed
import TensorCore
import Training

extension PipelineStep {
    func oneForwardOneBackwardDeferringWeights() throws {
        let count = micro.count, queue = DeferredGradients()
        let warmup = min(stage.stages - stage.stage - 1, count)
        let steady = count - warmup
        var queuedMicroBatches = 0
        func runWeights(_ why: String) {
            guard !queue.isEmpty else { return }
            let start = Timeline.now()
            queue.runAll()
            trace.record(.init("W \(why)", start: start, end: Timeline.now(), kind: .compute))
            queuedMicroBatches = 0
        }
        /// Backward of m: B now, W queued; returns B for the previous stage. A backward that data
        /// parallelism synchronises runs its W at once: its all-reduce needs whole gradients before
        /// the next backward begins (by default only the last one synchronises).
        func backward(_ m: Int, gradient g: [Float]?) throws -> [Float]? {
            let dx = try backwardStep(m, gradient: g, deferring: queue)
            queuedMicroBatches += 1
            if synchronizer?.synchronizes(microBatch: m, of: count) == true { runWeights("to synchronise") }
            return dx
        }
        /// The next stage's gradient, after the queued W: the wait it would have been.
        func gradient() throws -> [Float]? {
            guard !stage.isLast else { return nil }
            runWeights("before a gradient")
            return try waiting("wait B") { try link.receiveBackward() }
        }
        for m in 0 ..< warmup {
            let a = try forwardStep(m)
            if !stage.isLast { try link.sendForward(a.output.data) }
        }
        var next: [Float]?
        for k in 0 ..< steady {
            let m = warmup + k
            if queuedMicroBatches > stage.stages - stage.stage { runWeights("to bound memory") }
            let a = try forwardStep(m, received: k == 0 || stage.isFirst ? nil : next)
            let sent = stage.isLast ? nil : try link.group.isend(a.output.data, to: link.stage + 1, tag: PipelineLink.forwardTag)
            let g = try gradient()
            try sent?.wait()
            if let dx = try backward(k, gradient: g) {
                if k == steady - 1 { try link.sendBackward(dx) } else { next = try link.sendBackwardReceiveForward(dx) }
            }
        }
        for m in steady ..< count {
            if let dx = try backward(m, gradient: try gradient()) { try link.sendBackward(dx) }
        }
        runWeights("at the end")
    }
}
