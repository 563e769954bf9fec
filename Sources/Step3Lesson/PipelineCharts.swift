// Pictures of a pipeline schedule: each stage's forwards and backwards on one time axis, one row
// per stage (a Gantt chart), as text for the terminal and as SVG for a projector. Two clocks:
// unit time (forward 1, backward 2: what the algorithm orders, the same on every machine) and the
// measured one (milliseconds, marked as timing). The bubble is the idle share of the chart.
// Legend: pp = stages, v = chunks per stage, M = micro-batches, F m / B m = forward / backward of
// micro-batch m; with v > 1 chunks, `3b` is F3 on chunk 1 and `3B` its backward.

import Foundation
import LessonKit

/// One forward or backward of micro-batch `m` on a stage's chunk `k`.
public struct PipelineAction: Hashable, Sendable {
    public var forward: Bool, m: Int, k: Int

    /// From a trace label: `F3`, `B3`, `F3.1`.
    init?(label: String) {
        guard let first = label.first, first == "F" || first == "B" else { return nil }
        let parts = label.dropFirst().split(separator: ".").compactMap { Int($0) }
        guard let m = parts.first else { return nil }
        (forward, self.m, k) = (first == "F", m, parts.count > 1 ? parts[1] : 0)
    }

    init(forward: Bool, m: Int, k: Int) { (self.forward, self.m, self.k) = (forward, m, k) }

    /// `F3`, `B3`; with chunks, the micro-batch and the chunk's letter, lower case forward, upper
    /// case backward: `3a` (F3 on chunk 0), `3B` (B3 on chunk 1).
    func name(chunks v: Int) -> String {
        guard v > 1 else { return (forward ? "F" : "B") + "\(m)" }
        return "\(m)" + String(UnicodeScalar(UInt8((forward ? 97 : 65) + k)))
    }
}

/// An action placed on a stage's time axis.
public struct PlacedAction: Sendable {
    public var action: PipelineAction
    public var start: Double, end: Double
}

public enum PipelineChart {
    /// Each stage's actions, in its own order, placed in unit time: an action starts when its stage
    /// is free and its input exists (a forward needs the same micro-batch's forward on the previous
    /// virtual stage, a backward the next one's backward). Nil if the orders deadlock.
    public static func unitTime(orders: [[PipelineAction]], chunks v: Int) -> [[PlacedAction]]? {
        let pp = orders.count, last = pp * v - 1
        var done: [PipelineAction: Double] = [:], placed = orders.map { _ in [PlacedAction]() }
        var next = orders.map { _ in 0 }, free = orders.map { _ in 0.0 }
        func global(_ a: PipelineAction, _ s: Int) -> Int { a.k * pp + s }
        func key(_ forward: Bool, _ m: Int, _ c: Int) -> PipelineAction { PipelineAction(forward: forward, m: m, k: c) }
        var progress = true
        while progress {
            progress = false
            for s in 0 ..< pp where next[s] < orders[s].count {
                let a = orders[s][next[s]], c = global(a, s)
                let dependency = a.forward ? (c > 0 ? key(true, a.m, c - 1) : nil)
                    : (c < last ? key(false, a.m, c + 1) : key(true, a.m, c))
                guard let ready = dependency.map({ done[$0] }) ?? 0 else { continue }
                // A chunk holds 1/v of a stage's layers: its forward takes 1/v, its backward 2/v.
                let start = max(free[s], ready), end = start + (a.forward ? 1 : 2) / Double(v)
                placed[s].append(PlacedAction(action: a, start: start, end: end))
                (done[key(a.forward, a.m, c)], free[s], next[s]) = (end, end, next[s] + 1)
                progress = true
            }
        }
        return zip(next, orders).allSatisfy { $0 == $1.count } ? placed : nil
    }

    /// The idle share of the chart: 1 − busy time / (stages × the time the last stage finishes).
    public static func bubble(_ placed: [[PlacedAction]]) -> Double {
        let makespan = placed.flatMap { $0 }.map(\.end).max() ?? 0, origin = placed.flatMap { $0 }.map(\.start).min() ?? 0
        let busy = placed.flatMap { $0 }.reduce(0) { $0 + $1.end - $1.start }
        return makespan > origin ? 1 - busy / (Double(placed.count) * (makespan - origin)) : 0
    }

    /// One row per stage, `unit` characters per unit of time (unit time), each action drawn as its
    /// name padded to its length; idle time is dots.
    public static func text(_ placed: [[PlacedAction]], chunks v: Int, unit: Int = 3, scale: Double = 1) -> String {
        let origin = placed.flatMap { $0 }.map(\.start).min() ?? 0
        return placed.enumerated().map { s, row -> String in
            var line = ""
            for p in row {
                let from = Int(((p.start - origin) * scale * Double(unit)).rounded())
                let to = max(from + 1, Int(((p.end - origin) * scale * Double(unit)).rounded()))
                if line.count < from { line += String(repeating: "·", count: from - line.count) }
                let width = to - max(from, line.count)
                guard width > 0 else { continue }
                let name = p.action.name(chunks: v)
                line += name.count < width ? name + String(repeating: p.action.forward ? " " : "-", count: width - name.count)
                    : String(name.prefix(width))
            }
            return "stage \(s) |" + line + "|"   // closed, so the output check masks a measured row's bars
        }.joined(separator: "\n")
    }

    /// The chart as an SVG picture: forwards blue, backwards green, one lane per stage.
    public static func svg(_ placed: [[PlacedAction]], chunks v: Int, title: String, unitName: String) -> String {
        let origin = placed.flatMap { $0 }.map(\.start).min() ?? 0
        let span = max((placed.flatMap { $0 }.map(\.end).max() ?? 1) - origin, 1e-9)
        let (left, lane, width) = (70.0, 34.0, 900.0)
        let height = 50 + lane * Double(placed.count) + 30
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(left + width + 20))" height="\(Int(height))" \
            font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="15">\(title)</text>

            """
        for (s, row) in placed.enumerated() {
            let y = 40 + lane * Double(s)
            out += "<text x=\"10\" y=\"\(y + lane / 2 + 4)\">stage \(s)</text>\n"
            for p in row {
                let x = left + (p.start - origin) / span * width, w = max(1, (p.end - p.start) / span * width)
                let fill = p.action.forward ? "#8fb8e8" : "#9ad29a"
                out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\" stroke=\"white\"/>",
                              x, y, w, lane - 6, fill)
                out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n",
                              x + w / 2, y + lane / 2 + 1, p.action.name(chunks: v))
            }
        }
        out += "<text x=\"\(left)\" y=\"\(height - 10)\">time (\(unitName)); idle share (bubble) "
            + String(format: "%.1f%%", 100 * bubble(placed)) + "</text>\n</svg>\n"
        return out
    }
}
