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
//   Interleaved 1F1B (PipelineInterleaved.swift): v chunks of layers per stage, the bubble / v.
//   zb (PipelineZeroBubble.swift): 1F1B whose weight gradients wait for the bubble.
//
// After the last backward: data parallelism synchronises (its synchronizer was told which backward
// is the last), then the tied-embedding gradients are summed between the first and last stage.
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
    /// zb: 1F1B with the weight gradients put off into the bubble (PipelineZeroBubble.swift).
    case afab, oneFOneB = "1f1b", interleaved, zeroBubble = "zb"
}

/// One rank's step: its stage (or, interleaved, its chunks: virtual stages), its links, the data
/// parallelism that averages its gradients, and a record of what it did when (for the pictures).
public final class PipelineStep {
    /// The model chunks this rank runs, in order: one for AFAB and 1F1B, v when interleaved
    /// (chunk k of stage s is virtual stage k · pp + s).
    public let chunks: [PipelineStage]
    public let link: PipelineLink
    public let synchronizer: GradientSynchronizer?
    public let trace = TimelineRecorder()
    /// Activations held at the moment: the forwards whose backward has not run yet.
    public private(set) var held = 0, peakHeld = 0
    /// When true, every forward measures the bytes the held activations' graphs keep alive.
    public var measureMemory = false
    /// The most bytes of activations held at once in the last step (with `measureMemory`).
    public private(set) var peakActivationBytes = 0
    var micro: [MicroBatch] = []
    var saved: [Int: StageActivation] = [:]       // by micro-batch · chunks + chunk
    var losses: [Float] = []

    public init(chunks: [PipelineStage], link: PipelineLink, synchronizer: GradientSynchronizer? = nil) {
        precondition(!chunks.isEmpty, "a stage runs at least one chunk")
        (self.chunks, self.link, self.synchronizer) = (chunks, link, synchronizer)
    }

    public convenience init(stage: PipelineStage, link: PipelineLink, synchronizer: GradientSynchronizer? = nil) {
        self.init(chunks: [stage], link: link, synchronizer: synchronizer)
    }

    /// The stage of a non-interleaved pipeline.
    public var stage: PipelineStage { chunks[0] }

    /// Every parameter this rank holds and steps, once each (a tied embedding's two copies are
    /// one parameter on a single stage).
    public var namedParameters: [(String, Tensor)] {
        var seen = Set<String>()
        return chunks.flatMap(\.namedParameters).filter { seen.insert($0.0).inserted }
    }

    /// Forward of micro-batch m on chunk k; its input is `received` or, when nil, taken from the link.
    func forwardStep(_ m: Int, chunk k: Int = 0, received: [Float]? = nil) throws -> StageActivation {
        guard micro.indices.contains(m), chunks.indices.contains(k), saved[m * chunks.count + k] == nil else {
            throw PipelineScheduleError("stage \(link.stage): forward \(label("F", m, k)) again, or of a micro-batch "
                                        + "or chunk that does not exist (M = \(micro.count), chunks = \(chunks.count))")
        }
        let stage = chunks[k]
        let input = stage.isFirst ? nil : try received ?? waiting("wait F\(m)") { try link.receiveForward() }
        let start = Timeline.now()
        let a = stage.forward(micro[m], received: input)
        trace.record(.init(label("F", m, k), start: start, end: Timeline.now(), kind: .compute))
        saved[m * chunks.count + k] = a
        held += 1
        peakHeld = max(peakHeld, held)
        if measureMemory { peakActivationBytes = max(peakActivationBytes, Tensor.graphBytes(saved.values.map(\.output))) }
        if stage.isLast { losses.append(a.output.item * Float(stage.microBatches)) }
        return a
    }

    /// Backward of micro-batch m on chunk k, from `gradient` or, when nil, the link; releases its
    /// activations and returns ∂L/∂input for the previous stage. With `deferring`, the weights'
    /// gradient products are queued there instead of computed (the zero-bubble schedule).
    func backwardStep(_ m: Int, chunk k: Int = 0, gradient: [Float]? = nil,
                      deferring queue: DeferredGradients? = nil) throws -> [Float]? {
        guard chunks.indices.contains(k), let a = saved.removeValue(forKey: m * chunks.count + k) else {
            throw PipelineScheduleError("stage \(link.stage): backward \(label("B", m, k)) before its forward, "
                                        + "or twice")
        }
        let stage = chunks[k]
        let g = stage.isLast ? nil : try gradient ?? waiting("wait B\(m)") { try link.receiveBackward() }
        // A parameter's last backward of the step is micro-batch M − 1 of its chunk: that one synchronises.
        synchronizer?.beforeBackward(microBatch: m, of: micro.count)
        let start = Timeline.now()
        let dx = Autograd.deferring(into: queue) { stage.backward(a, gradient: g) }
        trace.record(.init(label("B", m, k), start: start, end: Timeline.now(), kind: .compute))
        held -= 1
        return dx
    }

    func label(_ what: String, _ m: Int, _ k: Int) -> String { chunks.count == 1 ? "\(what)\(m)" : "\(what)\(m).\(k)" }

    /// Runs `body` (a blocking receive) and records the wait.
    func waiting<T>(_ label: String, _ body: () throws -> T) throws -> T {
        let start = Timeline.now()
        defer { trace.record(.init(label, start: start, end: Timeline.now(), kind: .waiting)) }
        return try body()
    }

