// `picotron train` as a user runs it: parallel runs match the single process, a resumed run
// repeats the uninterrupted losses, and bad input ends with one clear message and a non-zero
// status, never a crash, and never overwrites what was saved.

import Foundation
import XCTest

final class TrainCommandTests: TrainRunTestCase {
    /// A short run: 4 steps of 8 sequences × 32 bytes of the embedded corpus, no sample.
    func quick(_ out: String, _ extra: [String] = []) -> [String] {
        ["train", "--steps", "4", "--mbs", "8", "--seq-len", "32", "--sample", "0", "--log-every", "1",
         "--out-dir", tmp.appendingPathComponent(out).path] + extra
    }

    func testDataAndTensorParallelRunsMatchTheSingleProcess() throws {
        let single = try Picotron.run(quick("single"))
        XCTAssertEqual(single.status, 0, single.output)
        let dp = try Picotron.run(quick("dp", ["--dp", "2", "--mbs", "4"]))   // same global batch: 2 × 4
        XCTAssertEqual(dp.status, 0, dp.output)
        let tp = try Picotron.run(quick("tp", ["--tp", "2"]))
        XCTAssertEqual(tp.status, 0, tp.output)
        let both = try Picotron.run(quick("dptp", ["--dp", "2", "--tp", "2", "--mbs", "4"]))
        XCTAssertEqual(both.status, 0, both.output)
        let reference = try losses("single")
        XCTAssertLessThan(reference.last!, reference.first!)
        assertSame(try losses("dp"), reference, "dp 2")
        assertSame(try losses("tp"), reference, "tp 2")
        assertSame(try losses("dptp"), reference, "dp 2 × tp 2")
    }

    func testResumePrintsExactlyTheLossesOfTheUninterruptedRun() throws {
        let full = try Picotron.run(quick("full", ["--save-dir", "ckpt"]) + ["--config", try saveEveryTwoSteps()])
        XCTAssertEqual(full.status, 0, full.output)
        let checkpoint = tmp.appendingPathComponent("full/ckpt/step-000002").path
        let resumed = try Picotron.run(quick("resumed", ["--load-path", checkpoint]) + ["--config", try saveEveryTwoSteps()])
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertEqual(try losses("resumed"), Array(try losses("full")[2...]), "a resumed run must print the same losses bit for bit")
        let sample = try Picotron.run(["generate", "--checkpoint", tmp.appendingPathComponent("full/ckpt").path,
                                       "--max-new-tokens", "20"])
        XCTAssertEqual(sample.status, 0, sample.output)
        XCTAssertTrue(sample.output.hasPrefix("ROMEO:"), sample.output)
    }

    func testTensorParallelCheckpointsResumeUnderAnyLayout() throws {
        let every2 = try saveEveryTwoSteps()
        let full = try Picotron.run(quick("tpfull", ["--tp", "2", "--config", every2]))
        XCTAssertEqual(full.status, 0, full.output)
        let step2 = tmp.appendingPathComponent("tpfull/ckpt/step-000002").path
        // The checkpoint holds the whole model: transformers' layout, loadable as it is.
        XCTAssertTrue(FileManager.default.fileExists(atPath: step2 + "/model.safetensors"))
        let sameLayout = try Picotron.run(quick("tp2", ["--tp", "2", "--load-path", step2, "--config", every2]))
        XCTAssertEqual(sameLayout.status, 0, sameLayout.output)
        XCTAssertEqual(try losses("tp2"), Array(try losses("tpfull")[2...]), "tp 2 resumed from a tp 2 checkpoint")
        let single = try Picotron.run(quick("tp1", ["--load-path", step2, "--config", every2]))
        XCTAssertEqual(single.status, 0, single.output)
        assertSame(try losses("tp1"), Array(try losses("tpfull")[2...]), "one process resumed from a tp 2 checkpoint")
    }

