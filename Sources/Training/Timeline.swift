// Timelines of what overlaps what: an algorithm records labelled spans (backward, each bucket's
// all-reduce, the final wait; a pipeline stage's forward, a ring step) on a monotonic clock.
// Recording is all that lives here; the lessons draw them (LessonKit's `Timeline.render`).

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
