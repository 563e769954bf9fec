// PicotronConfig+Sections.swift: the distributed, model and training sections, each key once.
//
// A section declares one property per key with its default, then its table: the JSON name, the
// property, the help, and for the keys a CPU treats differently the note saying what happens instead
// (ConfigKey.swift). The tables list keys in picotron's order, extensions last.
import Foundation
import Llama

extension PicotronConfig {
    // MARK: distributed

    /// How the ranks are arranged: `grid[dp][pp][cp][tp]`, tp fastest (picotron's process group manager).
    /// One property per key of `keys`, at its default.
    public struct Distributed: PicotronConfigSection {
        public var tpSize = 1, cpSize = 1, ppSize = 1, dpSize = 1
        public var ppEngine = "1f1b"
        public var ppVirtualStages = 2
        public var cpLayout = "zigzag", cpAttention = "ring"
        public var sequenceParallel = false
        public var backend = "gloo"
        public var useCPU = true
        /// ZeRO stage: 0 none, 1 AdamW's moments sliced over the cp+dp group (lesson 1).
        public var zeroStage = 0

        public init() {}
        public static let name = "distributed"
        public static let keys: [ConfigKey<Self>] = [
            .init("tp_size", \.tpSize, "Tensor-parallel ranks: each holds a slice of every weight matrix."),
            .init("cp_size", \.cpSize, "Context-parallel ranks: each holds a slice of every sequence (ring "
                  + "attention)."),
            .init("pp_size", \.ppSize, "Pipeline stages: each holds a contiguous run of layers."),
            .init("dp_size", \.dpSize, "Data-parallel replicas: each sees different micro-batches."),
            .init("pp_engine", \.ppEngine, "Pipeline schedule: \"1f1b\" (one forward, one backward), \"afab\" "
                  + "(all forwards, then all backwards), \"interleaved\" (1F1B over virtual stages) or \"zb\" (1F1B with the "
                  + "weight gradients put off into the bubble)."),
            .init("use_cpu", \.useCPU, "picotron's device switch. This implementation always runs on the CPU.",
                  note: { cpu, _ in cpu ? nil : ConfigNote("this implementation always runs on the CPU") }),
            .init("backend", \.backend, "picotron's process-group backend, kept for picotron (which derives it from "
                  + "use_cpu anyway); here ranks talk through MPI under mpirun, or are threads of one process.",
                  note: { backend, _ in
                      ["gloo", "mpi"].contains(backend.lowercased()) ? nil
                          : ConfigNote("ignored (picotron also derives it from use_cpu); "
                                       + "ranks talk through MPI under mpirun, or are threads of one process")
                  }),
            .init("cp_layout", \.cpLayout, "How context parallelism deals a sequence's tokens: \"zigzag\" (chunks r and "
                  + "2·cp − 1 − r, balanced causal work) or \"contiguous\".", extension: true),
            .init("cp_attention", \.cpAttention, "Context-parallel attention: \"ring\" (K/V blocks around the ring, "
                  + "O(T/cp) memory) or \"allgather\" (every rank gathers all K/V).", extension: true),
            .init("pp_virtual_stages", \.ppVirtualStages, "Chunks of layers per pipeline stage for the interleaved "
                  + "engine (Megatron's virtual stages): the bubble shrinks by this factor.", extension: true),
            .init("sequence_parallel", \.sequenceParallel, "Sequence parallelism (Megatron's sequence_parallel): the "
                  + "activations between the tensor-parallel blocks (residual stream, norms) are split along the "
                  + "sequence over the tp ranks; the same traffic, a tp-th of that memory. Needs tp_size > 1.",
                  extension: true,
                  note: { on, d in
                      on && d.tpSize == 1 ? ConfigNote("ignored: it splits the sequence between tensor-parallel "
                                                       + "ranks, and tp_size is 1") : nil
                  }),
            .init("zero_stage", \.zeroStage, "ZeRO stage: 0 (none) or 1 (each data-parallel rank keeps AdamW's moments "
                  + "for 1/(dp·cp) of the parameters: gradients reduce-scattered, parameters all-gathered; lesson 1).",
                  extension: true,
                  note: { stage, d in
                      stage == 1 && d.dpSize * d.cpSize == 1
                          ? ConfigNote("dp_size × cp_size is 1: there is nothing to slice over, so AdamW runs whole") : nil
                  }),
        ]

