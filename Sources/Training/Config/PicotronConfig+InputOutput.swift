// PicotronConfig+InputOutput.swift: the dataset, checkpoint, logging and environment sections, each key once.
//
// Keys picotron writes as `null` (num_samples, max_tokens, subset_name, run_name, OMP_NUM_THREADS,
// HF_TOKEN) are written as `null` here too (`writesNull`), because picotron's train.py reads them with
// `config[...][...]` and would fail on a missing key. Our extensions are left out when unset.
import Formats
import Foundation

extension PicotronConfig {
    // MARK: dataset

    /// What to train on. Hub datasets are not downloaded: token_file, text_file or the embedded corpus.
    /// One property per key of `keys`.
    public struct Dataset: PicotronConfigSection {
        public var name = "shakespeare"
        public var subsetName: String?
        public var numWorkers = 0, numProc = 1
        public var split = "train"
        public var textFile: String?, tokenFile: String?, tokenDType: String?

        public init() {}
        public static let name = "dataset"
        public static let keys: [ConfigKey<Self>] = [
            .init("name", \.name, "picotron's Hub dataset id; here informative. \"shakespeare\" (or \"embedded\") "
                  + "is the built-in corpus.",
                  note: { name, dataset in
                      dataset.textFile != nil || dataset.tokenFile != nil || embeddedNames.contains(name.lowercased())
                          ? nil
                          : ConfigNote("Hub datasets are not downloaded; training uses the embedded Shakespeare "
                                       + "corpus. Set dataset.token_file or dataset.text_file to train on your "
                                       + "own data")
                  }),
            .init("subset_name", \.subsetName, "picotron's Hub dataset configuration; not used here.",
                  writesNull: true, note: { _, _ in ConfigNote("ignored (a Hub dataset option)") }),
            .init("split", \.split, "picotron reads `dataset.get(\"split\", \"train\")`; only \"train\" exists here.",
                  note: { split, _ in
                      split == "train" ? nil : ConfigNote("ignored; the whole corpus or file is the training split")
                  }),
            .init("num_workers", \.numWorkers, "picotron's DataLoader worker processes; here batches are cut on the "
                  + "training thread.",
                  note: { n, _ in n > 0 ? ConfigNote("batches are cut on the training thread") : nil }),
            .init("num_proc", \.numProc, "picotron's tokenization processes; here tokenizing is byte-level or done "
                  + "ahead of time.",
                  note: { n, _ in
                      n > 1 ? ConfigNote("tokenizing is byte-level or done ahead of time, in one process") : nil
                  }),
            .init("text_file", \.textFile, "A UTF-8 text file, tokenized byte by byte (vocabulary 256).",
                  extension: true),
            .init("token_file", \.tokenFile, "A pre-tokenized file: nanoGPT's raw train.bin or an llm.c .bin with its "
                  + "header.", extension: true),
            .init("token_dtype", \.tokenDType, "\"uint16\" or \"uint32\" ids in a headerless token_file (unset: "
                  + "uint16, nanoGPT's; llm.c files say it).", extension: true),
        ]

        /// Names that mean the built-in corpus rather than a Hub dataset.
        public static let embeddedNames = ["shakespeare", "embedded"]
    }

    // MARK: checkpoint

    /// Where checkpoints go and which one to resume from. One property per key of `keys`.
    public struct Checkpoint: PicotronConfigSection {
        public var saveDir = "ckpt"
        public var saveFrequency = 0
        public var loadPath = ""

        public init() {}
        public static let name = "checkpoint"
        public static let keys: [ConfigKey<Self>] = [
            .init("save_dir", \.saveDir, "Checkpoints go to `<save_dir>/<step>` (picotron's layout)."),
            .init("save_frequency", \.saveFrequency, "Save every this many steps; 0 never saves (picotron would "
                  + "divide by zero)."),
            .init("load_path", \.loadPath, "A checkpoint directory to resume from; \"\" (picotron's empty value) "
                  + "starts fresh."),
        ]
    }

    // MARK: logging

    /// What is printed and recorded. One property per key of `keys`.
    public struct Logging: PicotronConfigSection {
        public var useWandb = false
        public var projectName = "picotron"
        public var runName: String?
        public var metricsFile: String?
        public var logFrequency = 1

        public init() {}
        public static let name = "logging"
        public static let keys: [ConfigKey<Self>] = [
            .init("use_wandb", \.useWandb, "picotron logs to Weights & Biases; here metrics are printed and "
                  + "written to metrics_file.",
                  note: { wandb, logging in
                      guard wandb else { return nil }
                      return ConfigNote("Weights & Biases is not used; metrics are printed"
                                        + (logging.metricsFile.map { " and written to \($0)" }
                                           ?? " (set logging.metrics_file to keep them)"))
                  }),
            .init("project_name", \.projectName, "The wandb project in picotron; kept for picotron."),
            .init("run_name", \.runName, "Names the run in printed lines (create-config sets it to the experiment "
                  + "name).", writesNull: true),
            .init("metrics_file", \.metricsFile, "Append one JSON line of metrics per logged step to this file "
                  + "(unset: print only).", extension: true),
            .init("log_frequency", \.logFrequency, "Print (and record) metrics every this many steps.",
                  extension: true),
        ]
    }

    // MARK: environment

    /// Environment variables picotron's train.py exports. Values are strings, as picotron requires.
    /// One property per key of `keys`.
    public struct Environment: PicotronConfigSection {
        public var ompNumThreads: String?
        public var tokenizersParallelism = "false"
        public var flashAtten = "0"
        public var hfToken: String?

        public init() {}
        public static let name = "environment"
        public static let keys: [ConfigKey<Self>] = [
            .init("OMP_NUM_THREADS", \.ompNumThreads, "Threads per process for the math library; null: automatic "
                  + "(max(1, cores / ranks in the process)).", writesNull: true),
            .init("TOKENIZERS_PARALLELISM", \.tokenizersParallelism, "The Hugging Face tokenizers' threads; there is "
                  + "no such tokenizer here.",
                  note: { value, _ in
                      value.lowercased() == "true"
                          ? ConfigNote("ignored; there is no threaded tokenizer here", shown: "\"true\"") : nil
                  }),
            .init("FLASH_ATTEN", \.flashAtten, "\"1\" asks picotron for flash-attention kernels (GPU only).",
                  note: { value, _ in
                      value == "0" ? nil : ConfigNote("ignored; flash attention is a GPU kernel, the fused causal "
                                                      + "attention kernel is used")
                  }),
            // The note never shows the token itself.
            .init("HF_TOKEN", \.hfToken, "picotron's Hub token, for downloads; nothing is downloaded here.",
                  writesNull: true,
                  note: { _, _ in
                      ConfigNote("not used, nothing is downloaded from the Hub (and a token is better kept out "
                                 + "of config files)", shown: "is set")
                  }),
        ]

        /// OMP_NUM_THREADS as a number, when it is set to one.
        public var threadsPerProcess: Int? { ompNumThreads.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    }
}
