// What Step 2's tests add to the shared vocabulary (LessonTesting): the reference gradients of the
// lesson problem.

import LessonKit

/// The full reference gradient of every parameter, by HF name.
func referenceGradients(_ problem: LessonProblem) -> (loss: Float, gradients: [String: [Float]]) {
    problem.reference()
}
