// PicotronConfig.swift: picotron's JSON config, one struct per section, key names as picotron's.
//
// The schema is huggingface/picotron's `template/base_config.json` (what `create_config.py` writes and
// `train.py` reads): sections distributed, model, training, dataset, checkpoint, logging, environment.
// A picotron config file loads as it is; keys that mean nothing on a CPU are accepted with a note saying
// what happens instead (see PicotronConfig+Load.swift).
//
// Each section lists its keys once, in a table (PicotronConfig+Sections.swift, +InputOutput.swift; see
// ConfigKey.swift for what the table drives). Our own keys are extensions, marked in the tables.
// picotron reads its config with `config["section"]["key"]`, so it ignores them: a file using them still
// runs under picotron. Defaults are chosen for a laptop CPU (float32, small sequences, the `micro` preset).
//
// Relative paths in the file (model directory, data files, save_dir, load_path, metrics_file) are taken
// relative to the current directory, as picotron does.
//
// ### References
// huggingface/picotron: template/base_config.json, create_config.py, train.py

import Formats
import Foundation

/// A picotron config: seven sections, each a struct with one property per key and the table of its keys.
/// `load(from:)` reads and validates a file; `jsonData()` writes one; `resolvedModelConfig()` gives the model.
public struct PicotronConfig: Codable, Sendable, Equatable {
    public var distributed = Distributed()
    public var model = Model()
    public var training = Training()
    public var dataset = Dataset()
    public var checkpoint = Checkpoint()
    public var logging = Logging()
    public var environment = Environment()

    public init() {}

    /// One section, reached by its key path, with what loading and writing need of it.
    struct Section: Sendable {
        let name: String
        let keyNames: [String]
        /// Reads the section's JSON into the config; returns the keys it does not know.
        let read: @Sendable (inout PicotronConfig, JSONValue) throws -> [String]
        let json: @Sendable (PicotronConfig) -> JSONValue
        let notes: @Sendable (PicotronConfig) -> [String]
        let reference: [String]

        init<S: PicotronConfigSection>(_ path: WritableKeyPath<PicotronConfig, S> & Sendable) {
            (name, keyNames, reference) = (S.name, S.keys.map(\.name), S.reference)
            read = { config, json in try config[keyPath: path].read(json) }
            json = { $0[keyPath: path].json }
            notes = { $0[keyPath: path].notes }
        }
    }

    /// The sections in picotron's order.
    static let sections: [Section] = [
        Section(\.distributed), Section(\.model), Section(\.training), Section(\.dataset),
        Section(\.checkpoint), Section(\.logging), Section(\.environment),
    ]

    /// Every key of every section, one line each: its path, JSON type, default, and what it does.
    public static var keyReference: [String] { sections.flatMap(\.reference) }

    /// The config as written: every section, every key but our unset extensions.
    public var json: JSONValue { .object(Self.sections.map { ($0.name, $0.json(self)) }) }

    /// Writes `json` (create-config's file; see `jsonData()`).
    public func encode(to encoder: Encoder) throws { try json.encode(to: encoder) }

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
