// PicotronConfig+Validate.swift: the rules a config must keep, each message naming the value, the rule
// and the fix. All broken rules are reported at once, one per line, so a user fixes the file in one go.
//
// Rules that need the model (heads divisible by tp, layers ≥ pp) are checked by `resolvedModelConfig()`.
import Formats
import Foundation
import Llama

extension PicotronConfig {
    /// Throws `TrainingError.config` listing every broken rule; `load(from:)` calls it, and callers that
    /// change a config afterwards (`apply(overrides:)`) should call it again.
    public func validate() throws {
        var problems: [String] = []
        func check(_ ok: Bool, _ message: @autoclosure () -> String) { if !ok { problems.append(message()) } }
        func atLeast(_ path: String, _ value: Int, _ minimum: Int, _ why: String) {
            check(value >= minimum, "\(path) is \(value), but it must be at least \(minimum) (\(why)); "
                  + "set it to \(minimum) or more")
        }
        func positive(_ path: String, _ value: Double, _ why: String) {
            check(value > 0 && value.isFinite, "\(path) is \(value), but it must be a positive number (\(why))")
        }
        func oneOf(_ path: String, _ value: String, _ allowed: [String]) {
            check(allowed.contains(value), "\(path) is \(quoted(value)), but it must be one of "
                  + allowed.map { quoted($0) }.joined(separator: ", "))
        }

        // distributed
        let d = distributed
        let grid = [("tp_size", d.tpSize), ("cp_size", d.cpSize), ("pp_size", d.ppSize), ("dp_size", d.dpSize)]
        for (key, value) in grid {
            atLeast("distributed.\(key)", value, 1, "1 means no parallelism along that dimension")
        }
        oneOf("distributed.pp_engine", d.ppEngine, Distributed.ppEngines)
        check([0, 1].contains(d.zeroStage), "distributed.zero_stage is \(d.zeroStage), but it must be 0 (no ZeRO) or 1 "
              + "(AdamW's moments sliced over the data-parallel ranks); stages 2 and 3 are not implemented")
        oneOf("distributed.cp_layout", d.cpLayout, Distributed.cpLayouts)
        oneOf("distributed.cp_attention", d.cpAttention, Distributed.cpAttentions)

        // model
        check(!model.name.trimmingCharacters(in: .whitespaces).isEmpty,
              "model.name is empty; name a preset (\(Self.presetList)) or a local directory with a config.json")
        for case let (key, value?) in modelSizeOverrides {
            atLeast("model.\(key)", value, 1, "or leave it out to keep the model's own")
        }
        problems += modelSizeLimitProblems()

        // training
        let t = training
        atLeast("training.total_train_steps", t.totalTrainSteps, 1, "the number of optimizer steps")
        atLeast("training.seq_length", t.seqLength, 2, "a sequence needs a token and the next one to predict")
        if let (limit, why) = LlamaConfig.sizeLimit(of: "max_position_embeddings") {   // it becomes the model's
            check(t.seqLength <= limit, "training.seq_length is \(t.seqLength), above this implementation's limit "
                  + "of \(limit) positions (\(why)); choose \(limit) or less")
        }
        atLeast("training.micro_batch_size", t.microBatchSize, 1, "sequences per forward pass")
        atLeast("training.gradient_accumulation_steps", t.gradientAccumulationSteps, 1,
                "micro-batches per optimizer step")
        positive("training.learning_rate", t.learningRate, "AdamW's step size, e.g. 1e-3")
        if let n = t.numSamples { atLeast("training.num_samples", n, 1, "or null for all") }
        if let n = t.maxTokens { atLeast("training.max_tokens", n, 1, "or null for no token limit") }
        if d.cpSize > 1, t.seqLength >= 2 {
            // zigzag deals 2·cp chunks, contiguous cp; the nearest valid lengths around the asked one.
            let unit = d.cpLayout == "contiguous" ? d.cpSize : 2 * d.cpSize
            let below = t.seqLength / unit * unit, above = below + unit
            check(t.seqLength % unit == 0, "training.seq_length \(t.seqLength) is not divisible by "
                  + (unit == d.cpSize ? "distributed.cp_size \(d.cpSize)" : "2 × distributed.cp_size \(d.cpSize) = \(unit)")
                  + ": context parallelism (\(d.cpLayout)) gives each rank \(unit == d.cpSize ? "one chunk" : "two chunks") "
                  + "of the sequence; use \(below >= 2 ? "\(below) or " : "")\(above)")
        }
        if d.sequenceParallel, d.tpSize > 1, d.cpSize >= 1, t.seqLength >= 2 {
            // Between the blocks each tensor-parallel rank holds T/(cp·tp) tokens of a sequence; the fix
            // also keeps context parallelism's rule (chunks of T/cp or T/2cp).
            let perRank = t.seqLength / d.cpSize
            let unit = (d.cpSize == 1 ? 1 : d.cpLayout == "contiguous" ? d.cpSize : 2 * d.cpSize) * d.tpSize
            let below = t.seqLength / unit * unit, above = below + unit
            check(t.seqLength % (d.cpSize * d.tpSize) == 0,
                  "training.seq_length \(t.seqLength)\(d.cpSize > 1 ? " / distributed.cp_size \(d.cpSize) = \(perRank)" : "")"
                  + " is not divisible by distributed.tp_size \(d.tpSize): sequence parallelism gives each tensor-parallel "
                  + "rank 1/\(d.tpSize) of the tokens between the blocks; use \(below >= 2 ? "\(below) or " : "")\(above), "
                  + "or turn distributed.sequence_parallel off")
        }
        // Products of sizes, in overflow-checked arithmetic: a product that overflows would trap later.
        let tokens = [("training.micro_batch_size", t.microBatchSize),
                      ("training.gradient_accumulation_steps", t.gradientAccumulationSteps),
                      ("distributed.dp_size", d.dpSize), ("training.seq_length", t.seqLength)]
        if let problem = Self.productProblem(grid.map { ("distributed.\($0.0)", $0.1) }, "ranks (the world size)") {
            problems.append(problem)
        } else if let problem = Self.productProblem(tokens, "tokens per optimizer step") {
            problems.append(problem)
        }
        atLeast("training.warmup_steps", t.warmupSteps, 0, "0 means no warmup")
        oneOf("training.lr_schedule", t.lrSchedule, Training.lrSchedules)
        if let m = t.minLR {
            check(m >= 0 && m <= t.learningRate, "training.min_lr is \(m), but it must be between 0 and "
                  + "learning_rate \(t.learningRate)")
        }
        check(t.weightDecay >= 0 && t.weightDecay.isFinite,
              "training.weight_decay is \(t.weightDecay), but it must be 0 or more")
        for (key, beta) in [("adam_beta1", t.adamBeta1), ("adam_beta2", t.adamBeta2)] {
            check(beta >= 0 && beta < 1, "training.\(key) is \(beta), but it must be in [0, 1), e.g. 0.9 or 0.999")
        }
        positive("training.adam_eps", t.adamEps, "it keeps AdamW's division finite, e.g. 1e-8")
        if let g = t.maxGradNorm { positive("training.max_grad_norm", g, "or null for no clipping") }

        // dataset
        atLeast("dataset.num_workers", dataset.numWorkers, 0, "0 loads on the training thread")
        atLeast("dataset.num_proc", dataset.numProc, 1, "processes for tokenizing")
        check(dataset.textFile == nil || dataset.tokenFile == nil,
              "dataset.text_file and dataset.token_file are both set; keep the one to train on")
        if let dtype = dataset.tokenDType { oneOf("dataset.token_dtype", dtype, TokenDType.allCases.map(\.rawValue)) }

        // checkpoint, logging, environment
        atLeast("checkpoint.save_frequency", checkpoint.saveFrequency, 0, "0 never saves")
        atLeast("logging.log_frequency", logging.logFrequency, 1, "steps between printed lines")
        if let threads = environment.ompNumThreads {
            check((environment.threadsPerProcess ?? 0) >= 1, "environment.OMP_NUM_THREADS is \(quoted(threads)), "
                  + "but it must be a positive whole number in a string, e.g. \"1\", or null for automatic")
        }

        guard !problems.isEmpty else { return }
        throw TrainingError.config(problems.count == 1 ? problems[0]
            : "\(problems.count) problems:\n  " + problems.joined(separator: "\n  "))
    }

