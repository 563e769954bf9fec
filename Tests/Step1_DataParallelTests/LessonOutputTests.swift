// The lesson executable is a tested example: run what `swift run lesson-dp --ranks 2` runs, on
// in-process ranks, and check its verification lines. (scripts/check-lesson-output.sh checks
// the whole output against the lesson text.)

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Step1Lesson
import Step1_DataParallel
import XCTest

final class LessonOutputTests: XCTestCase {
    func testLessonOutputVerifiesEverything() throws {
        let output = Output()
        beginTasks()
        let outcome = Result {
            try InProcessRanks.run(3) { world in
                try DataParallelLesson.run(world: world, options: .init()) { output.append($0) }
            }
        }
        if unfinished(["Step1."]) || unfinished("Step1.6") { return }   // any TODO of Step1.1–Step1.10 first
        if case .failure(let e) = outcome { return failTask("the lesson failed: \(e)\n\(output.text)") }
        let lines = output.text.split(separator: "\n").map(String.init)
        expect(lines.contains { $0.hasPrefix("Lesson 1 — data parallelism on 3 ranks") }, "the title:\n\(output.text)")
        expect(lines.contains { $0.hasPrefix("  0     0 1            6 7") }, "rank 0's rows:\n\(output.text)")
        let result = lines.first { $0.hasPrefix("  result") } ?? "  result (missing)"
        expectEqual(result.split(separator: " ").dropFirst().map(String.init), ["PASS", "PASS", "PASS"],
                    "the gradient checks:\n\(output.text)")
        expect(lines.contains { $0.hasPrefix("  naive, sync every micro-batch") }, "the traffic table:\n\(output.text)")
        expect(lines.contains { $0.hasPrefix("~ bucket 0 |") }, "the overlap timeline:\n\(output.text)")
        expect(lines.contains { $0.contains("parameters after 3 steps") && $0.hasSuffix("PASS; losses PASS") },
               "the training table:\n\(output.text)")
        expect(lines.contains { $0.hasPrefix("  1 ") && $0.contains("30144 ..< 60288") }, "ZeRO-1's slices:\n\(output.text)")
        expect(lines.contains { $0.contains("parameters after 3 steps") && $0.hasSuffix("PASS; losses PASS") }
                   && lines.contains { $0.hasPrefix("Training 3 steps with ZeRO-1") }, "ZeRO-1's training:\n\(output.text)")
        expectEqual(lines.last, "PASS: gradients, losses and parameters equal the single-process run, with and without ZeRO-1",
                    "the last line")
    }
}

/// Rank 0's output blocks, collected from its thread.
private final class Output: @unchecked Sendable {
    private let lock = NSLock()
    private var blocks: [String] = []
    func append(_ s: String) { lock.lock(); blocks.append(s); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return blocks.joined(separator: "\n") }
}
