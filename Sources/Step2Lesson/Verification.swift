// Checking a tensor-parallel Llama against the single-process reference, rank by rank: the
// loss, this rank's logit columns, every gradient shard against the same slice of the
// reference gradient, and the parameters after AdamW steps. The lesson executable prints these
// checks; the tests assert them.
// Legend: B = batch, T = sequence, N = B·T tokens, V = vocabulary, tp = ranks.

import Distributed
import LessonKit
import Llama
import Step2_TensorParallel
import TensorCore
import Training

public enum TensorParallelCheck {
    /// This rank's checks after one forward and backward of `problem`'s whole batch on a model
    /// made tensor-parallel over `comm` (every rank of `comm` must call it).
    public static func step(_ problem: LessonProblem, comm: Communicator, gatherLogits: Bool = false,
                            sequenceParallel: Bool = false) throws -> [Comparison] {
        let reference = problem.makeModel()
        let refLogits = reference.logits(problem.inputs, batch: problem.batch, length: problem.length)   // [B, T, V]
        let refLoss = reference.lossFunction(refLogits, problem.targets)
        refLoss.backward()

        let model = problem.makeModel()
        let group = try applyTensorParallel(to: model, group: comm, gatherLogits: gatherLogits,
                                            sequenceParallel: sequenceParallel)
        let logits = model.logits(problem.inputs, batch: problem.batch, length: problem.length)  // [B, T, V/tp]
        let loss = model.lossFunction(logits, problem.targets)
        loss.backward()
        try group.check()

        let n = problem.batch * problem.length, v = problem.config.vocabSize
        let logitCut = ShardSpec(cut: gatherLogits ? .replicated : .columns, fullShape: [n, v],
                                 rank: comm.rank, size: comm.size)
        var checks = [
            ReferenceCheck.compare("loss", got: [loss.item], want: [refLoss.item])
                .withHint("loss differs: check the vocab-parallel cross-entropy (Task 2.8) — max and Σexp over all ranks"),
            ReferenceCheck.compare("logits", got: logits.data, want: logitCut.slice(refLogits.data),
                                   shape: logits.rowsAndColumns.rows > 0 ? [n, logits.shape.last!] : nil)
                .withHint("logits differ: the forward is wrong before the loss — check f/g (Tasks 2.1, 2.2), "
                          + "the linear forwards (2.3, 2.5) and the embedding mask (2.7)"),
        ]
        checks += gradientChecks(model, reference: reference, group: comm, sequenceParallel: sequenceParallel)
        return checks
    }

    /// Each parameter's gradient on this rank against the same slice of `reference`'s.
    public static func gradientChecks(_ model: LlamaForCausalLM, reference: LlamaForCausalLM, group: Communicator,
                                      sequenceParallel: Bool = false) -> [Comparison] {
        let specs = tensorParallelSpecs(of: model, group: group)
        let want = Dictionary(uniqueKeysWithValues: reference.namedParameters.map { ($0.0, $0.1) })
        return model.namedParameters.map { name, p in
            let spec = specs[name]!, full = want[name]!
            let got = p.grad ?? [Float](repeating: 0, count: p.count)
            let ref = spec.slice(full.grad ?? [Float](repeating: 0, count: full.count))
            var c = ReferenceCheck.compare("grad \(name)", got: got, want: ref, shape: p.shape)
            if !c.passed {
                c = c.withHint(hint(name: name, cut: spec.cut, ratio: ReferenceCheck.ratio(got: got, want: ref),
                                    sequenceParallel: sequenceParallel))
            }
            return c
        }
    }

    /// This rank's checks after `steps` AdamW steps on the whole batch: each step's loss and
    /// every parameter shard at the end.
    public static func training(_ problem: LessonProblem, comm: Communicator, steps: Int,
                                hyper: AdamW.Hyperparameters, sequenceParallel: Bool = false)
        throws -> (checks: [Comparison], losses: [Float], reference: [Float]) {
        let ref = problem.referenceAfterSteps(steps, hyper: hyper)
        let model = problem.makeModel()
        let group = try applyTensorParallel(to: model, group: comm, sequenceParallel: sequenceParallel)
        let optimizer = AdamW(parameters: model.parameters, hyper: hyper)
        var losses = [Float]()
        for _ in 0..<steps {
            let loss = model.lossFunction(model.logits(problem.inputs, batch: problem.batch, length: problem.length),
                                          problem.targets)
            loss.backward()
            try group.check()
            optimizer.step()
            optimizer.zeroGrad()
            losses.append(loss.item)
        }
        let specs = tensorParallelSpecs(of: model, group: comm)
        var checks = [ReferenceCheck.compare("losses of \(steps) steps", got: losses, want: ref.losses)]
        for (name, p) in model.namedParameters {
            checks.append(ReferenceCheck.compare("\(name) after \(steps) steps", got: p.data,
                                                 want: specs[name]!.slice(ref.parameters[name]!), shape: p.shape)
                .withHint("the gradient was right but the update is not: is each parameter in the optimizer once?"))
        }
        return (checks, losses, ref.losses)
    }

    /// The likely cause of a wrong gradient, from which kind of parameter it is.
    public static func hint(name: String, cut: ShardSpec.Cut, ratio: Float?, sequenceParallel: Bool = false) -> String {
        if let ratio, abs(ratio - ratio.rounded()) < 0.01, ratio.rounded() > 1 {
            return "the gradient is \(Int(ratio.rounded()))× the reference: an all-reduce where the identity belongs "
                + "(g's backward, Task 2.2) or a gradient counted on every rank"
        }
        if name.contains("embed_tokens") {
            return "only the owner of a token may add to its row: check the embedding mask (Task 2.7)"
        }
        switch cut {
        case .replicated where sequenceParallel:
            return "under sequence parallelism each rank's norm saw only its T/tp tokens: its weight gradient is a part, "
                + "to be summed over tp (Task 2.11); a wrong ∂L/∂x before it points at Tasks 2.9 and 2.10"
        case .replicated:
            return "norm weights see the full gradient only if f all-reduces ∂L/∂x in backward (Task 2.1)"
        case .rows:
            return "a column-parallel weight: dW_r = dyᵀ·x (Task 2.4) with x the full input, dy this rank's columns"
        case .columns:
            return "a row-parallel weight: dW_r = dyᵀ·x_r (Task 2.6) with x_r this rank's input slice"
        }
    }
}
