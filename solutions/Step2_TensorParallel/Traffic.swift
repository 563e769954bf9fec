// What tensor parallelism sends, measured by the CommLedger beside the textbook formula.
// Legend: N = B·T tokens, C = hidden, L = layers, V = vocabulary, tp = ranks; payloads in
// float32 (4 bytes). Ring all-reduce puts 2(tp−1)/tp of its payload on the wire per rank.
//
//   forward   embedding             1 all-reduce   N·C       (g after the masked lookup)
//             each decoder layer    2 all-reduces  2·N·C     (g after attention, g after the MLP)
//             vocab-parallel loss   3 all-reduces  3·N       (row max, Σ exp, target logit)
//   backward  each decoder layer    2 all-reduces  2·N·C     (f before q/k/v, f before gate/up)
//             LM head               1 all-reduce   N·C       (f before the head)
//             embedding, loss       nothing        (g's backward is the identity; the loss is local)
//   gathered logits instead (picotron): the loss's 3 all-reduces become 1 all-gather of N·V/tp
//   per rank, and every rank holds the full [N, V] logits (and their gradient).
// ### References
// Shoeybi et al., Megatron-LM, §3, https://arxiv.org/abs/1909.08053

import Distributed
import LessonKit
import Llama
import TensorCore

/// One line of the traffic table: measured calls and payload beside the formula's.
public struct TrafficLine: Sendable {
    public let phase: String, op: CommOp
    public let calls: Int, bytes: Int
    public let formulaCalls: Int, formulaBytes: Int, formula: String
    public var matches: Bool { calls == formulaCalls && bytes == formulaBytes }
}

public enum TensorParallelTraffic {
    /// Runs one forward and backward of `problem` on a model made tensor-parallel over `comm`,
    /// taking ledger snapshots between the pieces, and returns each piece beside its formula.
    public static func measure(_ problem: LessonProblem, comm: Communicator, gatherLogits: Bool = false)
        throws -> [TrafficLine] {
        let model = problem.makeModel()
        let group = try applyTensorParallel(to: model, group: comm, gatherLogits: gatherLogits)
        let (b, t, c) = (problem.batch, problem.length, problem.config.hiddenSize)
        let (n, v, tp, layers) = (b * t, problem.config.vocabSize, comm.size, model.layers.count)
        let pos = Array(0..<t)
        let rope = model.rope(positions: pos), mask = AttentionMask.causal(length: t)
        var lines = [TrafficLine]()
        var mark = comm.stats
        func take(_ phase: String, _ op: CommOp, calls: Int, floats: Int, _ formula: String) {
            let d = comm.stats.since(mark)[comm.name, op]
            lines.append(TrafficLine(phase: phase, op: op, calls: d.calls, bytes: d.bytes,
                                     formulaCalls: calls, formulaBytes: 4 * floats, formula: formula))
            mark = comm.stats
        }
        var h = model.embed(problem.inputs, batch: b, length: t)                  // [B, T, C]
        take("forward  embedding", .allReduce, calls: 1, floats: n * c, "N·C")
        for i in 0..<layers {
            h = model.runLayers(h, i..<(i + 1), rope: rope, mask: mask)           // [B, T, C]
            take("forward  layer \(i)", .allReduce, calls: 2, floats: 2 * n * c, "2·N·C")
        }
        let logits = model.head(h)                                                // [B, T, V/tp] or [B, T, V]
        if gatherLogits {
            take("forward  head", .allGather, calls: 1, floats: n * v / tp, "N·V/tp")
        } else {
            take("forward  head", .allReduce, calls: 0, floats: 0, "0")
        }
        let loss = model.lossFunction(logits, problem.targets)
        take("forward  loss", .allReduce, calls: gatherLogits ? 0 : 3, floats: gatherLogits ? 0 : 3 * n,
             gatherLogits ? "0" : "3·N")
        loss.backward()
        take("backward all", .allReduce, calls: 2 * layers + 1, floats: (2 * layers + 1) * n * c, "(2L+1)·N·C")
        try group.check()
        return lines
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
