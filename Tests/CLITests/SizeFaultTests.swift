// Sizes a user can get absurdly wrong, as a user types them: each must end quickly with one clear
// message and a non-zero status, never a trap, a crash in the allocator or a process that spins forever.

import Foundation
import XCTest

final class SizeFaultTests: XCTestCase {
    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-sizes-\(UUID())")
        try? FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    /// A one-step run without a sample, writing under the test's folder.
    func train(_ extra: [String]) -> [String] {
        ["train", "--steps", "1", "--sample", "0", "--out-dir", tmp.appendingPathComponent("run").path] + extra
    }

    /// A picotron config holding `json`, for `--config`.
    func config(_ json: String) throws -> String {
        let url = tmp.appendingPathComponent("config-\(UUID()).json")
        try Data(json.utf8).write(to: url)
        return url.path
    }

    /// Runs picotron and checks it fails cleanly within `seconds`, naming each of `says`.
    func assertRefused(_ args: [String], says: [String], within seconds: Double = 60, program: String = "picotron",
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Picotron.run(args, timeout: seconds, program: program)
        let command = args.joined(separator: " ")
        XCTAssertFalse(r.timedOut, "\(command) still ran after \(seconds) s", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "\(command) should fail", file: file, line: line)
        XCTAssertFalse(r.crashed, "\(command) crashed:\n\(r.output)", file: file, line: line)
        for s in says {
            XCTAssertTrue(r.output.contains(s), "\(command): the message should say \(s):\n\(r.output)",
                          file: file, line: line)
        }
    }

    // MARK: Item 7: sizes that made divisor listing spin forever

