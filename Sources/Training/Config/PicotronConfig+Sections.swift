// PicotronConfig+Sections.swift: the training, dataset, checkpoint, logging and environment sections.
//
// Keys picotron writes as `null` (max_tokens, run_name, HF_TOKEN, ...) are written as `null` here too,
// because picotron's train.py reads them with `config[...][...]` and would fail on a missing key.
// Our extensions are left out when unset.
import Formats
import Foundation
import Llama

extension PicotronConfig {
    // MARK: training

    public struct Training: Codable, Sendable, Equatable {
        public var seed = 42
        /// Peak learning rate of AdamW. 1e-3 suits the small models a CPU trains (picotron's template: 3e-4).
        public var learningRate = 1e-3
        /// Optimizer steps; training also stops earlier at max_tokens when that is set.
        public var totalTrainSteps = 200
        /// Tokens per sequence T (the model sees T inputs and predicts T targets).
        public var seqLength = 256
        /// Sequences per forward/backward on one data-parallel rank.
        public var microBatchSize = 4
        /// Micro-batches whose gradients add up before one optimizer step.
        public var gradientAccumulationSteps = 1
        /// picotron takes the first num_samples rows of a Hub dataset; here the whole corpus or file is used.
        public var numSamples: Int?
        /// Stop once this many tokens are trained (nil: stop at total_train_steps only).
        public var maxTokens: Int?

        // Extensions (not in picotron, which trains at a constant learning rate without clipping):
        /// Linear warmup from 0 to learning_rate over this many steps.
        public var warmupSteps = 0
        /// "constant" (picotron's) or "cosine" (decay from learning_rate to min_lr at total_train_steps).
        public var lrSchedule = "constant"
        /// The floor of the cosine schedule (nil: learning_rate / 10).
        public var minLR: Double?
        /// AdamW's decoupled weight decay λ (torch's default, as picotron uses).
        public var weightDecay = 0.01
        public var adamBeta1 = 0.9
        public var adamBeta2 = 0.999
        public var adamEps = 1e-8
        /// Clip the global gradient norm (across all ranks) to this value (nil: no clipping).
        public var maxGradNorm: Double?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case seed, learningRate = "learning_rate", totalTrainSteps = "total_train_steps"
            case seqLength = "seq_length", microBatchSize = "micro_batch_size"
            case gradientAccumulationSteps = "gradient_accumulation_steps", numSamples = "num_samples"
            case maxTokens = "max_tokens"
            // Extensions
            case warmupSteps = "warmup_steps", lrSchedule = "lr_schedule", minLR = "min_lr"
            case weightDecay = "weight_decay", adamBeta1 = "adam_beta1", adamBeta2 = "adam_beta2"
            case adamEps = "adam_eps", maxGradNorm = "max_grad_norm"
        }

        /// The learning-rate schedules `lr_schedule` may name.
        public static let lrSchedules = ["constant", "cosine"]

