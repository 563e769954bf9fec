// Drawing timelines: the spans an algorithm recorded (Training's `Timeline`) as ASCII bars on
// one time axis, so "the communication hides behind the compute" is something you see.
//
//     ~ backward  |██████████████████████████████░░░░░| 0.00 – 8.41 ms
//     ~ bucket 0  |    ▒▒▒                            | 1.02 – 1.90 ms
//
// Every line depends on timing, so every line carries `LessonOutput.timingMark`.

import Foundation
import Training

extension Timeline {
    /// One line per span: label, a bar of `width` characters on the common axis, the times.
    /// Every line starts with `LessonOutput.timingMark` when `marked`.
    public func render(width: Int = 48, marked: Bool = true) -> String {
        guard !spans.isEmpty else { return "" }
        let t0 = min(0, spans.map(\.start).min()!), t1 = max(spans.map(\.end).max()!, t0 + 1e-6)
        let labelWidth = spans.map(\.label.count).max()!
        func column(_ t: Double) -> Int { min(width - 1, max(0, Int((t - t0) / (t1 - t0) * Double(width)))) }
        let lines = spans.map { s -> String in
            var bar = [Character](repeating: " ", count: width)
            let glyph: Character = s.kind == .compute ? "█" : s.kind == .communication ? "▒" : "░"
            for c in column(s.start)...max(column(s.start), column(s.end)) { bar[c] = glyph }
            let times = String(format: "%6.2f – %6.2f ms", s.start, s.end)
            let label = s.label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
            return "\(label) |\(String(bar))| \(times)" + (s.note.isEmpty ? "" : "  \(s.note)")
        }
        let text = lines.joined(separator: "\n")
        return marked ? LessonOutput.timing(text) : text
    }
}