        /// The pipeline schedules `pp_engine` may name.
        public static let ppEngines = ["1f1b", "afab", "interleaved", "zb"]
        /// What `cp_layout` and `cp_attention` may name.
        public static let cpLayouts = ["zigzag", "contiguous"], cpAttentions = ["ring", "allgather"]

        /// Ranks in the run: dp × pp × cp × tp.
        public var worldSize: Int { dpSize * ppSize * cpSize * tpSize }
    }

    // MARK: model

    /// Which Llama to build. The three head/layer keys override the named model's, as in picotron's train.py;
    /// our extensions override its sizes. An unset override keeps the model's own and is left out of the file
    /// (picotron tests `"num_hidden_layers" in config["model"]`). One property per key of `keys`.
    public struct Model: PicotronConfigSection {
        public var name = "micro"
        public var numHiddenLayers: Int?, numAttentionHeads: Int?, numKeyValueHeads: Int?
        public var dtype = "float32"
        public var useFlashAttention = false, useFusedAdam = false
        public var hiddenSize: Int?, intermediateSize: Int?, vocabSize: Int?

        public init() {}
        public static let name = "model"
        public static let keys: [ConfigKey<Self>] = [
            .init("name", \.name, "A local Hugging Face directory holding config.json, a built-in preset (micro, "
                  + "tiny, smollm135m), or a Hub id of a published Llama architecture (SmolLM, SmolLM2, TinyLlama, "
                  + "Llama 2, 3, 3.2: see LlamaConfig.hubArchitectures). A Hub id whose last part names a preset "
                  + "(\".../SmolLM-135M\") finds the preset.",
                  note: { name, _ in
                      let lastPart = name.split(separator: "/").last.map(String.init) ?? name
                      guard !FileManager.default.fileExists(atPath: name), LlamaConfig.preset(named: name) == nil,
                            LlamaConfig.preset(named: lastPart) == nil,
                            let entry = LlamaConfig.hubArchitecture(named: name) else { return nil }
                      return ConfigNote("the architecture comes from the built-in table (the published config.json "
                                        + "of \(entry.id)); nothing is downloaded and the weights start at random, "
                                        + "as picotron's do")
                  }),
            .init("num_hidden_layers", \.numHiddenLayers, "Overrides the model's layer count when set."),
            .init("num_attention_heads", \.numAttentionHeads, "Overrides the model's query heads when set; head_dim "
                  + "becomes hidden_size / heads, as in picotron."),
            .init("num_key_value_heads", \.numKeyValueHeads, "Overrides the model's key/value heads (grouped-query "
                  + "attention) when set."),
            .init("dtype", \.dtype, "picotron trains in bfloat16 on GPUs; this implementation computes in float32.",
                  note: { dtype, _ in
                      dtype.lowercased() == "float32" ? nil : ConfigNote("this CPU implementation trains in float32")
                  }),
            .init("use_flash_attention", \.useFlashAttention, "A GPU kernel in picotron; here the fused causal "
                  + "attention kernel is always used.",
                  note: { flash, _ in
                      flash ? ConfigNote("flash attention is a GPU kernel; the fused causal attention kernel is used")
                          : nil
                  }),
            .init("use_fused_adam", \.useFusedAdam, "torch's fused AdamW on CUDA; here AdamW is one loop per "
                  + "parameter either way.",
                  note: { fused, _ in
                      fused ? ConfigNote("fused AdamW is a CUDA option; AdamW runs one loop per parameter") : nil
                  }),
            .init("hidden_size", \.hiddenSize, "Overrides the model's width when set.", extension: true),
            .init("intermediate_size", \.intermediateSize, "Overrides the SwiGLU MLP width when set.",
                  extension: true),
            .init("vocab_size", \.vocabSize, "Overrides the vocabulary size when set (e.g. 256 for the byte-level "
                  + "tokenizer).", extension: true),
        ]
    }

