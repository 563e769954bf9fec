// Timelines of what overlaps what: a lesson records spans (backward, each bucket's all-reduce,
// the final wait, a pipeline stage's forward, a ring step) and prints them as ASCII bars on one
// time axis, so "the communication hides behind the compute" is something you see.
//
//     ~ backward  |██████████████████████████████░░░░░| 0.00 – 8.41 ms
//     ~ bucket 0  |    ▒▒▒                            | 1.02 – 1.90 ms
//
// Every line depends on timing, so every line carries `LessonOutput.timingMark`.

import Foundation

/// A set of labelled time spans, in milliseconds from an origin.
public struct Timeline: Sendable {
    /// What a span is, drawn with its own character: compute `█`, communication `▒`, waiting `░`.
    public enum Kind: Sendable { case compute, communication, waiting }

    public struct Span: Sendable {
        public var label: String
        public var start: Double, end: Double
        public var kind: Kind
        /// Free text after the times (e.g. what a bucket holds).
        public var note: String
        public init(_ label: String, start: Double, end: Double, kind: Kind, note: String = "") {
            (self.label, self.start, self.end, self.kind, self.note) = (label, start, end, kind, note)
        }
    }

    public var spans: [Span] = []

    public init(spans: [Span] = []) { self.spans = spans }

    /// Milliseconds on a monotonic clock, for recording spans.
    public static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }

    /// The same spans with times relative to `origin` (the moment the interesting part began).
    public func relative(to origin: Double) -> Timeline {
        Timeline(spans: spans.map { Span($0.label, start: $0.start - origin, end: $0.end - origin, kind: $0.kind,
                                         note: $0.note) })
    }

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

/// Records spans from several threads (a rank's compute thread and its communication watcher).
public final class TimelineRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var spans: [Timeline.Span] = []

    public init() {}

    public func record(_ span: Timeline.Span) {
        lock.lock(); spans.append(span); lock.unlock()
    }

    /// Forgets everything recorded (call at the start of the step you want to draw).
    public func reset() {
        lock.lock(); spans.removeAll(); lock.unlock()
    }

    /// What was recorded, in recording order.
    public var timeline: Timeline {
        lock.lock(); defer { lock.unlock() }
        return Timeline(spans: spans)
    }
}
