// Where `picotron train` writes, as a user runs it: every combination of --out-dir, --metrics-out
// and checkpoint.save_dir works; a name that is a symbolic link or a device is written through,
// never replaced; nothing an earlier run wrote is truncated, repeated or left half-written.

import Foundation
import XCTest

final class OutputPathTests: XCTestCase {
    var tmp: URL!
    let fm = FileManager.default
    override func setUp() {
        tmp = fm.temporaryDirectory.appendingPathComponent("picotron-out-\(UUID())")
        try? fm.createDirectory(at: tmp, withIntermediateDirectories: true)
    }
    override func tearDown() { try? fm.removeItem(at: tmp) }

    /// A run of `steps` steps of 2 × 16 bytes, no sample.
    func tiny(_ steps: Int = 1) -> [String] {
        ["train", "--steps", "\(steps)", "--mbs", "2", "--seq-len", "16", "--sample", "0"]
    }

    func config(_ name: String, _ json: String) throws -> String {
        let url = tmp.appendingPathComponent(name)
        try Data(json.utf8).write(to: url)
        return url.path
    }

    func lines(_ url: URL) throws -> [String] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast().map(String.init)
    }

    func steps(_ url: URL) throws -> [Int] {
        try lines(url).map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (object["step"] as! NSNumber).intValue
        }
    }

    func testEveryCombinationOfOutDirMetricsOutAndSaveDirWorks() throws {
        var case_ = 0
        for outDir in [true, false] {
            for metrics in ["none", "relative", "absolute"] {
                for save in ["relative", "absolute"] {
                    case_ += 1
                    let cwd = tmp.appendingPathComponent("cwd\(case_)")
                    try fm.createDirectory(at: cwd, withIntermediateDirectories: true)
                    let saveDir = save == "relative" ? "ckpt" : tmp.appendingPathComponent("abs\(case_)").path
                    var args = tiny() + ["--config", try config("c\(case_).json", #"{"checkpoint": {"save_dir": "\#(saveDir)"}}"#)]
                    if outDir { args += ["--out-dir", "run"] }
                    let absoluteMetrics = tmp.appendingPathComponent("m\(case_).jsonl")
                    if metrics == "relative" { args += ["--metrics-out", "m.jsonl"] }
                    if metrics == "absolute" { args += ["--metrics-out", absoluteMetrics.path] }
                    let what = "out-dir \(outDir), metrics \(metrics), save_dir \(save)"
                    let r = try Picotron.run(args, in: cwd)
                    XCTAssertEqual(r.status, 0, "\(what):\n\(r.output)")
                    // The run folder: the one named, or the one runs/<time> made.
                    let runDir = outDir ? cwd.appendingPathComponent("run")
                        : cwd.appendingPathComponent("runs").appendingPathComponent(
                            (try? fm.contentsOfDirectory(atPath: cwd.appendingPathComponent("runs").path).first) ?? "?")
                    XCTAssertTrue(fm.fileExists(atPath: runDir.appendingPathComponent("loss.svg").path), what)
                    let metricsFile = metrics == "none" ? runDir.appendingPathComponent("metrics.jsonl")
                        : metrics == "relative" ? cwd.appendingPathComponent("m.jsonl") : absoluteMetrics
                    XCTAssertEqual(try? steps(metricsFile), [1], what)
                    let checkpoint = (save == "relative" ? runDir.appendingPathComponent("ckpt") : URL(fileURLWithPath: saveDir))
                        .appendingPathComponent("step-000001/model.safetensors")
                    XCTAssertTrue(fm.fileExists(atPath: checkpoint.path), "\(what): no \(checkpoint.path)")
                }
            }
        }
    }

    func testLinksAndDevicesAreWrittenThroughNeverReplaced() throws {
        // A link to a file: the file gets the lines, the link stays a link.
        let target = tmp.appendingPathComponent("kept/target.jsonl")
        try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let link = tmp.appendingPathComponent("link.jsonl")
        try fm.createSymbolicLink(atPath: link.path, withDestinationPath: target.path)
        var r = try Picotron.run(tiny(2) + ["--out-dir", tmp.appendingPathComponent("a").path, "--metrics-out", link.path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: link.path), target.path, "the link must stay a link")
        XCTAssertEqual(try steps(target), [1, 2])

        // A link to a device: written through (a regression would put a regular file where the link is).
        let toNull = tmp.appendingPathComponent("null.jsonl")
        try fm.createSymbolicLink(atPath: toNull.path, withDestinationPath: "/dev/null")
        r = try Picotron.run(tiny() + ["--out-dir", tmp.appendingPathComponent("b").path, "--metrics-out", toNull.path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: toNull.path), "/dev/null")

        // The same for `reference --grads-out`, and a directory is refused by name.
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LlamaTests/Fixtures/tied")
        let gradsTarget = tmp.appendingPathComponent("kept/grads.safetensors")
        let gradsLink = tmp.appendingPathComponent("grads.safetensors")
        try fm.createSymbolicLink(atPath: gradsLink.path, withDestinationPath: gradsTarget.path)
        for out in [gradsLink, toNull] {
            r = try Picotron.run(["reference", "--model", fixture.path, "--batch", fixture.appendingPathComponent("batch.safetensors").path,
                                  "--grads-out", out.path])
            XCTAssertEqual(r.status, 0, r.output)
        }
        XCTAssertNotNil(try? fm.destinationOfSymbolicLink(atPath: gradsLink.path), "the link must stay a link")
        XCTAssertGreaterThan((try fm.attributesOfItem(atPath: gradsTarget.path)[.size] as? Int) ?? 0, 1000)
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: toNull.path), "/dev/null")
        r = try Picotron.run(["reference", "--model", fixture.path, "--batch", fixture.appendingPathComponent("batch.safetensors").path,
                              "--grads-out", tmp.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("is a directory"), r.output)
    }

    func testAResumedRunWritesEachStepOnceAndAFreshRunKeepsOldMetrics() throws {
        let every2 = try config("every2.json", #"{"checkpoint": {"save_frequency": 2}}"#)
        let run = tmp.appendingPathComponent("run")
        var r = try Picotron.run(tiny(4) + ["--config", every2, "--out-dir", run.path])
        XCTAssertEqual(r.status, 0, r.output)
        let metrics = run.appendingPathComponent("metrics.jsonl")
        let original = try lines(metrics)
        // As if the process had died after step 4 but before its checkpoint, mid-way through a line.
        try fm.removeItem(at: run.appendingPathComponent("ckpt/step-000004"))
        let handle = try FileHandle(forWritingTo: metrics)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"grad_norm":"#.utf8))
        try handle.close()
        r = try Picotron.run(tiny(4) + ["--config", every2, "--out-dir", run.path, "--load-path", run.appendingPathComponent("ckpt").path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("dropped 3 line(s) past step 2"), r.output)
        XCTAssertEqual(try steps(metrics), [1, 2, 3, 4], "every step once, in order")
        func loss(_ line: String) -> String { String(line.split(separator: ",").first { $0.hasPrefix("\"loss\"") } ?? "") }
        XCTAssertEqual(try lines(metrics).map(loss), original.map(loss), "the redone steps have the same losses")

        // A fresh run into the same folder (checkpoints elsewhere) keeps the file as it was.
        let before = try Data(contentsOf: metrics)
        let elsewhere = try config("elsewhere.json", #"{"checkpoint": {"save_dir": "\#(tmp.appendingPathComponent("other").path)"}}"#)
        r = try Picotron.run(tiny(1) + ["--config", elsewhere, "--out-dir", run.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("already holds 4 lines of an earlier run"), r.output)
        XCTAssertFalse(r.output.contains("[Step 1/"), "refused before training:\n\(r.output)")
        XCTAssertEqual(try Data(contentsOf: metrics), before)
    }

    func testUnfinishedSavesOfDeadProcessesAreRemoved() throws {
        let run = tmp.appendingPathComponent("run")
        let save = run.appendingPathComponent("ckpt")
        var r = try Picotron.run(tiny(2) + ["--config", try config("e1.json", #"{"checkpoint": {"save_frequency": 1}}"#),
                                             "--out-dir", run.path])
        XCTAssertEqual(r.status, 0, r.output)
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        let host = String(cString: name).replacingOccurrences(of: ".", with: "_")
        // What kill -9 during a save leaves: the older uuid tag, and the host.pid tag of a dead process.
        // A process that is alive (this test) may be saving right now: its folder stays.
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = [".step-000002.\(UUID().uuidString).tmp", ".step-000002.\(host).\(dead.processIdentifier).tmp"]
        let alive = ".step-000002.\(host).\(getpid()).tmp"
        for leftover in stale + [alive] {
            try fm.createDirectory(at: save.appendingPathComponent(leftover), withIntermediateDirectories: true)
            try Data(count: 1024).write(to: save.appendingPathComponent(leftover).appendingPathComponent("model.safetensors"))
        }
        r = try Picotron.run(tiny(3) + ["--config", try config("e1.json", #"{"checkpoint": {"save_frequency": 1}}"#),
                                        "--out-dir", run.path, "--load-path", save.path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("removed 2 unfinished checkpoint folder(s)"), r.output)
        let left = try fm.contentsOfDirectory(atPath: save.path).sorted()
        XCTAssertEqual(left, [alive, "step-000001", "step-000002", "step-000003"])
    }
}
