// The whole model, tensor-parallel on 1, 2 and 4 ranks, against the single-process reference:
// loss, logits, every gradient shard, the parameters after AdamW steps, dp × tp together, the
// model built straight from the seed, the divisibility error, and the helpers the training loop
// calls (full parameters, gradient norm).

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import Training
import XCTest

final class ModelTests: XCTestCase {
    static let tasks = ["Step2."]

    func verifyStep(tp: Int, tied: Bool, gatherLogits: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        if try tasksNotReady(file: file, line: line) { return }
        beginTasks()
        var config = LessonProblem.lessonConfig
        config.tieWordEmbeddings = tied
        let problem = LessonProblem(config: config)
        let perRank = try onRanks(tp) { comm in
            try TensorParallelCheck.step(problem, comm: comm, gatherLogits: gatherLogits)
        }
        if unfinished(Self.tasks, file: file, line: line) { return }
        assertPass(perRank.enumerated().flatMap { r, cs in cs.map { Check(rank: r, comparison: $0) } },
                   "tp \(tp)\(tied ? " tied" : ""): ", file: file, line: line)
    }

    func testModelTP1() throws { try verifyStep(tp: 1, tied: false) }
    func testModelTP2() throws { try verifyStep(tp: 2, tied: false) }
    func testModelTP4() throws { try verifyStep(tp: 4, tied: false) }
    func testTiedModelTP2() throws { try verifyStep(tp: 2, tied: true) }
    func testTiedModelTP4() throws { try verifyStep(tp: 4, tied: true) }
    func testGatheredLogitsTP2() throws { try verifyStep(tp: 2, tied: false, gatherLogits: true) }
}
