// PicotronConfig+Load.swift: reading a config file, and the notes and warnings it earns.
//
// Three kinds of message, from mild to fatal:
//   note     a picotron key that means nothing on a CPU ("model.dtype \"bfloat16\": ...float32"): accepted,
//            and the note says what is done instead. Defaults never earn a note.
//   warning  an unknown key or section, named with its path and the nearest known key; it is ignored.
//   error    malformed JSON (with line:column), a value of the wrong type (with its path, the expected
//            type and the value found), or a value that breaks a rule (see +Validate.swift).
import Formats
import Foundation
import Llama

extension PicotronConfig {
    /// Reads, checks and validates a picotron config file. `notes` holds one line per note
    /// (prefixed "note: ") and per warning (prefixed "warning: "), ready to print.
    /// Throws `TrainingError.config` naming the file for a missing or malformed file, a mistyped value or a
    /// broken rule. The model is not resolved here: call `resolvedModelConfig()`.
    public static func load(from url: URL) throws -> (config: PicotronConfig, notes: [String]) {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainingError.config("\(path): no such file. Create one with `picotron create-config --out_dir "
                                       + "<dir> --exp_name <name>` or check the path")
        }
        guard !isDirectory.boolValue else {
            throw TrainingError.config("\(path) is a directory; pass the config.json file inside it")
        }
        let data: Data
        // Through a file handle: Data(contentsOf:) refuses devices and pipes (`--config /dev/stdin`).
        do { data = try FileHandle(forReadingFrom: url).readToEnd() ?? Data() } catch {
            throw TrainingError.config("\(path): cannot read the file (\(OutputFile.describe(error)))")
        }
        let bytes = [UInt8](data)
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch let error as JSONSyntaxError {
            let (line, column) = error.location(in: bytes)
            throw TrainingError.config("\(path):\(line):\(column): malformed JSON: \(error.message)")
        }
        do {
            var warnings: [String] = []
            let config = try PicotronConfig(json: json, warnings: &warnings)
            try config.validate()
            return (config, config.notes + warnings.map { "warning: " + $0 })
        } catch TrainingError.config(let message) {
            throw TrainingError.config("\(path): \(message)")
        }
    }

    /// Decodable through the same reader as `load(from:)` (warnings are dropped; validation is not run).
    public init(from decoder: Decoder) throws {
        var warnings: [String] = []
        try self.init(json: JSONValue(from: decoder), warnings: &warnings)
    }

    /// Reads every section; unknown sections and keys become warnings, wrong types throw.
    init(json: JSONValue, warnings: inout [String]) throws {
        self.init()
        guard case .object(let sections) = json else {
            throw TrainingError.config("the top level must be an object of sections "
                                       + "(distributed, model, training, ...), found \(json.summary)")
        }
        var unknown: [String] = []
        for section in CodingKeys.allCases {
            guard let value = json[section.rawValue] else { continue }
            switch section {
            case .distributed:
                unknown += try Self.read(&distributed, Distributed.CodingKeys.self, section, value) { try $0.read($1) }
            case .model:
                unknown += try Self.read(&model, Model.CodingKeys.self, section, value) { try $0.read($1) }
            case .training:
                unknown += try Self.read(&training, Training.CodingKeys.self, section, value) { try $0.read($1) }
            case .dataset:
                unknown += try Self.read(&dataset, Dataset.CodingKeys.self, section, value) { try $0.read($1) }
            case .checkpoint:
                unknown += try Self.read(&checkpoint, Checkpoint.CodingKeys.self, section, value) { try $0.read($1) }
            case .logging:
                unknown += try Self.read(&logging, Logging.CodingKeys.self, section, value) { try $0.read($1) }
            case .environment:
                unknown += try Self.read(&environment, Environment.CodingKeys.self, section, value) { try $0.read($1) }
            }
        }
        let sectionNames = CodingKeys.allCases.map(\.rawValue)
        for (name, _) in sections where !sectionNames.contains(name) {
            let hint = closestName(to: name, in: sectionNames).map { " (did you mean \($0)?)" } ?? ""
            warnings.append("unknown section \(name)\(hint); it is ignored. Sections are "
                            + sectionNames.joined(separator: ", "))
        }
        warnings += unknown
    }

    /// Reads one section into `value`; returns its unknown-key warnings.
    private static func read<S, K: CodingKey & CaseIterable>(
        _ value: inout S, _ keys: K.Type, _ section: CodingKeys, _ json: JSONValue,
        _ body: (inout S, ConfigReader<K>) throws -> Void
    ) throws -> [String] {
        let reader = try ConfigReader<K>(section: section.rawValue, json: json)
        try body(&value, reader)
        return reader.unknownKeys.map { key in
            let path = "\(section.rawValue).\(key)"
            if let near = closestName(to: key, in: K.allCases.map(\.stringValue)) {
                return "unknown key \(path) (did you mean \(near)?); it is ignored"
            }
            if let home = Self.sectionHolding(key) {
                return "unknown key \(path) (did you mean \(home).\(key)? it belongs in the \(home) section); "
                    + "it is ignored"
            }
            return "unknown key \(path); it is ignored"
        }
    }

    /// The section whose keys include `key`, for a key written in the wrong section.
    static func sectionHolding(_ key: String) -> String? {
        let keys: [(String, [String])] = [
            ("distributed", Distributed.CodingKeys.allCases.map(\.rawValue)),
            ("model", Model.CodingKeys.allCases.map(\.rawValue)),
            ("training", Training.CodingKeys.allCases.map(\.rawValue)),
            ("dataset", Dataset.CodingKeys.allCases.map(\.rawValue)),
            ("checkpoint", Checkpoint.CodingKeys.allCases.map(\.rawValue)),
            ("logging", Logging.CodingKeys.allCases.map(\.rawValue)),
            ("environment", Environment.CodingKeys.allCases.map(\.rawValue)),
        ]
        return keys.first { $0.1.contains(key) }?.0
    }

    // MARK: Notes

    /// One line per picotron setting that this CPU implementation does differently, each saying what
    /// happens instead. Settings at their defaults earn none.
    public var notes: [String] {
        var n: [String] = []
        func note(_ path: String, _ value: String, _ instead: String) { n.append("note: \(path) \(value): \(instead)") }
        if !distributed.useCPU {
            note("distributed.use_cpu", "false", "this implementation always runs on the CPU")
        }
        if !["gloo", "mpi"].contains(distributed.backend.lowercased()) {
            note("distributed.backend", quoted(distributed.backend), "ignored (picotron also derives it from use_cpu); "
                 + "ranks talk through MPI under mpirun, or are threads of one process")
        }
        if model.dtype.lowercased() != "float32" {
            note("model.dtype", quoted(model.dtype), "this CPU implementation trains in float32")
        }
        if model.useFlashAttention {
            note("model.use_flash_attention", "true", "flash attention is a GPU kernel; the fused causal "
                 + "attention kernel is used")
        }
        if model.useFusedAdam {
            note("model.use_fused_adam", "true", "fused AdamW is a CUDA option; AdamW runs one loop per parameter")
        }
        if let samples = training.numSamples {
            note("training.num_samples", "\(samples)", "picotron takes that many Hub dataset rows; here the whole "
                 + "corpus or file is used (stop earlier with training.max_tokens)")
        }
        if dataset.textFile == nil, dataset.tokenFile == nil,
           !Dataset.embeddedNames.contains(dataset.name.lowercased()) {
            note("dataset.name", quoted(dataset.name), "Hub datasets are not downloaded; training uses the embedded "
                 + "Shakespeare corpus. Set dataset.token_file or dataset.text_file to train on your own data")
        }
        if let subset = dataset.subsetName {
            note("dataset.subset_name", quoted(subset), "ignored (a Hub dataset option)")
        }
        if dataset.split != "train" {
            note("dataset.split", quoted(dataset.split), "ignored; the whole corpus or file is the training split")
        }
        if dataset.numWorkers > 0 {
            note("dataset.num_workers", "\(dataset.numWorkers)", "batches are cut on the training thread")
        }
        if dataset.numProc > 1 {
            note("dataset.num_proc", "\(dataset.numProc)", "tokenizing is byte-level or done ahead of time, "
                 + "in one process")
        }
        if logging.useWandb {
            note("logging.use_wandb", "true", "Weights & Biases is not used; metrics are printed"
                 + (logging.metricsFile.map { " and written to \($0)" } ?? " (set logging.metrics_file to keep them)"))
        }
        if environment.tokenizersParallelism.lowercased() == "true" {
            note("environment.TOKENIZERS_PARALLELISM", "\"true\"", "ignored; there is no threaded tokenizer here")
        }
        if environment.flashAtten != "0" {
            note("environment.FLASH_ATTEN", quoted(environment.flashAtten), "ignored; flash attention is a GPU "
                 + "kernel, the fused causal attention kernel is used")
        }
        if environment.hfToken != nil {   // never print the token itself
            note("environment.HF_TOKEN", "is set", "not used, nothing is downloaded from the Hub "
                 + "(and a token is better kept out of config files)")
        }
        return n
    }
}