    /// A config with checkpoints every 2 steps (the rest as the quick run's flags say).
    func saveEveryTwoSteps() throws -> String {
        let url = tmp.appendingPathComponent("every2.json")
        try Data(#"{"checkpoint": {"save_frequency": 2}}"#.utf8).write(to: url)
        return url.path
    }

    func testBadInputGivesOneClearMessageAndANonZeroStatus() throws {
        let broken = tmp.appendingPathComponent("broken.json")
        try Data("{\"training\": {\"seq_length\": 64,}".utf8).write(to: broken)
        let empty = tmp.appendingPathComponent("empty.txt")
        try Data().write(to: empty)
        let cases: [(args: [String], says: String)] = [
            (["train", "--config", tmp.appendingPathComponent("nope.json").path], "nope.json"),
            (["train", "--config", broken.path], "broken.json:1"),
            (quick("a", ["--mbs", "0"]), "micro_batch_size"),
            (quick("b", ["--seq-len", "1"]), "seq_length"),
            (quick("c", ["--text", empty.path]), "empty.txt"),
            (quick("d", ["--text", tmp.appendingPathComponent("missing.txt").path]), "missing.txt"),
            (quick("e", ["--model", "no-such-model"]), "no-such-model"),
            (quick("f", ["--tp", "3"]), "tp_size"),
            (quick("g", ["--dp", "2", "--ranks", "3"]), "world size"),
            (quick("h", ["--load-path", tmp.appendingPathComponent("nowhere").path]), "nowhere"),
        ]
        for (args, says) in cases {
            let r = try Picotron.run(args)
            XCTAssertNotEqual(r.status, 0, "\(args.joined(separator: " ")) should fail")
            XCTAssertFalse(r.crashed, "\(args.joined(separator: " ")) crashed: \(r.output)")
            XCTAssertTrue(r.output.contains(says), "\(args.joined(separator: " ")): the message should name \(says):\n\(r.output)")
        }
    }

    func testASecondRunNeverOverwritesSavedCheckpoints() throws {
        XCTAssertEqual(try Picotron.run(quick("kept")).status, 0)
        let saved = tmp.appendingPathComponent("kept/ckpt/step-000004/model.safetensors")
        let before = try Data(contentsOf: saved)
        let again = try Picotron.run(quick("kept", ["--seed", "7"]))
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("already holds checkpoints"), again.output)
        XCTAssertEqual(try Data(contentsOf: saved), before, "the saved model must be left as it was")
    }

    func testAModelSeqLengthBeyondItsPositionsIsRefused() throws {
        let dir = tmp.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = #"{"vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "#
            + #""num_attention_heads": 4, "max_position_embeddings": 16, "model_type": "llama"}"#
        try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
        let r = try Picotron.run(quick("pos", ["--model", dir.path]))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("max_position_embeddings 16"), r.output)
    }
}

/// Runs the built `picotron` executable.
enum Picotron {
    struct Result { let status: Int32; let output: String; let crashed: Bool }

    static var executable: URL {
        // The test bundle sits in the build folder next to the executables.
        var dir = Bundle.main.bundleURL
        for _ in 0..<3 where !FileManager.default.fileExists(atPath: dir.appendingPathComponent("picotron").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent("picotron")
    }

    /// Runs `picotron arguments` in `directory` (default: the test's own) to the end.
    static func run(_ arguments: [String], in directory: URL? = nil) throws -> Result {
        guard let (process, pipe) = try start(arguments, in: directory) else {
            return Result(status: -1, output: "", crashed: false)
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self),
                      crashed: process.terminationReason == .uncaughtSignal)
    }

    /// Starts `picotron arguments`; its output (stdout and stderr together) comes through the pipe.
    static func start(_ arguments: [String], in directory: URL? = nil) throws -> (Process, Pipe)? {
        let exe = executable
        guard FileManager.default.isExecutableFile(atPath: exe.path) else {
            XCTFail("no picotron executable at \(exe.path): build it first (swift build)")
            return nil
        }
        let process = Process()
        process.executableURL = exe
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return (process, pipe)
    }
}
