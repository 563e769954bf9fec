// Interleaved 1F1B (Megatron's virtual stages): each of the pp stages holds v chunks of layers,
// assigned round-robin (chunk k of stage s is virtual stage k · pp + s), so a micro-batch goes
// around the ring of stages v times. Work arrives in smaller pieces, and the bubble shrinks by v:
// (pp − 1) / (v · M + pp − 1) of the step instead of (pp − 1) / (M + pp − 1).
// Legend: pp = stages, s = this stage, v = chunks per stage, M = micro-batches (a multiple of pp),
// F(m, k) / B(m, k) = forward / backward of micro-batch m on this stage's chunk k.
//
// Order on stage s, over its M · v forwards and M · v backwards (Megatron's):
//   forward i:  micro-batches go in groups of pp; chunk k = (i mod pp·v) div pp,
//               micro-batch m = (i div pp·v) · pp + i mod pp
//   backward i: the same micro-batch, chunk v − 1 − k (backwards walk the chunks down)
//   warm-up:    2 (pp − s − 1) + (v − 1) pp forwards, then one forward and one backward in turn.
// Every message is posted without waiting and tagged with its micro-batch and chunk; a stage
// waits only for the input it needs next.
// ### References
// Narayanan et al., Efficient large-scale language model training on GPU clusters using
// Megatron-LM, §2.2, https://arxiv.org/abs/2104.04473

import Distributed

/// Megatron's order on stage `s` of `pp`, with `v` chunks and M micro-batches: the (micro-batch,
/// chunk) of its i-th forward and of its i-th backward, and how many forwards it runs first.
func interleavedOrder(stages pp: Int, stage s: Int, chunks v: Int, microBatches M: Int)
    -> (forwards: [(m: Int, k: Int)], backwards: [(m: Int, k: Int)], warmup: Int) {
    var forwards: [(m: Int, k: Int)] = [], backwards: [(m: Int, k: Int)] = []
    // TASK(Step3.8) interleaved order and warm-up @ Lessons/03-pipeline-parallel.md#task-38
    // > For i in 0 ..< M · v: the i-th forward runs chunk k = (i mod pp·v) div pp on micro-batch
    // > m = (i div pp·v) · pp + i mod pp (micro-batches in groups of pp, each group through chunk 0,
    // > then chunk 1, …). The i-th backward is the same micro-batch on chunk v − 1 − k: gradients
    // > walk the chunks down. Warm-up: min(2 (pp − s − 1) + (v − 1) pp, M · v) forwards.
    for i in 0 ..< M * v {
        let k = (i % (pp * v)) / pp                                               // groups of pp per chunk
        let m = (i / (pp * v)) * pp + i % pp
        forwards.append((m, k))
        backwards.append((m, v - 1 - k))                                          // chunks walked down
    }
    let warmup = min(2 * (pp - s - 1) + (v - 1) * pp, M * v)
    return (forwards, backwards, warmup)
    // STAND-IN: return (forwards, backwards, 0)
    // END TASK(Step3.8)
}

extension PipelineStep {
    func interleavedOneForwardOneBackward() throws {
        let pp = link.stages, s = link.stage, v = chunks.count
        let order = interleavedOrder(stages: pp, stage: s, chunks: v, microBatches: micro.count)
        let total = min(order.forwards.count, order.backwards.count)
        let warmup = max(0, min(order.warmup, total))
        var posted: [CommRequest<Void>] = []
        func forward(_ i: Int) throws {
            let (m, k) = order.forwards[i]
            guard chunks.indices.contains(k) else {
                throw PipelineScheduleError("stage \(s): forward \(i) runs chunk \(k), of \(v)")
            }
            let c = k * pp + s, stage = chunks[k]                                   // the virtual stage
            let input = stage.isFirst ? nil : try waiting("wait F\(m).\(k)") {
                try link.receiveForward(microBatch: m, chunk: c, of: pp * v)
            }
            let a = try forwardStep(m, chunk: k, received: input ?? [])
            if !stage.isLast { posted.append(try link.postForward(a.output.data, microBatch: m, chunk: c + 1, of: pp * v)) }
        }
        func backward(_ i: Int) throws {
            let (m, k) = order.backwards[i]
            guard chunks.indices.contains(k) else {
                throw PipelineScheduleError("stage \(s): backward \(i) runs chunk \(k), of \(v)")
            }
            let c = k * pp + s, stage = chunks[k]
            let g = stage.isLast ? nil : try waiting("wait B\(m).\(k)") {
                try link.receiveBackward(microBatch: m, chunk: c, of: pp * v)
            }
            if let dx = try backwardStep(m, chunk: k, gradient: g ?? []) {
                posted.append(try link.postBackward(dx, microBatch: m, chunk: c - 1, of: pp * v))
            }
        }
        // Warm-up
        for i in 0 ..< warmup { try forward(i) }
        // Steady state
        for i in 0 ..< (total - warmup) {
            try forward(warmup + i)
            try backward(i)
        }
        // Cool-down
        for i in (total - warmup) ..< total { try backward(i) }
        for request in posted { try request.wait() }   // every message taken before the step ends
    }
}
