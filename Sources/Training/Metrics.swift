// What a run reports: one progress line per step, one JSON line per step in a metrics file,
// and a loss-curve picture at the end.

import Formats
import Foundation
import Llama

/// One optimizer step's measurements.
public struct StepMetrics: Codable, Sendable {
    public var step: Int
    public var loss: Float
    public var lr: Double
    public var gradNorm: Double
    public var tokensPerSecond: Double
    public var tokensSeen: Int
    public var mfu: Double
    public var memoryBytes: Int?
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case step, loss, lr, seconds
        case gradNorm = "grad_norm", tokensPerSecond = "tokens_per_second", tokensSeen = "tokens_seen"
        case mfu, memoryBytes = "memory_bytes"
    }

    /// A picotron-style progress line, with an ETA.
    public func line(totalSteps: Int, eta: Double) -> String {
        let memory = memoryBytes.map { String(format: " | Memory: %.0f MB", Double($0) / 1_048_576) } ?? ""
        return String(format: "[Step %ld/%ld] Loss: %.4f | LR: %.2e | Grad norm: %.3f | Tokens/s: %@ | Tokens: %@ | MFU: %.1f%%%@ | ETA: %@",
                      step, totalSteps, loss, lr, gradNorm, Self.human(tokensPerSecond), Self.human(Double(tokensSeen)),
                      100 * mfu, memory, Self.duration(eta))
    }

    static func human(_ x: Double) -> String {
        x >= 1e6 ? String(format: "%.2fM", x / 1e6) : x >= 1e3 ? String(format: "%.1fK", x / 1e3) : String(format: "%.0f", x)
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite, s < 3.6e9 else { return "over 10⁶ h" }   // Int(s) below must not trap
        return s >= 3600 ? String(format: "%ldh%02ldm", Int(s) / 3600, Int(s) % 3600 / 60)
            : s >= 60 ? String(format: "%ldm%02lds", Int(s) / 60, Int(s) % 60) : String(format: "%.0fs", s)
    }
}

/// Appends one JSON object per line (JSON Lines), one `write(2)` per line, so a crash keeps every
/// step and a reader never sees half a line.
///
/// The file is the user's: it is opened through its symbolic links and a device is written
/// through (`--metrics-out /dev/null`), never replaced. A fresh run refuses a file that already
/// holds an earlier run's lines; a resumed run first drops the lines past its checkpoint (a run
/// that went on after it was saved, then died) and a half-written last line, so every step appears
/// once. A write that fails (a full disk) is taken back to the last whole line before it throws.
public final class MetricsWriter {
    public let url: URL
    /// Lines dropped when resuming: steps after the checkpoint, and a half-written last line.
    public private(set) var dropped = 0
    private let fd: Int32
    private let isRegularFile: Bool

    /// - Parameter step: the checkpoint's step when resuming, nil for a fresh run.
    public init(url: URL, resumingAt step: Int?) throws {
        self.url = url
        func fail(_ problem: String, _ fix: String) -> TrainingError {
            TrainingError.config("metrics file \(url.path): \(problem); \(fix)")
        }
        let (path, target) = try OutputFile.resolve(url.path)
        if target == .directory { throw fail("is a directory", "name a file (--metrics-out)") }
        do {
            try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
        } catch {
            throw fail("cannot create its folder (\(OutputFile.describe(error)))", "choose another --metrics-out or --out-dir")
        }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else {
            throw fail("cannot open it for writing (\(String(cString: strerror(errno))))", "check that its folder is writable")
        }
        isRegularFile = target != .special
        guard isRegularFile else { return }
        let existing = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
        guard let step else {
            if !existing.isEmpty {
                close(fd)
                let lines = existing.split(separator: UInt8(ascii: "\n")).count
                throw fail("already holds \(lines) lines of an earlier run, kept as they are",
                           "choose another --out-dir (or --metrics-out), remove the file, or resume that run with --load-path")
            }
            return
        }
        // Keep the whole lines of steps up to the checkpoint's; cut the file after the last of them.
        var keep = 0, offset = 0
        for line in existing.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let end = offset + line.count + 1
            defer { offset = end }
            guard end <= existing.count else { break }   // no newline: half a line
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let s = (object["step"] as? NSNumber)?.intValue, s <= step else { break }
            keep = end
        }
        if keep < existing.count {
            dropped = existing[keep...].split(separator: UInt8(ascii: "\n")).count
            guard ftruncate(fd, off_t(keep)) == 0 else {
                close(fd)
                throw fail("cannot drop the lines past step \(step) (\(String(cString: strerror(errno))))",
                           "check that it is writable")
            }
        }
    }

    public func write(_ m: StepMetrics) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // NaN and infinity are not JSON; a diverging run stops before it gets here, but a metric
        // such as the throughput of a step timed at zero seconds must never stop the run.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf",
                                                                      nan: "nan")
        let line = try encoder.encode(m) + Data("\n".utf8)
        let before = isRegularFile ? lseek(fd, 0, SEEK_END) : -1
        let written = line.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else {
            let reason = written < 0 ? String(cString: strerror(errno)) : "only \(written) of \(line.count) bytes written"
            if before >= 0 { _ = ftruncate(fd, before) }   // no half line left behind
            throw TrainingError.data("cannot append step \(m.step) to the metrics file \(url.path) (\(reason))")
        }
    }

    deinit { close(fd) }
}

/// Draws the loss per step as an SVG line chart, with the uniform-guess level as a reference.
public enum LossCurve {
    public static func svg(losses: [Float], title: String, uniformLoss: Float? = nil) -> String {
        let (w, h, left, bottom, top, right) = (640.0, 360.0, 56.0, 36.0, 28.0, 16.0)
        let finite = losses.filter { $0.isFinite }
        let maxY = Double(max(finite.max() ?? 1, uniformLoss ?? 0)) * 1.05
        let minY = max(0, Double(finite.min() ?? 0) * 0.9)
        let n = max(losses.count - 1, 1)
        func x(_ i: Int) -> Double { left + (w - left - right) * Double(i) / Double(n) }
        func y(_ v: Double) -> Double { top + (h - top - bottom) * (1 - (v - minY) / max(maxY - minY, 1e-9)) }
        let points = losses.enumerated().filter { $0.element.isFinite }
            .map { String(format: "%.1f,%.1f", x($0.offset), y(Double($0.element))) }.joined(separator: " ")
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="18" font-size="14">\(title)</text>
            <line x1="\(left)" y1="\(h - bottom)" x2="\(w - right)" y2="\(h - bottom)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(h - bottom)" stroke="black"/>
            <text x="\((w + left) / 2)" y="\(h - 6)" text-anchor="middle">step (1 … \(losses.count))</text>

            """
        for i in 0...4 {   // y-axis ticks
            let v = minY + (maxY - minY) * Double(i) / 4
            svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", left - 6, y(v) + 4, v)
        }
        if let u = uniformLoss {
            svg += String(format: "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"gray\" stroke-dasharray=\"4 4\"/>\n",
                          left, y(Double(u)), w - right, y(Double(u)))
            svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" fill=\"gray\">uniform guess %.2f</text>\n",
                          w - right, y(Double(u)) - 4, u)
        }
        svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"\(points)\"/>\n</svg>\n"
        return svg
    }
}