        /// AdamW's hyperparameters from this section.
        public var adamW: AdamW.Hyperparameters {
            AdamW.Hyperparameters(lr: learningRate, beta1: adamBeta1, beta2: adamBeta2, eps: adamEps,
                                  weightDecay: weightDecay)
        }

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.seed, &seed); try r.read(.learningRate, &learningRate)
            try r.read(.totalTrainSteps, &totalTrainSteps); try r.read(.seqLength, &seqLength)
            try r.read(.microBatchSize, &microBatchSize)
            try r.read(.gradientAccumulationSteps, &gradientAccumulationSteps)
            try r.read(.numSamples, &numSamples); try r.read(.maxTokens, &maxTokens)
            try r.read(.warmupSteps, &warmupSteps); try r.read(.lrSchedule, &lrSchedule)
            try r.read(.minLR, &minLR); try r.read(.weightDecay, &weightDecay)
            try r.read(.adamBeta1, &adamBeta1); try r.read(.adamBeta2, &adamBeta2)
            try r.read(.adamEps, &adamEps); try r.read(.maxGradNorm, &maxGradNorm)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "training", json: JSONValue(from: decoder)))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(seed, forKey: .seed); try c.encode(learningRate, forKey: .learningRate)
            try c.encode(totalTrainSteps, forKey: .totalTrainSteps); try c.encode(seqLength, forKey: .seqLength)
            try c.encode(microBatchSize, forKey: .microBatchSize)
            try c.encode(gradientAccumulationSteps, forKey: .gradientAccumulationSteps)
            try c.encode(numSamples, forKey: .numSamples)   // null when nil, as picotron's template writes
            try c.encode(maxTokens, forKey: .maxTokens)     // null when nil: picotron reads it directly
            try c.encode(warmupSteps, forKey: .warmupSteps); try c.encode(lrSchedule, forKey: .lrSchedule)
            try c.encodeIfPresent(minLR, forKey: .minLR); try c.encode(weightDecay, forKey: .weightDecay)
            try c.encode(adamBeta1, forKey: .adamBeta1); try c.encode(adamBeta2, forKey: .adamBeta2)
            try c.encode(adamEps, forKey: .adamEps); try c.encodeIfPresent(maxGradNorm, forKey: .maxGradNorm)
        }
    }

    // MARK: dataset

    /// What to train on. Hub datasets are not downloaded: token_file, text_file or the embedded corpus.
    public struct Dataset: Codable, Sendable, Equatable {
        /// picotron's Hub dataset id; here informative. "shakespeare" (or "embedded") is the built-in corpus.
        public var name = "shakespeare"
        /// picotron's Hub dataset configuration; not used here.
        public var subsetName: String?
        /// picotron's DataLoader worker processes; here batches are cut on the training thread.
        public var numWorkers = 0
        /// picotron's tokenization processes; here tokenizing is byte-level or done ahead of time.
        public var numProc = 1
        /// picotron reads `dataset.get("split", "train")`; only "train" exists here.
        public var split = "train"

        // Extensions (not in picotron):
        /// A UTF-8 text file, tokenized byte by byte (vocabulary 256).
        public var textFile: String?
        /// A pre-tokenized file: nanoGPT's raw train.bin or an llm.c .bin with its header.
        public var tokenFile: String?
        /// "uint16" or "uint32" ids in a headerless token_file (nil: uint16, nanoGPT's; llm.c files say it).
        public var tokenDType: String?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, subsetName = "subset_name", numWorkers = "num_workers", numProc = "num_proc", split
            // Extensions
            case textFile = "text_file", tokenFile = "token_file", tokenDType = "token_dtype"
        }

        /// Names that mean the built-in corpus rather than a Hub dataset.
        public static let embeddedNames = ["shakespeare", "embedded"]

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.name, &name); try r.read(.subsetName, &subsetName)
            try r.read(.numWorkers, &numWorkers); try r.read(.numProc, &numProc); try r.read(.split, &split)
            try r.read(.textFile, &textFile); try r.read(.tokenFile, &tokenFile); try r.read(.tokenDType, &tokenDType)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "dataset", json: JSONValue(from: decoder)))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name); try c.encode(subsetName, forKey: .subsetName)
            try c.encode(numWorkers, forKey: .numWorkers); try c.encode(numProc, forKey: .numProc)
            try c.encode(split, forKey: .split)
            try c.encodeIfPresent(textFile, forKey: .textFile); try c.encodeIfPresent(tokenFile, forKey: .tokenFile)
            try c.encodeIfPresent(tokenDType, forKey: .tokenDType)
        }
    }

    // MARK: checkpoint

    public struct Checkpoint: Codable, Sendable, Equatable {
        /// Checkpoints go to `<save_dir>/<step>` (picotron's layout).
        public var saveDir = "ckpt"
        /// Save every this many steps; 0 never saves (picotron would divide by zero).
        public var saveFrequency = 0
        /// A checkpoint directory to resume from; "" (picotron's empty value) starts fresh.
        public var loadPath = ""

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case saveDir = "save_dir", saveFrequency = "save_frequency", loadPath = "load_path"
        }

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.saveDir, &saveDir); try r.read(.saveFrequency, &saveFrequency); try r.read(.loadPath, &loadPath)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "checkpoint", json: JSONValue(from: decoder)))
        }
    }

    // MARK: logging

    public struct Logging: Codable, Sendable, Equatable {
        /// picotron logs to Weights & Biases; here metrics are printed and written to metrics_file.
        public var useWandb = false
        /// The wandb project in picotron; kept for picotron.
        public var projectName = "picotron"
        /// Names the run in printed lines (create-config sets it to the experiment name).
        public var runName: String?

        // Extensions (not in picotron):
        /// Append one JSON line of metrics per logged step to this file (nil: print only).
        public var metricsFile: String?
        /// Print (and record) metrics every this many steps.
        public var logFrequency = 1

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case useWandb = "use_wandb", projectName = "project_name", runName = "run_name"
            // Extensions
            case metricsFile = "metrics_file", logFrequency = "log_frequency"
        }

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.useWandb, &useWandb); try r.read(.projectName, &projectName); try r.read(.runName, &runName)
            try r.read(.metricsFile, &metricsFile); try r.read(.logFrequency, &logFrequency)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "logging", json: JSONValue(from: decoder)))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(useWandb, forKey: .useWandb); try c.encode(projectName, forKey: .projectName)
            try c.encode(runName, forKey: .runName)   // null when nil: picotron reads it directly
            try c.encodeIfPresent(metricsFile, forKey: .metricsFile); try c.encode(logFrequency, forKey: .logFrequency)
        }
    }

    // MARK: environment

    /// Environment variables picotron's train.py exports. Values are strings, as picotron requires.
    public struct Environment: Codable, Sendable, Equatable {
        /// Threads per process for the math library; nil: automatic (max(1, cores / ranks in the process)).
        public var ompNumThreads: String?
        /// The Hugging Face tokenizers' threads; there is no such tokenizer here.
        public var tokenizersParallelism = "false"
        /// "1" asks picotron for flash-attention kernels (GPU only).
        public var flashAtten = "0"
        /// picotron's Hub token, for downloads; nothing is downloaded here.
        public var hfToken: String?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case ompNumThreads = "OMP_NUM_THREADS", tokenizersParallelism = "TOKENIZERS_PARALLELISM"
            case flashAtten = "FLASH_ATTEN", hfToken = "HF_TOKEN"
        }

        /// OMP_NUM_THREADS as a number, when it is set to one.
        public var threadsPerProcess: Int? { ompNumThreads.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

        mutating func read(_ r: ConfigReader<CodingKeys>) throws {
            try r.read(.ompNumThreads, &ompNumThreads); try r.read(.tokenizersParallelism, &tokenizersParallelism)
            try r.read(.flashAtten, &flashAtten); try r.read(.hfToken, &hfToken)
        }

        public init(from decoder: Decoder) throws {
            self.init()
            try read(ConfigReader(section: "environment", json: JSONValue(from: decoder)))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ompNumThreads, forKey: .ompNumThreads)
            try c.encode(tokenizersParallelism, forKey: .tokenizersParallelism)
            try c.encode(flashAtten, forKey: .flashAtten); try c.encode(hfToken, forKey: .hfToken)
        }
    }
}