    // MARK: training

    /// The optimizer, the batch shape and when to stop. picotron trains at a constant learning rate
    /// without clipping; warmup, cosine decay, AdamW's constants and clipping are our extensions.
    /// One property per key of `keys`.
    public struct Training: PicotronConfigSection {
        public var seed = 42
        public var learningRate = 1e-3
        public var totalTrainSteps = 200, seqLength = 256, microBatchSize = 4, gradientAccumulationSteps = 1
        public var numSamples: Int?, maxTokens: Int?
        public var warmupSteps = 0
        public var lrSchedule = "constant"
        public var minLR: Double?
        public var weightDecay = 0.01, adamBeta1 = 0.9, adamBeta2 = 0.999, adamEps = 1e-8
        public var maxGradNorm: Double?

        public init() {}
        public static let name = "training"
        public static let keys: [ConfigKey<Self>] = [
            .init("seed", \.seed, "Seeds the initial weights and the data order."),
            .init("learning_rate", \.learningRate, "Peak learning rate of AdamW. 1e-3 suits the small models a CPU "
                  + "trains (picotron's template: 3e-4)."),
            .init("total_train_steps", \.totalTrainSteps, "Optimizer steps; training also stops earlier at "
                  + "max_tokens when that is set."),
            .init("seq_length", \.seqLength, "Tokens per sequence T (the model sees T inputs and predicts T targets)."),
            .init("micro_batch_size", \.microBatchSize, "Sequences per forward/backward on one data-parallel rank."),
            .init("gradient_accumulation_steps", \.gradientAccumulationSteps, "Micro-batches whose gradients add up "
                  + "before one optimizer step."),
            .init("num_samples", \.numSamples, "picotron takes the first num_samples rows of a Hub dataset; here the "
                  + "whole corpus or file is used.", writesNull: true,
                  note: { _, _ in
                      ConfigNote("picotron takes that many Hub dataset rows; here the whole corpus or file is used "
                                 + "(stop earlier with training.max_tokens)")
                  }),
            .init("max_tokens", \.maxTokens, "Stop once this many tokens are trained (null: stop at total_train_steps "
                  + "only).", writesNull: true),
            .init("warmup_steps", \.warmupSteps, "Linear warmup from 0 to learning_rate over this many steps.",
                  extension: true),
            .init("lr_schedule", \.lrSchedule, "\"constant\" (picotron's) or \"cosine\" (decay from learning_rate "
                  + "to min_lr at total_train_steps).", extension: true),
            .init("min_lr", \.minLR, "The floor of the cosine schedule (unset: learning_rate / 10).", extension: true),
            .init("weight_decay", \.weightDecay, "AdamW's decoupled weight decay λ (torch's default, as picotron "
                  + "uses).", extension: true),
            .init("adam_beta1", \.adamBeta1, "AdamW's β1, the decay of the mean of gradients.", extension: true),
            .init("adam_beta2", \.adamBeta2, "AdamW's β2, the decay of the mean of squared gradients.",
                  extension: true),
            .init("adam_eps", \.adamEps, "AdamW's ε, added to the root of the second moment.", extension: true),
            .init("max_grad_norm", \.maxGradNorm, "Clip the global gradient norm (across all ranks) to this value "
                  + "(unset: no clipping).", extension: true),
        ]

        /// The learning-rate schedules `lr_schedule` may name.
        public static let lrSchedules = ["constant", "cosine"]

        /// AdamW's hyperparameters from this section.
        public var adamW: AdamW.Hyperparameters {
            AdamW.Hyperparameters(lr: learningRate, beta1: adamBeta1, beta2: adamBeta2, eps: adamEps,
                                  weightDecay: weightDecay)
        }
    }
}
