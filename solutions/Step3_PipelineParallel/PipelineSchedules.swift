// The order in which a stage runs the forwards and backwards of a step's M micro-batches.
// Both schedules share one forward step and one backward step; only the order differs.
// Legend: pp = stages, s = this stage, M = micro-batches per step, F m / B m = forward /
// backward of micro-batch m.
//
//   AFAB (GPipe): F0 F1 … F(M−1), then B0 B1 … B(M−1). Simple; every stage holds the activations
//       of all M micro-batches until its backwards start.
//   1F1B: warm-up of pp − s − 1 forwards, then one forward and one backward in turn, then the
//       remaining backwards: a stage holds at most pp − s micro-batches of activations.
//   Both idle (pp − 1) of every (M + pp − 1) time slots per stage: the bubble.
//
// After the last backward: the tied-embedding gradients are summed between the first and last
// stage, and data parallelism synchronises (its synchronizer was told which backward is the last).
// ### References
// Huang et al., GPipe, https://arxiv.org/abs/1811.06965 ·
// Narayanan et al., PipeDream-Flush (1F1B), https://arxiv.org/abs/1806.03377 ·
// picotron, pipeline_parallel/pipeline_parallel.py (train_step_pipeline_afab / _1f1b)

import Distributed
import Foundation
import TensorCore
import Training

/// Which schedule a stage runs.
public enum PipelineEngine: String, CaseIterable, Sendable {
    case afab, oneFOneB = "1f1b"
}

/// One stage's step: the stage, its links, the data parallelism that averages its gradients, and
/// a record of what it did when (for the lesson's pictures).
public final class PipelineStep {
    public let stage: PipelineStage
    public let link: PipelineLink
    public let synchronizer: GradientSynchronizer?
    public let trace = TimelineRecorder()
    /// Activations held at the moment: the forwards whose backward has not run yet.
    public private(set) var held = 0, peakHeld = 0
    var micro: [MicroBatch] = []
    var saved: [Int: StageActivation] = [:]
    var losses: [Float] = []

    public init(stage: PipelineStage, link: PipelineLink, synchronizer: GradientSynchronizer? = nil) {
        (self.stage, self.link, self.synchronizer) = (stage, link, synchronizer)
    }

    /// Forward of micro-batch m; the input comes from the link unless given (a combined call got it).
    func forwardStep(_ m: Int, received: [Float]? = nil) throws -> StageActivation {
        let input = stage.isFirst ? nil : try received ?? waiting("receive F\(m)") { try link.receiveForward() }
        let start = Timeline.now()
        let a = stage.forward(micro[m], received: input)
        trace.record(.init("F\(m)", start: start, end: Timeline.now(), kind: .compute))
        saved[m] = a
        held += 1
        peakHeld = max(peakHeld, held)
        if stage.isLast { losses.append(a.output.item * Float(stage.microBatches)) }
        return a
    }

    /// Backward of micro-batch m, from the gradient received (or given), releasing its activations.
    func backwardStep(_ m: Int, gradient: [Float]? = nil) throws -> [Float]? {
        let g = stage.isLast ? nil : try gradient ?? waiting("receive B\(m)") { try link.receiveBackward() }
        synchronizer?.beforeBackward(microBatch: m, of: micro.count)   // the last one synchronises
        let start = Timeline.now()
        let dx = stage.backward(saved.removeValue(forKey: m)!, gradient: g)
        trace.record(.init("B\(m)", start: start, end: Timeline.now(), kind: .compute))
        held -= 1
        return dx
    }

    /// Runs `body` (a blocking receive) and records the wait.
    func waiting<T>(_ label: String, _ body: () throws -> T) throws -> T {
        let start = Timeline.now()
        defer { trace.record(.init(label, start: start, end: Timeline.now(), kind: .waiting)) }
        return try body()
    }

    /// One optimizer step's forwards and backwards of `microBatches` with `engine`. Returns the
    /// mean loss of the micro-batches on the last stage (nil elsewhere). Gradients are then the
    /// single process's for the whole batch; the caller steps the optimizer.
    public func run(_ microBatches: [MicroBatch], engine: PipelineEngine) throws -> Float? {
        precondition(microBatches.count == stage.microBatches, "the stage divides losses by \(stage.microBatches)")
        (micro, saved, losses, held, peakHeld) = (microBatches, [:], [], 0, 0)
        trace.reset()
        switch engine {
        case .afab: try allForwardAllBackward()
        case .oneFOneB: try oneForwardOneBackward()
        }
        try synchronizer?.finishStep()     // dp: every copy averaged over its data-parallel group …
        try sumTiedEmbeddingGradients()    // … then the two copies of a tied embedding summed
        return stage.isLast ? losses.reduce(0, +) / Float(losses.count) : nil
    }

    /// AFAB: every forward, then every backward.
    func allForwardAllBackward() throws {
        for m in micro.indices {
            let a = try forwardStep(m)
            if !stage.isLast { try link.sendForward(a.output.data) }
        }
        for m in micro.indices {
            if let dx = try backwardStep(m) { try link.sendBackward(dx) }
        }
    }

    /// 1F1B: warm-up forwards, one forward and one backward in turn, then the last backwards.
    func oneForwardOneBackward() throws {
        let count = micro.count
        let warmup = min(stage.stages - stage.stage - 1, count), steady = count - warmup
        // Warm-up
        for m in 0 ..< warmup {
            let a = try forwardStep(m)
            if !stage.isLast { try link.sendForward(a.output.data) }
        }
        // Steady state: forward m, then backward of the oldest held micro-batch, m − warm-up.
        var next: [Float]?
        for k in 0 ..< steady {
            let m = warmup + k
            let a = try forwardStep(m, received: k == 0 || stage.isFirst ? nil : next)
            let g = stage.isLast ? nil : try link.sendForwardReceiveBackward(a.output.data)
            let dx = try backwardStep(k, gradient: g)
            if let dx {
                if k == steady - 1 { try link.sendBackward(dx) } else { next = try link.sendBackwardReceiveForward(dx) }
            }
        }
        // Cool-down
        for m in steady ..< count {
            if let dx = try backwardStep(m) { try link.sendBackward(dx) }
        }
    }

    /// Tied embeddings: the first stage's embedding and the last stage's head copy of it add
    /// their gradients, so both take the same optimizer step.
    func sumTiedEmbeddingGradients() throws {
        guard stage.model.config.tieWordEmbeddings, stage.stages > 1, stage.isFirst || stage.isLast,
              let w = stage.namedParameters.first(where: { $0.0 == "model.embed_tokens.weight" })?.1 else { return }
        let mine = w.grad ?? [Float](repeating: 0, count: w.count)
        let other = stage.isFirst ? link.stages - 1 : 0
        let sent = try link.group.isend(mine, to: other, tag: 3)
        let theirs = try link.group.irecv(count: w.count, from: other, tag: 3).wait()
        try sent.wait()
        // Add in a fixed order (first stage's + last stage's) so both copies are bit-identical.
        let (a, b) = stage.isFirst ? (mine, theirs) : (theirs, mine)
        w.grad = zip(a, b).map { $0 + $1 }
    }
}
