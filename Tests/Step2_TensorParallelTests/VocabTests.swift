// Tasks 2.7 and 2.8: the vocab-parallel embedding and cross-entropy against the ordinary ones.
// Legend: N = tokens, C = hidden, V = vocabulary, tp = ranks.

import Distributed
import ExerciseKit
import LessonKit
import LessonTesting
import Llama
import Step2Lesson
import Step2_TensorParallel
import TensorCore
import XCTest

final class VocabTests: XCTestCase {
    /// Task 2.7: tokens outside a rank's shard contribute zeros, the all-reduce (g) fills in the
    /// owner's rows; backward touches only owned rows (the lookup is probed alone first).
    func testStep2_7_vocabParallelEmbedding() throws {
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = try TaskChecks.embedding(tp: tp)
            if unfinished("Step2.7") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }

    /// Task 2.8: the loss and each rank's logit-column gradient, with ignored rows, large logits on
    /// every rank and one logit of 90 (the max must be global and a max, or exp over- or underflows).
    func testStep2_8_vocabParallelCrossEntropy() throws {
        for tp in [1, 2, 4] {
            beginTasks()
            let checks = try TaskChecks.crossEntropy(tp: tp)
            if unfinished("Step2.8") { return }
            assertPass(checks, "tp \(tp): ")
        }
    }
}
