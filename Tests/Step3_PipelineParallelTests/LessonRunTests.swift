// `lesson-pp`'s report on in-process ranks: every engine verified, its unit-time bubble equal to
// the formula, and the activations each schedule holds as the lesson says.

import Distributed
import LessonKit
import LessonTesting
import Step3Lesson
import XCTest

final class LessonRunTests: XCTestCase {
    func testLessonOnFourStages() throws {
        beginTasks()
        let lines = LessonLines()
        _ = try? InProcessRanks.run(4) { world in   // not onRanks: a failed check on the exercise track is expected
            try PipelineLesson.run(world: world, options: PipelineLesson.Options()) { lines.add($0) }
        }
        if unfinished(["Step3."]) { return }
        let text = lines.text
        XCTAssertTrue(text.contains("PASS: every engine on 4 stages equals the single-process model"), text.joined(separator: "\n"))
        let verified = text.filter { $0.hasSuffix("PASS") || $0.hasSuffix("FAIL") }
        XCTAssertEqual(verified.count, 3, "AFAB, 1F1B and interleaved:\n\(text.joined(separator: "\n"))")
        // The unit-time chart's idle share equals the formula, for every engine.
        let bubbles = text.filter { $0.hasPrefix("  bubble:") }
        XCTAssertEqual(bubbles.count, 3)
        for line in bubbles {
            let percents = line.matches(of: #/([0-9.]+)%/#).map { String($0.1) }
            XCTAssertEqual(percents.count, 2, line)
            XCTAssertEqual(percents.first, percents.last, "the chart's bubble and the formula differ: \(line)")
        }
        // Micro-batches held: AFAB all 8 on every stage, 1F1B p − s, interleaved 2(p − s − 1) + (v − 1)p + 1.
        func held(_ engine: String) -> [String] {
            (text.first { $0.hasPrefix("  \(engine)") && $0.contains("MB") || $0.hasPrefix("  \(engine)") && $0.contains("KB") } ?? "")
                .matches(of: #/(\d+): /#).map { String($0.1) }
        }
        XCTAssertEqual(held("AFAB"), ["8", "8", "8", "8"])
        XCTAssertEqual(held("1F1B"), ["4", "3", "2", "1"])
        XCTAssertEqual(held("interleaved"), ["11", "9", "7", "5"])
    }
}
