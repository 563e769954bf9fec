// What a run reports: one progress line per step, one JSON line per step in a metrics file,
// and a loss-curve picture at the end.

import Foundation

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
        return String(format: "[Step %d/%d] Loss: %.4f | LR: %.2e | Grad norm: %.3f | Tokens/s: %@ | Tokens: %@ | MFU: %.1f%%%@ | ETA: %@",
                      step, totalSteps, loss, lr, gradNorm, Self.human(tokensPerSecond), Self.human(Double(tokensSeen)),
                      100 * mfu, memory, Self.duration(eta))
    }

    static func human(_ x: Double) -> String {
        x >= 1e6 ? String(format: "%.2fM", x / 1e6) : x >= 1e3 ? String(format: "%.1fK", x / 1e3) : String(format: "%.0f", x)
    }

    static func duration(_ s: Double) -> String {
        s >= 3600 ? String(format: "%dh%02dm", Int(s) / 3600, Int(s) % 3600 / 60)
            : s >= 60 ? String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) : String(format: "%.0fs", s)
    }
}

/// Appends one JSON object per line (JSON Lines) and flushes each, so a crash keeps every step.
public final class MetricsWriter {
    private let handle: FileHandle
    public let url: URL

    /// Creates (or, when resuming, appends to) the metrics file.
    public init(url: URL, append: Bool) throws {
        self.url = url
        let fm = FileManager.default
        try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !append || !fm.fileExists(atPath: url.path) {
            guard fm.createFile(atPath: url.path, contents: nil) else {
                throw TrainingError.config("cannot create the metrics file \(url.path); check the folder is writable")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }

    public func write(_ m: StepMetrics) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try handle.write(contentsOf: encoder.encode(m) + Data("\n".utf8))
    }

    deinit { try? handle.close() }
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
