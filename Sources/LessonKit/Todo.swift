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
}