    /// One optimizer step's forwards and backwards of `microBatches` with `engine`. Returns the
    /// mean loss of the micro-batches on the rank that computes the loss (nil elsewhere). The
    /// gradients are then the single process's for the whole batch; the caller steps the optimizer.
    public func run(_ microBatches: [MicroBatch], engine: PipelineEngine) throws -> Float? {
        precondition(microBatches.count == stage.microBatches, "the stages divide losses by \(stage.microBatches)")
        precondition(engine == .interleaved || chunks.count == 1, "AFAB, 1F1B and zb run one chunk per stage")
        (micro, saved, losses, held, peakHeld, peakActivationBytes) = (microBatches, [:], [], 0, 0, 0)
        trace.reset()
        switch engine {
        case .afab: try allForwardAllBackward()
        case .oneFOneB: try oneForwardOneBackward()
        case .interleaved: try interleavedOneForwardOneBackward()
        case .zeroBubble: try oneForwardOneBackwardDeferringWeights()
        }
        try afterLastBackward()
        return losses.isEmpty ? nil : losses.reduce(0, +) / Float(losses.count)
    }

    /// AFAB: every forward, then every backward.
    func allForwardAllBackward() throws {
        // TASK(Step3.5) AFAB: all forwards, then all backwards @ Lessons/03-pipeline-parallel.md#task-35
        // > For every micro-batch m in order: `forwardStep(m)` (it receives the input from the previous
        // > stage), then send its output on (`link.sendForward(a.output.data)`), except from the last
        // > stage. Then for every m in the same order: `backwardStep(m)` (it receives ∂L/∂output) and
        // > send the gradient it returns back (`link.sendBackward`); the first stage gets nil.
        // > Micro-batch M − 1's backward must be the last: data parallelism all-reduces during it.
        for m in micro.indices {
            let a = try forwardStep(m)
            if !stage.isLast { try link.sendForward(a.output.data) }              // [B, T, C] to stage s + 1
        }
        for m in micro.indices {
            if let dx = try backwardStep(m) { try link.sendBackward(dx) }         // [B, T, C] to stage s − 1
        }
        // END TASK(Step3.5)
    }

    /// 1F1B: warm-up forwards, one forward and one backward in turn, then the last backwards.
    func oneForwardOneBackward() throws {
        // TASK(Step3.6) 1F1B: warm-up, steady state, cool-down @ Lessons/03-pipeline-parallel.md#task-36
        // > Warm-up: stage s runs min(pp − s − 1, M) forwards, sending each on as in AFAB.
        // > Steady state, for each remaining micro-batch: forward the next one, send its output and
        // > receive the oldest held one's gradient in one call (`link.sendForwardReceiveBackward`), run
        // > that backward, then send its gradient back and receive the next input in one call
        // > (`link.sendBackwardReceiveForward`; after the last steady backward only `sendBackward`,
        // > no input is coming). Cool-down: the remaining backwards, in order.
        // > The first stage receives nothing and the last sends nothing forward (`stage.isFirst`, `isLast`).
        let count = micro.count
        let warmup = min(stage.stages - stage.stage - 1, count)
        let steady = count - warmup
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
        // END TASK(Step3.6)
    }

    /// After the step's last backward: data parallelism averages each parameter's gradient over its
    /// replicas, then the two copies of a tied embedding (first and last stage) add theirs.
    func afterLastBackward() throws {
        // TASK(Step3.7) the tied-embedding gradient sum, after dp @ Lessons/03-pipeline-parallel.md#task-37
        // > In this order: 1. data parallelism's `synchronizer?.finishStep()` (it writes each gradient's
        // >    average when its all-reduce lands: a sum made before it would be overwritten);
        // > 2. `sumTiedEmbeddingGradients()`, a nested function: with tied embeddings and more than one
        // >    stage, the first and the last stage each hold a copy of "model.embed_tokens.weight" (in
        // >    `namedParameters`). Each sends its gradient to the other, the first stage sending first
        // >    and the last receiving first (if both sent first, both would wait), and sets its gradient
        // >    to the sum (a + b = b + a exactly, so the copies stay bit-identical). Other stages do nothing.
        // >    The embedding is the largest tensor: receive into one new array and add in place.
        func sumTiedEmbeddingGradients() throws {
            let first = chunks.contains { $0.isFirst }, last = chunks.contains { $0.isLast }
            guard stage.model.config.tieWordEmbeddings, link.stages > 1, first || last,
                  let w = namedParameters.first(where: { $0.0 == "model.embed_tokens.weight" })?.1 else { return }
            let mine = w.grad ?? [Float](repeating: 0, count: w.count)             // [V, C]
            let other = first ? link.stages - 1 : 0
            var theirs = [Float](repeating: 0, count: w.count)                     // [V, C]
            if first {
                try link.group.send(mine, to: other, tag: 3)
                try link.group.recv(into: &theirs, from: other, tag: 3)
            } else {
                try link.group.recv(into: &theirs, from: other, tag: 3)
                try link.group.send(mine, to: other, tag: 3)
            }
            for i in theirs.indices { theirs[i] += mine[i] }                        // first + last = last + first
            w.grad = theirs
        }
        try synchronizer?.finishStep()     // dp: every copy averaged over its data-parallel group …
        try sumTiedEmbeddingGradients()    // … then the two copies of a tied embedding summed
        // STAND-IN: try synchronizer?.finishStep()
        // END TASK(Step3.7)
    }
}

/// A schedule that asks for a forward or backward it cannot run (a bug in the order).
struct PipelineScheduleError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
