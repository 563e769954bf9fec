// The exercise track's TODO marker. An unfinished exercise must compile, must not crash the
// test run, and must fail its own test with a message that names the task and where to read.
// So a TODO does not trap: it records itself and returns a harmless value; the step's tests
// ask `Todo.pending` first and fail with the task's message.

import Foundation

public enum Todo {
    /// One unfinished task: its id (`Step1.2`), what to write, and the lesson section to read.
    public struct Task: Hashable, Sendable, CustomStringConvertible {
        public let id: String
        public let title: String
        public let lesson: String
        public var description: String { "\(id): \(title) is not written yet — read \(lesson), then fill the TODO" }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var hit = Set<Task>()

    /// Marks a TODO as reached. Call it where the student's code goes, then return a value that
    /// keeps the program running (an unchanged gradient, a zero tensor).
    public static func reached(_ id: String, _ title: String, lesson: String) {
        lock.lock(); defer { lock.unlock() }
        hit.insert(Task(id: id, title: title, lesson: lesson))
    }

    /// The TODOs reached so far whose id starts with `prefix` (e.g. "Step1." or "Step1.3").
    public static func pending(_ prefix: String = "") -> [Task] {
        lock.lock(); defer { lock.unlock() }
        return hit.filter { $0.id.hasPrefix(prefix) }.sorted { $0.id < $1.id }
    }

    /// Forgets the TODOs reached (tests call it before running the code under test).
    public static func reset() {
        lock.lock(); defer { lock.unlock() }
        hit.removeAll()
    }

    /// The failure message for a test of task `id`: its own TODO if reached, else the first
    /// reached TODO with `prefix` that comes *before* `id` (a task it builds on: `Step1.5` builds
    /// on `Step1.1 … Step1.4`), else nil (go on and compare with the reference). Later tasks the
    /// code passed through are ignored: their harmless stand-ins do not affect what this test
    /// checks. Every message contains "is not written yet", which is how
    /// `scripts/check-exercises.sh` tells a TODO failure from a real one.
    public static func failure(task id: String, prefix: String) -> String? {
        let reached = pending(prefix)
        if let own = reached.first(where: { $0.id == id }) { return own.description }
        if let earlier = reached.first(where: { order($0.id).lexicographicallyPrecedes(order(id)) }) {
            return "\(id) builds on \(earlier.id) — \(earlier.description)"
        }
        return nil
    }

    /// `Step2.10` → [2, 10], so tasks sort by number, not by text.
    public static func order(_ id: String) -> [Int] {
        id.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
    }
}
