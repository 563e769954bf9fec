// The lesson executable's logic (`swift run lesson-tp`), run in-process: its verification lines
// must all say PASS and its traffic lines must match the formula.

import Distributed
import ExerciseKit
import Foundation
import LessonKit
import LessonTesting
import Step2Lesson
import Step2_TensorParallel
import XCTest

final class LessonRunTests: XCTestCase {
    func testLessonOutputOnTwoRanks() throws {
        if try tasksNotReady() { return }
        beginTasks()
        let lines = LessonLines()
        var options = TensorParallelLesson.Options()
        options.timing = false
        _ = try? InProcessRanks.run(2) { world in
            try TensorParallelLesson.run(world: world, options: options) { lines.add($0) }
        }
        if unfinished(["Step2."]) { return }
        let text = lines.text
        for expected in ["Lesson 2 — tensor parallelism on 2 ranks (in-process)",
                         "PASS: tensor parallel on 2 ranks equals the single-process model"] {
            XCTAssertTrue(text.contains(expected), "missing line '\(expected)' in:\n\(text.joined(separator: "\n"))")
        }
        let verify = text.filter { $0.hasSuffix("PASS") || $0.hasSuffix("FAIL") }
        XCTAssertGreaterThanOrEqual(verify.count, 10, "verification table:\n\(text.joined(separator: "\n"))")
        for line in verify { XCTAssertTrue(line.hasSuffix("PASS"), line) }
        let traffic = text.filter { $0.contains("allReduce") || $0.contains("allGather") || $0.contains("reduceScatter") }
        XCTAssertEqual(traffic.count, 3 + 6, "forward model, forward loss, backward: one line each; sequence parallel: "
                       + "two in the forward (reduce-scatter, all-gather), the loss's, three in the backward")
        for line in traffic { XCTAssertTrue(line.hasSuffix("="), "traffic differs from the formula: \(line)") }
        XCTAssertTrue(text.contains { $0.hasPrefix("  saved") && $0.hasSuffix("=") }, "the graph's saving equals the formula")
        XCTAssertTrue(text.contains { $0.hasPrefix("  rank") == false && $0.contains("q_proj") && $0.contains("(heads 0-3)") })
    }
}