    /// The model section's size overrides by key, nil where the model's own size is kept.
    var modelSizeOverrides: [(String, Int?)] {
        [("num_hidden_layers", model.numHiddenLayers), ("num_attention_heads", model.numAttentionHeads),
         ("num_key_value_heads", model.numKeyValueHeads), ("hidden_size", model.hiddenSize),
         ("intermediate_size", model.intermediateSize), ("vocab_size", model.vocabSize)]
    }

    /// The model overrides above their limits (`LlamaConfig.sizeLimits`), one message each.
    func modelSizeLimitProblems() -> [String] {
        modelSizeOverrides.compactMap { key, value in
            guard let value, let (limit, why) = LlamaConfig.sizeLimit(of: key), value > limit else { return nil }
            return "model.\(key) is \(value), above this implementation's limit of \(limit) (\(why)); "
                + "choose \(limit) or less"
        }
    }

    /// A message when the product of positive `factors` overflows Int (`multipliedReportingOverflow`),
    /// naming each factor and the product's size; nil when it fits. Non-positive factors are
    /// reported by their own rules.
    static func productProblem(_ factors: [(String, Int)], _ what: String) -> String? {
        guard factors.allSatisfy({ $0.1 >= 1 }) else { return nil }
        var product = 1
        for (_, value) in factors {
            let (p, overflow) = product.multipliedReportingOverflow(by: value)
            guard !overflow else {
                let terms = factors.map { "\($0.0) \($0.1)" }.joined(separator: " × ")
                let size = factors.reduce(1.0) { $0 * Double($1.1) }
                return "\(terms) = \(String(format: "%.3g", size)) \(what), more than a 64-bit integer holds "
                    + "(\(Int.max)); choose smaller values"
            }
            product = p
        }
        return nil
    }
}