    func testHugeModelSizesAreRefusedAtOnce() throws {
        try assertRefused(train(["--config", try config(#"{"model": {"hidden_size": 1000000000001}}"#)]),
                          says: ["model.hidden_size is 1000000000001", "limit of 16777216"], within: 20)
        try assertRefused(train(["--config", try config(#"{"model": {"num_attention_heads": 4000000000000000000}}"#)]),
                          says: ["model.num_attention_heads", "limit of 65536"], within: 20)
        // Within the limits, a width the heads do not divide lists a few divisors near the asked heads.
        try assertRefused(train(["--config", try config(#"{"model": {"hidden_size": 16777215}}"#)]),
                          says: ["not divisible by num_attention_heads 4", "nearest 4)"], within: 20)
        // Flags are bounded the same way, and named as the user typed them.
        try assertRefused(train(["--seq-len", "100000000"]), says: ["training.seq_length is 100000000", "16777216"])
        try assertRefused(train(["--tp", "1000000"]), says: ["not divisible by distributed.tp_size 1000000",
                                                             "choose tp_size among 1, 2, 4"])
    }

    // MARK: Item 6: products of sizes that overflowed

    func testTokensPerStepThatOverflowIsRefused() throws {
        try assertRefused(train(["--mbs", "4611686018427387904", "--seq-len", "4"]),
                          says: ["tokens per optimizer step", "more than a 64-bit integer holds"])
        try assertRefused(train(["--grad-acc", "4611686018427387904", "--seq-len", "4"]),
                          says: ["training.gradient_accumulation_steps 4611686018427387904", "64-bit"])
        try assertRefused(train(["--dp", "4611686018427387904", "--tp", "4"]),
                          says: ["ranks (the world size)", "64-bit"])
    }

    // MARK: Item 6: a bucket size that trapped in the MB → floats conversion

    func testBucketSizesBeyondAnyModelAreRefused() throws {
        for mb in ["inf", "1e300", "nan"] {
            try assertRefused(train(["--dp", "2", "--bucket-mb", mb]), says: ["--bucket-mb", "at most 1048576"])
        }
        try assertRefused(["--bucket-mb", "inf"], says: ["--bucket-mb inf", "at most 1048576"], program: "lesson-dp")
    }

    // MARK: A mismatched grid is one message, not one per rank thread

    func testAGridThatDoesNotFitTheRanksIsReportedOnce() throws {
        let r = try Picotron.run(train(["--dp", "2", "--ranks", "3"]), timeout: 60)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertFalse(r.crashed, r.output)
        let message = "world size 3 != dp 2 × pp 1 × cp 1 × tp 1 (= 2)"
        XCTAssertEqual(r.output.components(separatedBy: message).count - 1, 1, "printed once:\n\(r.output)")
        XCTAssertTrue(r.output.contains("every rank (3) failed: "), r.output)
    }

    // MARK: Item 7: ranks beyond what the machine runs, and threads the system refuses

    func testInProcessRanksAreBoundedOnEveryCommand() throws {
        let says = ["100000 in-process ranks", "at most", "mpirun -np 100000"]
        try assertRefused(train(["--ranks", "100000"]), says: says, within: 30)
        try assertRefused(["selftest", "comm", "--ranks", "100000"], says: says, within: 30)
        try assertRefused(["comm-bench", "--ranks", "100000"], says: says, within: 30)
        try assertRefused(["--ranks", "100000"], says: says, within: 30, program: "lesson-dp")
        try assertRefused(["--ranks", "100000"], says: says, within: 30, program: "lesson-tp")
    }

    /// A rank's thread the system refuses ends the run with the reason, instead of a process
    /// asleep forever. As root `ulimit -u` is not enforced, so the address space is limited
    /// instead: 200 stacks of 64 MB cannot fit in 2 GB.
    func testAThreadTheSystemRefusesEndsTheRunWithTheReason() throws {
        let r = try Picotron.run(["selftest", "comm", "--ranks", "200", "--large-count", "1024"], timeout: 60,
                                 shell: "ulimit -v 2000000")
        XCTAssertFalse(r.timedOut, "still asleep after 60 s:\n\(r.output)")
        XCTAssertFalse(r.crashed, r.output)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("could not start rank ") && r.output.contains("lower --ranks"), r.output)
    }

    // MARK: Item 6: runs larger than the machine, refused before anything is allocated

    func testRunsThatCannotFitThisMachineAreRefusedWithTheNumbersAndTheFix() throws {
        let wide = try config(#"{"model": {"hidden_size": 1048576, "num_hidden_layers": 1000}}"#)
        try assertRefused(train(["--config", wide]),
                          says: ["memory: this run needs about", "PiB per rank", "use a smaller model", "--force"])
        let vocab = try config(#"{"model": {"vocab_size": 4000000000}}"#)
        try assertRefused(train(["--config", vocab]), says: ["TiB per rank", "activations", "but this machine has"])
        try assertRefused(train(["--mbs", "100000000"]), says: ["activations", "smaller micro-batch (--mbs)"])
        try assertRefused(train(["--mbs", "100000000", "--dp", "2"]), says: ["× 2 ranks on this machine"])
    }

    func testASmallRunIsNotRefused() throws {
        let r = try Picotron.run(train(["--mbs", "2", "--seq-len", "16"]), timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertFalse(r.output.contains("memory"), r.output)
    }
}

extension Picotron {
    struct BoundedResult { let status: Int32; let output: String; let crashed: Bool; let timedOut: Bool }

    /// `run(_:)` with a time limit: a process still running after `timeout` seconds is killed and
    /// reported as `timedOut`, so a regression to a hang fails the test instead of stalling it.
    /// `program` is picotron or another executable built beside it (`lesson-dp`). `shell` runs
    /// first in `/bin/sh` (e.g. `ulimit -v 2000000`), then the program replaces it.
    static func run(_ arguments: [String], timeout: Double, program: String = "picotron", shell: String? = nil,
                    environment extra: [String: String] = [:]) throws -> BoundedResult {
        let exe = executable.deletingLastPathComponent().appendingPathComponent(program)
        let process = Process()
        if let shell {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "\(shell) && exec \"$0\" \"$@\"", exe.path] + arguments
        } else {
            process.executableURL = exe
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment.merge(extra) { $1 }
        process.environment = environment
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-out-\(UUID())")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let timedOut = process.isRunning
        if timedOut { process.terminate() }
        process.waitUntilExit()
        try handle.close()
        let text = String(decoding: try Data(contentsOf: output), as: UTF8.self)
        return BoundedResult(status: process.terminationStatus, output: text,
                             crashed: !timedOut && process.terminationReason == .uncaughtSignal, timedOut: timedOut)
    }
}
