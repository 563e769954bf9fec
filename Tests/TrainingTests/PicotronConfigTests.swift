// picotron's JSON config: its own template loads (with notes), mistakes are reported with their key path,
// line and column, every validation rule names the value and the fix, the model resolves from a preset or
// a local Hugging Face directory, overrides apply, and create-config writes a file that loads back.
// Files are written to a fresh temp dir per test.

import Formats
import Foundation
import Llama
import XCTest
@testable import Training

final class PicotronConfigTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("PicotronConfigTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// huggingface/picotron's template/base_config.json, as create_config.py reads it.
    static let picotronTemplate = """
        {
            "distributed": {
                "tp_size": 1,
                "cp_size": 1,
                "pp_size": 1,
                "dp_size": 1,
                "pp_engine": "1f1b",
                "backend": "nccl",
                "use_cpu": false
            },
            "model": {
                "name": "HuggingFaceTB/SmolLM-360M-Instruct",
                "num_hidden_layers": 16,
                "num_attention_heads": 16,
                "num_key_value_heads": 4,
                "dtype": "bfloat16",
                "use_flash_attention": false,
                "use_fused_adam": true
            },
            "training": {
                "seed": 42,
                "learning_rate": 3e-4,
                "total_train_steps": 200,
                "seq_length": 1024,
                "micro_batch_size": 32,
                "gradient_accumulation_steps": 1,
                "num_samples": 4000,
                "max_tokens": null
            },
            "dataset": {
                "name": "roneneldan/TinyStories",
                "subset_name": null,
                "num_workers": 0,
                "num_proc": 1
            },
            "checkpoint": {
                "save_dir": "ckpt",
                "save_frequency": 300,
                "load_path": ""
            },
            "logging": {
                "use_wandb": false,
                "project_name": "picotron",
                "run_name": null
            },
            "environment": {
                "OMP_NUM_THREADS": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "FLASH_ATTEN": "0",
                "HF_TOKEN": null
            }
        }
        """

    // MARK: Helpers

    func write(_ text: String, _ name: String = "config.json") throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func load(_ text: String) throws -> (config: PicotronConfig, notes: [String]) {
        try PicotronConfig.load(from: write(text))
    }

    /// Asserts `body` throws a `TrainingError` whose message contains every one of `parts`.
    func assertThrows(_ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error mentioning \(parts)", file: file, line: line)
        } catch let error as TrainingError {
            for part in parts where !error.description.contains(part) {
                XCTFail("error \"\(error.description)\" does not mention \"\(part)\"", file: file, line: line)
            }
        } catch {
            XCTFail("expected a TrainingError, got \(error)", file: file, line: line)
        }
    }

    func assertContains(_ lines: [String], _ part: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssert(lines.contains { $0.contains(part) },
                  "no line mentions \"\(part)\" in:\n" + lines.joined(separator: "\n"),
                  file: file, line: line)
    }

    // MARK: picotron's own file

    func testPicotronTemplateLoadsWithNotesAndKeepsItsValues() throws {
        let (config, notes) = try load(Self.picotronTemplate)
        XCTAssertFalse(notes.contains { $0.hasPrefix("warning:") }, "\(notes)")
        for part in ["note: model.dtype \"bfloat16\": this CPU implementation trains in float32",
                     "note: distributed.backend \"nccl\"", "note: distributed.use_cpu false",
                     "note: model.use_fused_adam true", "note: training.num_samples 4000",
                     "note: dataset.name \"roneneldan/TinyStories\": Hub datasets are not downloaded",
                     "note: model.name \"HuggingFaceTB/SmolLM-360M-Instruct\": the architecture comes from the built-in "
                        + "table (the published config.json of HuggingFaceTB/SmolLM-360M); nothing is downloaded"] {
            assertContains(notes, part)
        }
        XCTAssertEqual(notes.count, 7, "\(notes)")
        XCTAssertEqual(config.training.learningRate, 3e-4)
        XCTAssertEqual(config.training.microBatchSize, 32)
        XCTAssertEqual(config.training.seqLength, 1024)
        XCTAssertNil(config.training.maxTokens)
        XCTAssertEqual(config.model.numHiddenLayers, 16)
        XCTAssertEqual(config.checkpoint.saveFrequency, 300)
        XCTAssertEqual(config.checkpoint.loadPath, "")
        XCTAssertEqual(config.environment.ompNumThreads, "1")
        XCTAssertEqual(config.worldSize, 1)
        XCTAssertEqual(config.tokensPerStep, 32 * 1024)
        // The Hub model is not fetched: its architecture comes from the table, picotron's overrides on top.
        let model = try config.resolvedModelConfig()
        XCTAssertEqual([model.hiddenSize, model.intermediateSize, model.numHiddenLayers, model.numAttentionHeads,
                        model.numKeyValueHeads, model.maxPositionEmbeddings], [960, 2560, 16, 16, 4, 1024])
        // A Hub model outside the table: the error says so, lists the presets, the table and the local-directory way.
        var other = config
        other.model.name = "mistralai/Mistral-7B-v0.1"
        assertThrows(["model.name \"mistralai/Mistral-7B-v0.1\"", "micro, tiny, smollm135m",
                      "HuggingFaceTB/SmolLM-1.7B", "Hub downloads are not available", "huggingface-cli download", "local directory"]) {
            _ = try other.resolvedModelConfig()
        }
    }

    func testDefaultsEarnNoNotesAndHubTokenIsNeverPrinted() throws {
        XCTAssertEqual(try load("{}").notes, [])
        let text = #"{"environment": {"HF_TOKEN": "hf_secret123"}, "model": {"use_flash_attention": true}}"#
        let (_, notes) = try load(text)
        assertContains(notes, "note: environment.HF_TOKEN is set: not used")
        assertContains(notes, "note: model.use_flash_attention true")
        XCTAssertFalse(notes.joined().contains("hf_secret123"))
    }

    // MARK: Unknown keys, wrong types, malformed JSON, missing file

    func testUnknownKeysWarnWithTheirPathAndNearestName() throws {
        let (config, notes) = try load("""
            {"training": {"learning_rat": 0.01, "dp_size": 2, "zzz": 1}, "trainig": {}}
            """)
        assertContains(notes, "warning: unknown key training.learning_rat (did you mean learning_rate?)")
        assertContains(notes, "warning: unknown key training.dp_size (did you mean distributed.dp_size?")
        assertContains(notes, "warning: unknown key training.zzz; it is ignored")
        assertContains(notes, "warning: unknown section trainig (did you mean training?)")
        XCTAssertEqual(config.training.learningRate, PicotronConfig.Training().learningRate)
    }

    func testWrongTypesNameTheKeyPathTheExpectedTypeAndTheValue() throws {
        let cases: [(String, String)] = [
            (#"{"training": {"micro_batch_size": "4"}}"#,
             #"training.micro_batch_size: expected an integer, found the string "4""#),
            (#"{"training": {"seq_length": 4.5}}"#, "training.seq_length: expected an integer, found the number 4.5"),
            (#"{"distributed": {"use_cpu": "yes"}}"#,
             #"distributed.use_cpu: expected true or false, found the string "yes""#),
            (#"{"environment": {"OMP_NUM_THREADS": 1}}"#,
             "environment.OMP_NUM_THREADS: expected a string, found the number 1"),
            (#"{"training": 5}"#, "training: expected an object of keys, found the number 5"),
            ("[1, 2]", "the top level must be an object"),
        ]
        for (text, message) in cases {
            let url = try write(text)
            assertThrows([url.path, message]) { _ = try PicotronConfig.load(from: url) }
        }
        // 4.0 is an integer, null keeps the default, and a number may be written as an integer.
        let (config, _) = try load(#"{"training": {"micro_batch_size": 4.0, "seed": null, "learning_rate": 1}}"#)
        XCTAssertEqual(config.training.microBatchSize, 4)
        XCTAssertEqual(config.training.seed, 42)
        XCTAssertEqual(config.training.learningRate, 1.0)
    }

    func testMalformedJSONGivesFileLineAndColumn() throws {
        let cases: [(String, String)] = [
            ("{\n  \"training\": {\n    \"seed\": 1,\n  }\n}",
             ":4:3: malformed JSON: expected a key in double quotes, found '}'"),
            ("{\n  \"training\": {\"seed\": 1 \"seq_length\": 8}\n}",
             ":2:26: malformed JSON: expected ',' or '}' after the value of \"seed\""),
            ("{'training': {}}", ":1:2: malformed JSON: expected a key in double quotes"),
            ("{\"a\": True}",
             ":1:7: malformed JSON: expected a value, found 'T' (true, false and null are lower case)"),
            ("", ":1:1: malformed JSON: the file is empty"),
            ("{\"a\": \"open", ":1:12: malformed JSON: unterminated string"),
            ("{} {}", ":1:4: malformed JSON: unexpected text after"),
        ]
        for (text, message) in cases {
            let url = try write(text)
            assertThrows([url.path + message]) { _ = try PicotronConfig.load(from: url) }
        }
        let json = try JSONParser.parse(Array(#"{"s": "caf\u00e9 \ud83d\ude00 \"q\" \n", "x": -1.5e2}"#.utf8))
        guard case .string(let s)? = json["s"], case .double(let x)? = json["x"] else { return XCTFail("\(json)") }
        XCTAssertEqual(s, "café 😀 \"q\" \n")
        XCTAssertEqual(x, -150)
    }

    func testMissingFileAndDirectoryNameThePath() {
        let missing = dir.appendingPathComponent("nope/config.json")
        assertThrows([missing.path, "no such file", "picotron create-config"]) {
            _ = try PicotronConfig.load(from: missing)
        }
        assertThrows([dir.path, "is a directory"]) { _ = try PicotronConfig.load(from: self.dir) }
    }

    // MARK: Validation

    func testEachRuleNamesTheValueAndTheFix() throws {
        let cases: [(String, [String])] = [
            (#"{"distributed": {"tp_size": 0}}"#, ["distributed.tp_size is 0", "at least 1"]),
            (#"{"distributed": {"cp_size": -1}}"#, ["distributed.cp_size is -1", "at least 1"]),
            (#"{"distributed": {"pp_size": 0}}"#, ["distributed.pp_size is 0"]),
            (#"{"distributed": {"dp_size": 0}}"#, ["distributed.dp_size is 0"]),
            (#"{"distributed": {"pp_engine": "gpipe"}}"#, [#"distributed.pp_engine is "gpipe""#, #""1f1b", "afab""#]),
            (#"{"model": {"name": " "}}"#, ["model.name is empty", "micro, tiny, smollm135m"]),
            (#"{"model": {"num_hidden_layers": 0}}"#, ["model.num_hidden_layers is 0", "leave it out"]),
            (#"{"training": {"seq_length": 1}}"#, ["training.seq_length is 1", "at least 2", "set it to 2 or more"]),
            (#"{"training": {"micro_batch_size": 0}}"#, ["training.micro_batch_size is 0", "at least 1"]),
            (#"{"training": {"gradient_accumulation_steps": 0}}"#, ["training.gradient_accumulation_steps is 0"]),
            (#"{"training": {"total_train_steps": 0}}"#, ["training.total_train_steps is 0", "at least 1"]),
            (#"{"training": {"learning_rate": 0}}"#, ["training.learning_rate is 0.0", "positive number"]),
            (#"{"training": {"learning_rate": -1e-3}}"#, ["training.learning_rate is -0.001"]),
            (#"{"training": {"max_tokens": 0}}"#, ["training.max_tokens is 0"]),
            (#"{"training": {"seq_length": 10}, "distributed": {"cp_size": 4}}"#,
             ["training.seq_length 10 is not divisible by 2 × distributed.cp_size 4 = 8", "use 8 or 16"]),
            (#"{"training": {"seq_length": 10}, "distributed": {"cp_size": 4, "cp_layout": "contiguous"}}"#,
             ["training.seq_length 10 is not divisible by distributed.cp_size 4", "use 8 or 12"]),
            (#"{"training": {"lr_schedule": "linear"}}"#, [#"training.lr_schedule is "linear""#, #""cosine""#]),
            (#"{"training": {"min_lr": 1.0}}"#, ["training.min_lr is 1.0", "between 0 and learning_rate"]),
            (#"{"training": {"adam_beta2": 1.0}}"#, ["training.adam_beta2 is 1.0", "[0, 1)"]),
            (#"{"training": {"max_grad_norm": 0}}"#, ["training.max_grad_norm is 0.0"]),
            (#"{"dataset": {"token_dtype": "int8"}}"#, [#"dataset.token_dtype is "int8""#, #""uint16", "uint32""#]),
            (#"{"dataset": {"text_file": "a.txt", "token_file": "a.bin"}}"#, ["both set"]),
            (#"{"checkpoint": {"save_frequency": -1}}"#, ["checkpoint.save_frequency is -1", "0 never saves"]),
            (#"{"logging": {"log_frequency": 0}}"#, ["logging.log_frequency is 0"]),
            (#"{"environment": {"OMP_NUM_THREADS": "many"}}"#, [#"environment.OMP_NUM_THREADS is "many""#]),
        ]
        for (text, parts) in cases {
            let url = try write(text)
            assertThrows([url.path] + parts) { _ = try PicotronConfig.load(from: url) }
        }
        // Every broken rule at once, one per line.
        assertThrows(["2 problems:\n  training.seq_length is 1", "\n  training.micro_batch_size is 0"]) {
            _ = try self.load(#"{"training": {"seq_length": 1, "micro_batch_size": 0}}"#)
        }
    }

    // MARK: Model resolution

    func testPresetResolutionAndPicotronOverrides() throws {
        var config = PicotronConfig()
        config.training.seqLength = 64
        var expected = LlamaConfig.micro
        expected.maxPositionEmbeddings = 64   // picotron sets max_position_embeddings = seq_length
        XCTAssertEqual(try config.resolvedModelConfig(), expected)
        for name in ["SmolLM-135M", "HuggingFaceTB/SmolLM-135M", "smollm135m"] {
            config.model.name = name
            XCTAssertEqual(try config.modelSource(), .preset("smollm135m"), name)
        }
        // A Hub id of the table of published architectures: its sizes, max_position_embeddings = seq_length.
        config.model.name = "HuggingFaceTB/SmolLM-1.7B-Instruct"
        XCTAssertEqual(try config.modelSource(), .hub("HuggingFaceTB/SmolLM-1.7B"))
        let smol = try config.resolvedModelConfig()
        XCTAssertEqual([smol.vocabSize, smol.hiddenSize, smol.intermediateSize, smol.numHiddenLayers,
                        smol.maxPositionEmbeddings], [49152, 2048, 8192, 24, 64])
        config.model.name = "micro"
        (config.model.numHiddenLayers, config.model.numAttentionHeads, config.model.numKeyValueHeads) = (2, 8, 4)
        let model = try config.resolvedModelConfig()
        XCTAssertEqual([model.numHiddenLayers, model.numAttentionHeads, model.numKeyValueHeads], [2, 8, 4])
        XCTAssertEqual(model.headDim, 128 / 8, "head_dim follows hidden_size / heads, as in picotron")
        (config.model.hiddenSize, config.model.vocabSize) = (64, 512)
        XCTAssertEqual(try config.resolvedModelConfig().hiddenSize, 64)

        var bad = PicotronConfig()
        bad.model.numAttentionHeads = 3
        assertThrows(["hidden_size 128 is not divisible by num_attention_heads 3"]) {
            _ = try bad.resolvedModelConfig()
        }
        bad = PicotronConfig()
        bad.distributed.tpSize = 4   // micro: 4 heads, 2 kv heads
        assertThrows(["num_key_value_heads 2 is not divisible by distributed.tp_size 4", "1, 2"]) {
            _ = try bad.resolvedModelConfig()
        }
        bad = PicotronConfig()
        bad.distributed.ppSize = 5   // micro: 4 layers
        assertThrows(["num_hidden_layers 4 is fewer than distributed.pp_size 5"]) { _ = try bad.resolvedModelConfig() }
        bad = PicotronConfig()
        bad.model.name = "gpt2"
        assertThrows(["model.name \"gpt2\" is neither a built-in preset", "local directory"]) {
            _ = try bad.modelSource()
        }
    }

    func testLocalHuggingFaceDirectoryResolves() throws {
        let modelDir = dir.appendingPathComponent("my-model")
        try LlamaConfig.tiny.save(to: modelDir)
        let (config, notes) = try load(#"{"model": {"name": "\#(modelDir.path)", "num_hidden_layers": 2}}"#)
        XCTAssertEqual(notes, [])
        guard case .directory(let found) = try config.modelSource() else { return XCTFail("not a directory") }
        XCTAssertEqual(found.standardizedFileURL.path, modelDir.standardizedFileURL.path)
        let model = try config.resolvedModelConfig()
        XCTAssertEqual(model.numHiddenLayers, 2)
        XCTAssertEqual(model.hiddenSize, LlamaConfig.tiny.hiddenSize)
        XCTAssertEqual(model.vocabSize, 4096)

        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        var noConfig = config
        noConfig.model.name = empty.path
        assertThrows(["model.name \"\(empty.path)\" exists but is not a directory holding a config.json"]) {
            _ = try noConfig.resolvedModelConfig()
        }
    }

    // MARK: Overrides

    func testOverridesReplaceOnlyWhatTheySet() throws {
        var (config, _) = try load(Self.picotronTemplate)
        let before = config
        config.apply(overrides: ConfigOverrides())
        XCTAssertEqual(config, before)
        config.apply(overrides: ConfigOverrides(steps: 7, seed: 1, learningRate: 0.5, microBatchSize: 2,
                                                gradAccSteps: 3, seqLength: 16, dp: 2, tp: 2, pp: 2, cp: 2,
                                                saveDir: "out", loadPath: "out/5", metricsFile: "m.jsonl"))
        XCTAssertEqual(config.training.totalTrainSteps, 7)
        XCTAssertEqual(config.training.seed, 1)
        XCTAssertEqual(config.training.learningRate, 0.5)
        XCTAssertEqual(config.globalBatchSize, 2 * 3 * 2)
        XCTAssertEqual(config.training.seqLength, 16)
        XCTAssertEqual(config.worldSize, 16)
        XCTAssertEqual([config.checkpoint.saveDir, config.checkpoint.loadPath, config.logging.metricsFile],
                       ["out", "out/5", "m.jsonl"])
        XCTAssertEqual(config.model, before.model)
        try config.validate()
        config.apply(overrides: ConfigOverrides(seqLength: 15))
        assertThrows(["training.seq_length 15 is not divisible by 2 × distributed.cp_size 2 = 4"]) { try config.validate() }
    }

    // MARK: create-config

    func testCreateConfigWritesAFileThatLoadsBack() throws {
        var options = CreateConfigOptions()
        (options.outDir, options.expName) = (dir.appendingPathComponent("tmp").path, "llama-cpu")
        (options.dp, options.tp, options.pp, options.ppEngine) = (2, 2, 2, "afab")
        (options.gradAccSteps, options.mbs, options.seqLen, options.numHiddenLayers) = (2, 4, 128, 2)
        let (file, created) = try options.run()
        XCTAssertEqual(file.path, dir.appendingPathComponent("tmp/llama-cpu/config.json").path)
        let (loaded, notes) = try PicotronConfig.load(from: file)
        XCTAssertEqual(loaded, created)
        XCTAssertEqual(notes, [])
        XCTAssertEqual(loaded.worldSize, 8)
        XCTAssertEqual(loaded.distributed.ppEngine, "afab")
        let model = loaded.model
        XCTAssertEqual([model.numHiddenLayers, model.numAttentionHeads, model.numKeyValueHeads], [2, 4, 2])
        XCTAssertEqual(loaded.checkpoint.saveDir, dir.appendingPathComponent("tmp/llama-cpu").path)
        XCTAssertEqual(loaded.logging.runName, "llama-cpu")
        XCTAssertEqual(created.summary, "model micro (2 layers, 4 heads, 2 kv heads) | dp 2 × pp 2 (afab) × "
                       + "cp 1 × tp 2 = 8 ranks | global batch 16 = mbs 4 × grad_acc 2 × dp 2, "
                       + "2048 tokens per step (seq_len 128) | 200 steps")

        // Every key of picotron's template is in the file (null where picotron writes null), keys sorted.
        let text = try String(contentsOf: file, encoding: .utf8)
        let written = try JSONParser.parse(Array(text.utf8))
        let template = try JSONParser.parse(Array(Self.picotronTemplate.utf8))
        guard case .object(let sections) = template else { return XCTFail("template is not an object") }
        for (section, value) in sections {
            guard case .object(let keys) = value else { continue }
            for (key, _) in keys { XCTAssertNotNil(written[section]?[key], "\(section).\(key) missing from the file") }
        }
        XCTAssert(text.contains(#""max_tokens" : null"#) || text.contains(#""max_tokens": null"#), text)
        XCTAssert(text.contains("\"micro\""), text)
        let sectionNames = ["checkpoint", "dataset", "distributed", "environment", "logging", "model", "training"]
        let order = sectionNames.map { text.range(of: "\"\($0)\"")!.lowerBound }
        XCTAssertEqual(order, order.sorted(), "top-level keys are sorted")
    }

    func testCreateConfigRefusesToOverwriteWithoutForce() throws {
        var options = CreateConfigOptions()
        (options.outDir, options.expName) = (dir.path, "run")
        _ = try options.run()
        options.mbs = 8
        assertThrows(["run/config.json already exists", "--force"]) { _ = try options.run() }
        XCTAssertEqual(try PicotronConfig.load(from: options.configFile).config.training.microBatchSize, 1)
        options.force = true
        _ = try options.run()
        XCTAssertEqual(try PicotronConfig.load(from: options.configFile).config.training.microBatchSize, 8)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("run").path)
        XCTAssertEqual(leftovers, ["config.json"], "no temporary file is left behind")
    }

    func testCreateConfigChecksTheModelAndTheValuesBeforeWriting() throws {
        var options = CreateConfigOptions()
        (options.outDir, options.expName) = (dir.path, "hub")
        options.modelName = "mistralai/Mistral-7B-v0.1"
        assertThrows(["Hub downloads are not available"]) { _ = try options.run() }
        options.modelName = "micro"
        options.tp = 3
        assertThrows(["num_attention_heads 4 is not divisible by distributed.tp_size 3"]) { _ = try options.run() }
        options.tp = 1
        options.ppEngine = "zigzag"
        assertThrows([#"distributed.pp_engine is "zigzag""#]) { _ = try options.run() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: options.configFile.path))
        options.ppEngine = "1f1b"
        (options.hfToken, options.useWandb, options.useCPU) = ("hf_x", true, true)
        let (_, config) = try options.run()
        XCTAssertEqual(config.environment.hfToken, "hf_x")
        XCTAssertTrue(config.distributed.useCPU)
        assertContains(config.notes, "note: logging.use_wandb true")
    }

    func testCodableRoundTrip() throws {
        var config = PicotronConfig()
        (config.training.maxTokens, config.dataset.tokenFile, config.logging.metricsFile) = (1000, "t.bin", "m.jsonl")
        config.model.numHiddenLayers = 3
        let data = try config.jsonData()
        XCTAssertEqual(try JSONDecoder().decode(PicotronConfig.self, from: data), config)
    }
}
