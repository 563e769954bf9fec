// More of the lesson problem: its tokens as a dataset (so lessons shard it with the real loader),
// references with frozen parameters, and the gradient of any subset of rows (what one rank
// computes on its own, before any communication: tests use it to diagnose a missing reduction).
// Legend: B = rows of the global batch, T = sequence length.

import Llama
import TensorCore
import Training

extension LessonProblem {
    /// The batch as a token stream the `MicroBatchLoader` cuts back into the same rows: row b is
    /// window b (its T inputs followed by its last target), so an unshuffled loader with
    /// sequence length T returns rows 0, 1, 2, … of this batch, and dp ranks get disjoint rows.
    public var dataset: TokenDataset {
        var tokens = [Int]()
        tokens.reserveCapacity(batch * (length + 1))
        for b in 0..<batch {
            tokens += inputs[(b * length)..<((b + 1) * length)]   // [T]
            tokens.append(targets[(b + 1) * length - 1])        // the (T + 1)-th token of window b
        }
        return TokenDataset(tokens: tokens, name: "lesson problem (seed \(seed), \(batch) × \(length))")
    }

    /// A loader over `dataset` for data-parallel rank `dpRank` of `dpSize`, in order (no shuffle),
    /// `microBatch` rows per micro-batch. After `batch / (microBatch · dpSize)` micro-batches the
    /// group has read the whole batch once; then it starts again from row 0 (the next epoch).
    public func loader(microBatch: Int, dpRank: Int = 0, dpSize: Int = 1) throws -> MicroBatchLoader {
        try MicroBatchLoader(dataset: dataset, microBatchSize: microBatch, sequenceLength: length,
                             vocabSize: config.vocabSize, dpRank: dpRank, dpSize: dpSize, shuffle: false)
    }

    /// A fresh model with the parameters named in `frozen` set to `requiresGrad = false`.
    public func makeModel(frozen: Set<String>) -> LlamaForCausalLM {
        let model = makeModel()
        for (name, p) in model.namedParameters where frozen.contains(name) { p.requiresGrad = false }
        return model
    }

    /// Loss and gradients (by HF name) of the mean loss over rows `rows` only, on a fresh model.
    /// A frozen parameter has no gradient and is left out of the dictionary.
    public func gradients(rows: Range<Int>, frozen: Set<String> = []) -> (loss: Float, gradients: [String: [Float]]) {
        gradients(rowList: Array(rows), frozen: frozen)
    }

    /// The same for any rows, in the order given (e.g. the rows one data-parallel rank read).
    public func gradients(rowList: [Int], frozen: Set<String> = []) -> (loss: Float, gradients: [String: [Float]]) {
        let model = makeModel(frozen: frozen)
        var x = [Int](), y = [Int]()
        for r in rowList {
            let (xr, yr) = rows(r..<(r + 1))
            x += xr                                                  // [rows, T]
            y += yr
        }
        let loss = model.lossFunction(model.logits(x, batch: rowList.count, length: length), y)
        loss.backward()
        var grads = [String: [Float]]()
        for (name, p) in model.namedParameters where p.requiresGrad {
            grads[name] = p.grad ?? [Float](repeating: 0, count: p.count)
        }
        return (loss.item, grads)
    }

    /// The single-process reference with some parameters frozen (no gradient, never updated).
    public func reference(frozen: Set<String>) -> (loss: Float, gradients: [String: [Float]]) {
        gradients(rows: 0..<batch, frozen: frozen)
    }

    /// Parameters (by HF name) after `steps` AdamW steps of the single-process reference on the
    /// whole batch, with the parameters in `frozen` held fixed.
    public func referenceAfterSteps(_ steps: Int, hyper: AdamW.Hyperparameters,
                                    frozen: Set<String>) -> (losses: [Float], parameters: [String: [Float]]) {
        let model = makeModel(frozen: frozen)
        let optimizer = AdamW(parameters: model.parameters, hyper: hyper)
        var losses = [Float]()
        for _ in 0..<steps {
            let loss = model.lossFunction(model.logits(inputs, batch: batch, length: length), targets)
            loss.backward()
            optimizer.step()
            optimizer.zeroGrad()
            losses.append(loss.item)
        }
        return (losses, Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.data) }))
    }

    /// The coarse part of a parameter name, for per-group summaries:
    /// `model.layers.1.mlp.up_proj.weight` → `model.layers.1`, `lm_head.weight` → `lm_head`.
    public static func group(of name: String) -> String {
        let parts = name.split(separator: ".")
        if parts.count >= 3 && parts[1] == "layers" { return parts[0...2].joined(separator: ".") }
        if parts.count >= 2 && parts[0] == "model" { return parts[0...1].joined(separator: ".") }
        return String(parts.first ?? "")
    }
}
