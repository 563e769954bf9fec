// PicotronConfig.swift: picotron's JSON config, one Codable struct per section, key names as picotron's.
//
// The schema is huggingface/picotron's `template/base_config.json` (what `create_config.py` writes and
// `train.py` reads): sections distributed, model, training, dataset, checkpoint, logging, environment.
// A picotron config file loads as it is; keys that mean nothing on a CPU are accepted with a note saying
// what happens instead (see PicotronConfig+Load.swift).
//
// Our own keys are extensions, listed apart in each section under "Extensions (not in picotron)".
// picotron reads its config with `config["section"]["key"]`, so it ignores them: a file using them still
// runs under picotron. Defaults are chosen for a laptop CPU (float32, small sequences, the `micro` preset).
//
// Relative paths in the file (model directory, data files, save_dir, load_path, metrics_file) are taken
// relative to the current directory, as picotron does.
//
// ### References
// huggingface/picotron: template/base_config.json, create_config.py, train.py

import Foundation
import Llama

public struct PicotronConfig: Codable, Sendable, Equatable {
    public var distributed = Distributed()
    public var model = Model()
    public var training = Training()
    public var dataset = Dataset()
    public var checkpoint = Checkpoint()
    public var logging = Logging()
    public var environment = Environment()

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case distributed, model, training, dataset, checkpoint, logging, environment
    }

    // MARK: distributed

    /// How the ranks are arranged: `grid[dp][pp][cp][tp]`, tp fastest (picotron's process group manager).
    public struct Distributed: Codable, Sendable, Equatable {
        /// Tensor-parallel ranks: each holds a slice of every weight matrix.
        public var tpSize = 1
        /// Context-parallel ranks: each holds a slice of every sequence (ring attention).
        public var cpSize = 1
        /// Pipeline stages: each holds a contiguous run of layers.
        public var ppSize = 1
        /// Data-parallel replicas: each sees different micro-batches.
        public var dpSize = 1
        /// Pipeline schedule: "1f1b" (one forward, one backward) or "afab" (all forwards, then all backwards).
        public var ppEngine = "1f1b"
        /// Chunks of layers per pipeline stage for the interleaved engine (ours; Megatron's virtual stages).
        public var ppVirtualStages = 2
        /// picotron's process-group backend. Kept for picotron (which derives it from `use_cpu` anyway);
        /// here ranks talk through MPI under `mpirun`, or are threads of one process.
        public var backend = "gloo"
        /// picotron's device switch. This implementation always runs on the CPU.
        public var useCPU = true

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case tpSize = "tp_size", cpSize = "cp_size", ppSize = "pp_size", dpSize = "dp_size"
            case ppEngine = "pp_engine", backend, useCPU = "use_cpu"
        }

        /// The pipeline schedules `pp_engine` may name.
        public static let ppEngines = ["1f1b", "afab", "interleaved"]

        /// Ranks in the run: dp × pp × cp × tp.
        public var worldSize: Int { dpSize * ppSize * cpSize * tpSize }

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.tpSize, &tpSize); try r.read(.cpSize, &cpSize)
            try r.read(.ppSize, &ppSize); try r.read(.dpSize, &dpSize)
            try r.read(.ppEngine, &ppEngine); try r.read(.backend, &backend); try r.read(.useCPU, &useCPU)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "distributed", json: JSONValue(from: decoder)))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(tpSize, forKey: .tpSize); try c.encode(cpSize, forKey: .cpSize)
            try c.encode(ppSize, forKey: .ppSize); try c.encode(dpSize, forKey: .dpSize)
            try c.encode(ppEngine, forKey: .ppEngine); try c.encode(backend, forKey: .backend)
            try c.encode(useCPU, forKey: .useCPU)
        }
    }

    // MARK: model

    /// Which Llama to build. The three head/layer keys override the named model's, as in picotron's train.py.
    public struct Model: Codable, Sendable, Equatable {
        /// A local Hugging Face directory holding config.json, or a built-in preset (micro, tiny, smollm135m).
        /// picotron passes a Hub id; a Hub id whose last part names a preset (".../SmolLM-135M") finds it.
        public var name = "micro"
        /// Overrides the model's layer count when set (picotron's create_config always writes it).
        public var numHiddenLayers: Int?
        /// Overrides the model's query heads when set; head_dim becomes hidden_size / heads, as in picotron.
        public var numAttentionHeads: Int?
        /// Overrides the model's key/value heads (grouped-query attention) when set.
        public var numKeyValueHeads: Int?
        /// picotron trains in bfloat16 on GPUs; this implementation always computes in float32.
        public var dtype = "float32"
        /// A GPU kernel in picotron; here the fused causal attention kernel is always used.
        public var useFlashAttention = false
        /// torch's fused AdamW on CUDA; here AdamW is one loop per parameter either way.
        public var useFusedAdam = false

        // Extensions (not in picotron, whose train.py can only change layers and heads):
        /// Overrides the model's width (hidden_size) when set.
        public var hiddenSize: Int?
        /// Overrides the SwiGLU MLP width when set.
        public var intermediateSize: Int?
        /// Overrides the vocabulary size when set (e.g. 256 for the byte-level tokenizer).
        public var vocabSize: Int?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
            case numKeyValueHeads = "num_key_value_heads", dtype, useFlashAttention = "use_flash_attention"
            case useFusedAdam = "use_fused_adam"
            // Extensions
            case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", vocabSize = "vocab_size"
        }

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.name, &name); try r.read(.numHiddenLayers, &numHiddenLayers)
            try r.read(.numAttentionHeads, &numAttentionHeads); try r.read(.numKeyValueHeads, &numKeyValueHeads)
            try r.read(.dtype, &dtype); try r.read(.useFlashAttention, &useFlashAttention)
            try r.read(.useFusedAdam, &useFusedAdam)
            try r.read(.hiddenSize, &hiddenSize); try r.read(.intermediateSize, &intermediateSize)
            try r.read(.vocabSize, &vocabSize)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "model", json: JSONValue(from: decoder)))
        }

        /// Unset overrides are left out: picotron tests `"num_hidden_layers" in config["model"]`.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encodeIfPresent(numHiddenLayers, forKey: .numHiddenLayers)
            try c.encodeIfPresent(numAttentionHeads, forKey: .numAttentionHeads)
            try c.encodeIfPresent(numKeyValueHeads, forKey: .numKeyValueHeads)
            try c.encode(dtype, forKey: .dtype); try c.encode(useFlashAttention, forKey: .useFlashAttention)
            try c.encode(useFusedAdam, forKey: .useFusedAdam)
            try c.encodeIfPresent(hiddenSize, forKey: .hiddenSize)
            try c.encodeIfPresent(intermediateSize, forKey: .intermediateSize)
            try c.encodeIfPresent(vocabSize, forKey: .vocabSize)
        }
    }

    // MARK: Derived sizes

    /// Ranks in the run: dp × pp × cp × tp.
    public var worldSize: Int { distributed.worldSize }
    /// Sequences per optimizer step: micro_batch_size × gradient_accumulation_steps × dp (picotron's gbs).
    public var globalBatchSize: Int {
        training.microBatchSize * training.gradientAccumulationSteps * distributed.dpSize
    }
    /// Tokens per optimizer step: global batch × seq_length (picotron's `tokens_per_step`).
    public var tokensPerStep: Int { globalBatchSize * training.seqLength }
}
