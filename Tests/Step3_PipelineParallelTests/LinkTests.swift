// Task 3.4: the combined calls of 1F1B's steady state, on 2, 3 and 4 in-process stages, in the
// order 1F1B makes them: every stage but the last sends an activation on and receives a gradient
// back, then every stage but the first sends a gradient back and receives an activation. Each
// message is different, so a swapped direction, tag or neighbour shows; a deadlock fails in
// `stageTimeout` seconds, naming the stage and what it waited for.
// Legend: pp = stages, s = a stage, n = floats per message.

import Distributed
import LessonTesting
@testable import Step3_PipelineParallel
import XCTest

final class LinkTests: XCTestCase {
    static let n = 6
    /// What stage s sends in `round`: an activation on, a gradient back (each message different).
    static func activation(_ s: Int, _ round: Int) -> [Float] { randomValues(n, seed: 31, "h\(s).\(round)") }
    static func gradient(_ s: Int, _ round: Int) -> [Float] { randomValues(n, seed: 32, "g\(s).\(round)") }

    func testStep3_4_combinedCallsPostBothHalvesBeforeWaiting() throws {
        let (n, activation, gradient) = (Self.n, Self.activation, Self.gradient)
        for pp in [2, 3, 4] {
            beginTasks()
            let reports = try onRanks(pp, timeout: stageTimeout) { world -> StageReport in
                let link = PipelineLink(group: world, count: n)
                let s = world.rank
                var report = StageReport(rank: s)
                do {
                    for round in 0 ..< 2 {
                        if !link.isLast {
                            let g = try link.sendForwardReceiveBackward(activation(s, round))
                            report.ran.append("sendForwardReceiveBackward")
                            report.checks.append(check(s, "gradient received from stage \(s + 1), round \(round)", got: g,
                                                       want: gradient(s + 1, round), hint: "receive from the next stage, "
                                                       + "the backward tag (the call returns what it received)"))
                        }
                        if !link.isFirst {
                            let h = try link.sendBackwardReceiveForward(gradient(s, round))
                            report.ran.append("sendBackwardReceiveForward")
                            report.checks.append(check(s, "activation received from stage \(s - 1), round \(round)", got: h,
                                                       want: activation(s - 1, round), hint: "receive from the previous "
                                                       + "stage, the forward tag (the call returns what it received)"))
                        }
                    }
                } catch {
                    if case CommError.peerFailed = error { report.released = true }
                    report.error = describe(error)
                }
                return report
            }
            if unfinished("Step3.4") { return }
            if stopped(reports, "pp \(pp), stage s calls sendForwardReceiveBackward then sendBackwardReceiveForward: ") {
                return
            }
            guard passes(reports.flatMap(\.checks), "pp \(pp): ") else { return }
        }
    }
}
