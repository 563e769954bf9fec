// Runs that end early, as a user meets them: Ctrl-C and SIGTERM save before exiting, a diverging
// run stops at the step it diverged and never saves NaN, a damaged or edited checkpoint is
// refused with its reason, and messages name the value (also past 32 bits).

import Foundation
import XCTest

final class InterruptTests: XCTestCase {
    var tmp: URL!
    let fm = FileManager.default
    override func setUp() {
        tmp = fm.temporaryDirectory.appendingPathComponent("picotron-int-\(UUID())")
        try? fm.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? fm.removeItem(at: tmp) }

    /// Starts `picotron arguments`; for each (marker, signal) waits until its output contains the
    /// marker, then sends the signal. Returns the exit status and the whole output.
    func interrupt(_ arguments: [String], _ steps: [(after: String, signal: Int32)]) throws -> (Int32, String) {
        guard let (process, pipe) = try Picotron.start(arguments) else { return (-1, "") }
        var output = Data()
        let deadline = Date(timeIntervalSinceNow: 120)
        for (marker, signal) in steps {
            while !String(decoding: output, as: UTF8.self).contains(marker), process.isRunning, Date() < deadline {
                output += pipe.fileHandleForReading.availableData
            }
            kill(process.processIdentifier, signal)
        }
        output += pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    func long(_ out: String, _ extra: [String] = []) -> [String] {
        ["train", "--steps", "4294967297", "--mbs", "8", "--seq-len", "64", "--sample", "300", "--log-every", "1",
         "--out-dir", tmp.appendingPathComponent(out).path] + extra
    }

    func testCtrlCFinishesTheStepSavesAndExitsOnEveryRank() throws {
        for (name, ranks, signal) in [("one", [String](), SIGINT), ("dp2", ["--dp", "2", "--mbs", "4"], SIGTERM)] {
            let (status, output) = try interrupt(long(name, ranks), [("[Step 2/", signal)])
            XCTAssertEqual(status, 128 + signal, "\(name):\n\(output)")
            // Step counts past 32 bits print as they are (not as -1 or a negative number).
            XCTAssertTrue(output.contains("4294967297 steps"), output)
            XCTAssertTrue(output.contains("[Step 2/4294967297]"), output)
            let stop = try XCTUnwrap(output.range(of: #"stopped after step (\d+)"#, options: .regularExpression), output)
            let step = Int(output[stop].split(separator: " ").last!)!
            let checkpoint = tmp.appendingPathComponent("\(name)/ckpt/\(String(format: "step-%06ld", step))")
            XCTAssertTrue(fm.fileExists(atPath: checkpoint.appendingPathComponent("trainer_state.json").path), output)
            let metrics = try String(contentsOf: tmp.appendingPathComponent("\(name)/metrics.jsonl"), encoding: .utf8)
            XCTAssertEqual(metrics.split(separator: "\n").count, step, "one metrics line per step done")
            XCTAssertTrue(fm.fileExists(atPath: tmp.appendingPathComponent("\(name)/loss.svg").path))
            XCTAssertFalse(output.contains("--- sample"), "a stopped run exits without sampling")
            XCTAssertEqual(output.components(separatedBy: "stopped after step").count, 2, "said once:\n\(output)")
        }
    }

    func testASecondSignalQuitsAtOnce() throws {
        // The second signal goes once the first has been handled (two signals sent together may
        // arrive as one: the kernel does not queue them).
        let (status, output) = try interrupt(long("twice", ["--mbs", "32", "--seq-len", "128"]),
                                             [("[Step 1/", SIGINT), ("stopping after this step", SIGINT)])
        XCTAssertEqual(status, 128 + SIGINT, output)
        XCTAssertFalse(output.contains("checkpoint:"), output)
    }

    func testDivergenceStopsAtItsStepAndSavesNothingNonFinite() throws {
        let every = tmp.appendingPathComponent("every.json")
        try Data(#"{"checkpoint": {"save_frequency": 1}}"#.utf8).write(to: every)
        let r = try Picotron.run(["train", "--steps", "6", "--mbs", "2", "--seq-len", "16", "--sample", "0", "--lr", "1e30",
                                  "--config", every.path, "--out-dir", tmp.appendingPathComponent("nan").path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.crashed, r.output)
        let said = try XCTUnwrap(r.output.range(of: #"diverged: at step (\d+)"#, options: .regularExpression), r.output)
        let step = Int(r.output[said].split(separator: " ").last!)!
        XCTAssertTrue(r.output.contains("lower the learning rate"), r.output)
        let saved = try fm.contentsOfDirectory(atPath: tmp.appendingPathComponent("nan/ckpt").path).filter { $0.hasPrefix("step-") }
        XCTAssertEqual(saved.sorted(), (1..<step).map { String(format: "step-%06ld", $0) }, "the steps before divergence only")
        let metrics = try String(contentsOf: tmp.appendingPathComponent("nan/metrics.jsonl"), encoding: .utf8)
        XCTAssertFalse(metrics.lowercased().contains("nan"), metrics)
    }

    /// A run of 2 steps with a checkpoint at each; returns the folder of step 2.
    func savedRun(_ name: String) throws -> URL {
        let every = tmp.appendingPathComponent("every.json")
        try Data(#"{"checkpoint": {"save_frequency": 1}}"#.utf8).write(to: every)
        let r = try Picotron.run(["train", "--steps", "2", "--mbs", "2", "--seq-len", "16", "--sample", "0",
                                  "--config", every.path, "--out-dir", tmp.appendingPathComponent(name).path])
        XCTAssertEqual(r.status, 0, r.output)
        return tmp.appendingPathComponent("\(name)/ckpt/step-000002")
    }

    func resume(_ path: URL, _ out: String) throws -> Picotron.Result {
        try Picotron.run(["train", "--steps", "4", "--mbs", "2", "--seq-len", "16", "--sample", "0",
                          "--load-path", path.path, "--out-dir", tmp.appendingPathComponent(out).path])
    }

    func testDamagedOrEditedCheckpointsAreRefusedWithTheirReason() throws {
        // Optimizer moments full of garbage (all bits set: NaN), as a bad disk or a bad copy leaves them.
        let garbage = try savedRun("garbage")
        let optimizer = garbage.appendingPathComponent("optimizer.safetensors")
        var bytes = try Data(contentsOf: optimizer)
        let header = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        bytes.replaceSubrange((8 + header)..<bytes.count, with: Data(repeating: 0xFF, count: bytes.count - 8 - header))
        try bytes.write(to: optimizer)
        var r = try resume(garbage, "g")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("cannot be resumed: AdamW's exp_avg of"), r.output)
        XCTAssertFalse(r.output.contains("[Step"), r.output)

        // NaN weights: generate refuses instead of printing garbage bytes.
        let model = garbage.appendingPathComponent("model.safetensors")
        bytes = try Data(contentsOf: model)
        let modelHeader = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        bytes.replaceSubrange((8 + modelHeader)..<(8 + modelHeader + 64), with: Data(repeating: 0xFF, count: 64))
        try bytes.write(to: model)
        r = try Picotron.run(["generate", "--checkpoint", garbage.path, "--max-new-tokens", "5"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("holds NaN"), r.output)

        // trainer_state.json edited: a negative step, a step that is not its folder's, a short history.
        let edits: [(String, (inout [String: Any]) -> Void, String)] = [
            ("negative", { $0["step"] = -5 }, "says step -5"),
            ("shifted", { $0["step"] = 1 }, "but its folder step-000002 is step 2"),
            ("history", { $0["losses"] = [4.0] }, "its loss history has 1 steps"),
        ]
        for (name, edit, says) in edits {
            let dir = try savedRun(name)
            let url = dir.appendingPathComponent("trainer_state.json")
            var state = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            edit(&state)
            try JSONSerialization.data(withJSONObject: state).write(to: url)
            let r = try resume(dir, name + "-resumed")
            XCTAssertNotEqual(r.status, 0, name)
            XCTAssertTrue(r.output.contains(says), "\(name): \(r.output)")
            XCTAssertFalse(fm.fileExists(atPath: tmp.appendingPathComponent("\(name)-resumed/ckpt/step-000004").path))
        }
    }

    func testAnIncompleteNewestCheckpointIsPassedOverAndNamed() throws {
        let step2 = try savedRun("partial")
        let save = step2.deletingLastPathComponent()
        try fm.createDirectory(at: save.appendingPathComponent("step-000009"), withIntermediateDirectories: true)
        var r = try resume(save, "p1")
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("resuming from step-000002; passed over step-000009"), r.output)
        r = try resume(save.appendingPathComponent("step-000009"), "p2")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("is not a complete checkpoint"), r.output)
        XCTAssertTrue(r.output.contains("--load-path \(step2.path)"), r.output)
    }

    func testMessagesNameTheValueNotTheParser() throws {
        let empty = tmp.appendingPathComponent("afile")
        try Data().write(to: empty)
        let f32 = tmp.appendingPathComponent("f32.safetensors")
        let header = Data(#"{"input_ids":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"labels":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]}}"#.utf8)
        let padded = header + Data(repeating: 0x20, count: (8 - header.count % 8) % 8)
        try (withUnsafeBytes(of: UInt64(padded.count).littleEndian) { Data($0) } + padded + Data(count: 16)).write(to: f32)
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LlamaTests/Fixtures/tied").path
        let cases: [(args: [String], says: String)] = [
            (["train", "--steps", "-5"], "total_train_steps is -5"),
            (["train", "--config", "/dev/null"], "/dev/null:1:1: malformed JSON: the file is empty"),
            (["train", "--out-dir", empty.path, "--steps", "1"], "is a file, not a folder"),
            (["reference", "--model", fixture, "--batch", f32.path], "input_ids is F32, but token ids are integers"),
        ]
        for (args, says) in cases {
            let r = try Picotron.run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertFalse(r.crashed, r.output)
            XCTAssertTrue(r.output.contains(says), "\(args.joined(separator: " ")): should say \(says):\n\(r.output)")
            XCTAssertFalse(r.output.contains("Usage:"), "a run-time failure, not a usage error:\n\(r.output)")
        }
    }
}
