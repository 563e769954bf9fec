// Sequence parallelism in the lesson (Tasks 2.9–2.11): what changes in each weight's communication,
// the traffic beside the formula (the same ring bytes as tensor parallelism alone), and the
// activation memory per rank — the bytes the autograd graph holds after the forward — beside the formula.
// Legend: N = B·T tokens, C = hidden, L = layers, tp = ranks.
//
//   saved per rank = (6L + 2)·N·C·(1 − 1/tp)·4 B − (2L + 1)·C·4 B
//     each layer's six [N, C] tensors between the blocks become [N/tp, C]: both norms' outputs, the
//     sums after o_proj and down_proj (g's outputs, now the reduce-scatters') and the two residual sums;
//     so do the embedding's output and the final norm's (the + 2); each norm weight's f adds C floats.
//     What stays [N, C]: the all-gathers' outputs (the column layers' input, as f's output was) and
//     the row layers' partial products before their reduce-scatter. Megatron keeps only the shard of
//     the gathered input and gathers it again in the backward; here the gathered input stays.
// ### References
// Korthikanti et al., Reducing Activation Recomputation in Large Transformer Models, §4.2.2,
// https://arxiv.org/abs/2205.05198

import Distributed
import LessonKit
import Llama
import Step2_TensorParallel
import TensorCore

public enum SequenceParallelMemory {
    /// Graph bytes after one forward and loss, without and with sequence parallelism, and the formula's saving.
    public struct Measured: Sendable {
        public let tensorParallel: Int, sequenceParallel: Int, formulaSaving: Int
    }

    /// Bytes of the autograd graph (`Tensor.graphBytes`) of one forward and loss of `problem` on a model
    /// made tensor-parallel over `comm`, without and with sequence parallelism (every rank calls it).
    public static func measure(_ problem: LessonProblem, comm: Communicator) throws -> Measured {
        func graph(_ sp: Bool) throws -> Int {
            let model = problem.makeModel()
            let group = try applyTensorParallel(to: model, group: comm, sequenceParallel: sp)
            let loss = model.lossFunction(model.logits(problem.inputs, batch: problem.batch, length: problem.length),
                                          problem.targets)
            let bytes = Tensor.graphBytes([loss])
            try group.check()
            return bytes
        }
        let (tp, l) = (comm.size, problem.config.numHiddenLayers)
        let (n, c) = (problem.batch * problem.length, problem.config.hiddenSize)
        return Measured(tensorParallel: try graph(false), sequenceParallel: try graph(true),
                        formulaSaving: saving(layers: l, tokens: n, hidden: c, tp: tp))
    }

    /// (6L + 2)·N·C·(1 − 1/tp)·4 B − (2L + 1)·C·4 B: see the top of the file.
    public static func saving(layers l: Int, tokens n: Int, hidden c: Int, tp: Int) -> Int {
        4 * (6 * l + 2) * (n * c - n * c / tp) - 4 * (2 * l + 1) * c
    }
}

extension TensorParallelLesson {
    /// The sequence-parallel part of the output: the communication each weight brings, the traffic
    /// beside the formula and beside tensor parallelism alone, the graph's bytes beside the formula.
    static func sequenceParallel(_ problem: LessonProblem, comm: Communicator, out: (String) -> Void) throws {
        let tp = comm.size
        var styles = Table(["weights", "tensor parallel", "sequence parallel"], align: [.left, .left, .left])
        for (label, style) in [("q/k/v, gate/up, lm_head", TensorParallelStyle.column), ("o_proj, down_proj", .row),
                               ("embed_tokens", .vocab), ("norms", .replicated)] {
            styles.add([label, TensorParallelPlan.communication(of: style, sequenceParallel: false),
                        TensorParallelPlan.communication(of: style, sequenceParallel: true)])
        }
        let plain = try TensorParallelTraffic.measure(problem, comm: comm)
        let lines = try TensorParallelTraffic.measure(problem, comm: comm, sequenceParallel: true)
        func ring(_ ls: [TrafficLine], norms: Bool) -> Int {   // the N·C collectives, or the norms' C each
            ls.filter { !$0.phase.hasSuffix("loss") && ($0.formula == "(2L+1)·C") == norms }
                .reduce(0) { $0 + TensorParallelTraffic.ringBytes($1.op, $1.bytes, tp: tp) }
        }
        let memory = try SequenceParallelMemory.measure(problem, comm: comm)
        let saved = memory.tensorParallel - memory.sequenceParallel
        var m = Table(["autograd graph after the forward, per rank", "bytes", "formula", ""],
                      align: [.left, .right, .left, .left])
        m.add(["tensor parallel", CommStats.format(bytes: memory.tensorParallel), "", ""])
        m.add(["sequence parallel", CommStats.format(bytes: memory.sequenceParallel), "", ""])
        m.add(["saved", CommStats.format(bytes: saved), "(6L+2)·N·C·(1−1/tp)·4 B − (2L+1)·C·4 B = "
               + CommStats.format(bytes: memory.formulaSaving), saved == memory.formulaSaving ? "=" : "≠"])
        let big = 6 * 8192 * 4096 * 4 * 7 / 8
        out("""

            Sequence parallelism (Tasks 2.9–2.11): between the blocks each rank holds T/tp = \(problem.length / tp) \
            tokens of every sequence
            \(styles.render(indent: 2))

            Traffic of one forward + backward per rank, sequence parallel (CommLedger) beside the formula
            \(trafficTable(lines, tp: tp).render(indent: 2))
              ring bytes/rank of the N·C collectives: tensor parallel \(CommStats.format(bytes: ring(plain, norms: false))), \
            sequence parallel \(CommStats.format(bytes: ring(lines, norms: false))); the norms' gradient sum adds \
            \(CommStats.format(bytes: ring(lines, norms: true)))

            Activation memory (Tensor.graphBytes: what the forward keeps for the backward)
            \(m.render(indent: 2))
              a Llama-3-8B layer (C 4096) at N 8192, tp 8: 6·N·C·(1−1/tp)·4 B = \(CommStats.format(bytes: big)) \
            less per layer and rank
            """)
    }
}
