// What tensor parallelism sends, measured by the CommLedger beside the textbook formula.
// Legend: N = B·T tokens, C = hidden, L = layers, V = vocabulary, tp = ranks; payloads in
// float32 (4 bytes). Ring all-reduce puts 2(tp−1)/tp of its payload on the wire per rank.
//
//   forward   embedding             1 all-reduce   N·C       (g after the masked lookup)
//             each decoder layer    2 all-reduces  2·N·C     (g after attention, g after the MLP)
//             so the model          2L+1           (2L+1)·N·C
//             vocab-parallel loss   3 all-reduces  3·N       (row max, Σ exp, target logit)
//   backward  each decoder layer    2 all-reduces  2·N·C     (f before q/k/v, f before gate/up)
//             LM head               1 all-reduce   N·C       (f before the head)
//             embedding, loss       nothing        (g's backward is the identity; the loss is local)
//   gathered logits instead (picotron): the loss's 3 all-reduces become 1 all-gather of N·V/tp
//   per rank, and every rank holds the full [N, V] logits (and their gradient).
//   sequence parallel: each all-reduce of N·C becomes a reduce-scatter (input N·C) and an all-gather
//   (input N·C/tp), forward and backward alike, the same ring bytes; the backward adds one all-reduce
//   of C per norm (2L+1) for the norm weights' gradients.
// ### References
// Shoeybi et al., Megatron-LM, §3, https://arxiv.org/abs/1909.08053

import Distributed
import LessonKit
import Llama
import Step2_TensorParallel
import TensorCore

/// One line of the traffic table: measured calls and payload beside the formula's.
public struct TrafficLine: Sendable {
    public let phase: String, op: CommOp
    public let calls: Int, bytes: Int
    public let formulaCalls: Int, formulaBytes: Int, formula: String
    public var matches: Bool { calls == formulaCalls && bytes == formulaBytes }
}

public enum TensorParallelTraffic {
    /// Runs one real forward, loss and backward of `problem` on a model made tensor-parallel over
    /// `comm`, reading the ledger between the three, and returns each beside its formula.
    public static func measure(_ problem: LessonProblem, comm: Communicator, gatherLogits: Bool = false,
                               sequenceParallel sp: Bool = false) throws -> [TrafficLine] {
        let model = problem.makeModel()
        let group = try applyTensorParallel(to: model, group: comm, gatherLogits: gatherLogits, sequenceParallel: sp)
        let (b, t, c) = (problem.batch, problem.length, problem.config.hiddenSize)
        let (n, v, tp, layers) = (b * t, problem.config.vocabSize, comm.size, model.layers.count)
        var lines = [TrafficLine]()
        var mark = comm.stats
        func take(_ phase: String, _ expected: [(op: CommOp, calls: Int, floats: Int, formula: String)]) {
            let d = comm.stats.since(mark)
            for e in expected {
                let got = d[comm.name, e.op]
                lines.append(TrafficLine(phase: phase, op: e.op, calls: got.calls, bytes: got.bytes,
                                         formulaCalls: e.calls, formulaBytes: 4 * e.floats, formula: e.formula))
            }
            mark = comm.stats
        }
        let logits = model.logits(problem.inputs, batch: b, length: t)            // [B, T, V/tp] or [B, T, V]
        // Embedding: 1 all-reduce (g after the masked lookup); each layer: 2 (g after attention and after the MLP).
        let k = 2 * layers + 1
        let split: [(op: CommOp, calls: Int, floats: Int, formula: String)] =   // sequence parallel: the all-reduces split
            [(.reduceScatter, k, k * n * c, "(2L+1)·N·C"), (.allGather, k, k * n * c / tp, "(2L+1)·N·C/tp")]
        var forward = sp ? split : [(CommOp.allReduce, k, k * n * c, "(2L+1)·N·C")]
        if gatherLogits { forward.append((.allGather, 1, n * v / tp, "N·V/tp")) }
        take("forward  model", forward)
        let loss = model.lossFunction(logits, problem.targets)
        take("forward  loss", [(.allReduce, gatherLogits ? 0 : 3, gatherLogits ? 0 : 3 * n, gatherLogits ? "0" : "3·N")])
        loss.backward()
        take("backward all", sp ? split + [(.allReduce, k, k * c, "(2L+1)·C")] : [(.allReduce, k, k * n * c, "(2L+1)·N·C")])
        try group.check()
        return lines
    }

    /// What one rank puts on the wire for `bytes` of payload under the ring algorithms of a group of tp.
    public static func ringBytes(_ op: CommOp, _ bytes: Int, tp: Int) -> Int {
        switch op {
        case .allReduce: return 2 * (tp - 1) * bytes / tp
        case .reduceScatter: return (tp - 1) * bytes / tp
        default: return (tp - 1) * bytes          // all-gather: its input is a tp-th of the result
        }
    }

    /// float32 values of the logits each rank holds for the loss: N·V/tp, or N·V when gathered.
    public static func logitFloats(tokens n: Int, vocab v: Int, tp: Int, gathered: Bool) -> Int {
        gathered ? n * v : n * v / tp
    }

    /// Payload bytes the loss itself sends per rank: 3·N·4 (vocab-parallel) or N·V/tp·4 (gathered).
    public static func lossPayload(tokens n: Int, vocab v: Int, tp: Int, gathered: Bool) -> Int {
        gathered ? 4 * n * v / tp : 4 * 3 * n
    }
}
