// zb puts the weight gradients off, so a data-parallel synchronizer's gradient-ready hooks come
// later. A synchronizer that synchronises every micro-batch (lesson 1's stand-in rule, "correct,
// but A times the traffic") must still see every parameter's hook of a backward, with the whole
// gradient, before the next backward begins — on every stage, the last one included.

import Distributed
import LessonKit
import LessonTesting
import Step3_PipelineParallel
import TensorCore
import Training
import XCTest

/// Records, for each backward, which parameters' hooks fired before the next backward began.
final class HookRecorder: GradientSynchronizer {
    let names: [ObjectIdentifier: String]
    var current = -1
    var fired: [Int: Set<String>] = [:]
    var complete: [Int: Set<String>] = [:]   // what had fired for backward m when m + 1 began (or the step ended)

    init(_ parameters: [(String, Tensor)]) {
        names = Dictionary(uniqueKeysWithValues: parameters.map { (ObjectIdentifier($0.1), $0.0) })
        for (_, t) in parameters { t.onGradReady { [unowned self] t in fired[current, default: []].insert(names[ObjectIdentifier(t)]!) } }
    }
    func beforeBackward(microBatch index: Int, of count: Int) {
        if current >= 0 { complete[current] = fired[current] ?? [] }
        current = index
    }
    func finishStep() throws { complete[current] = fired[current] ?? [] }
    func synchronizes(microBatch index: Int, of count: Int) -> Bool { true }
}

final class ZeroBubbleHookTests: XCTestCase {
    func testEveryBackwardsHooksFireBeforeTheNextBackward() throws {
        var c = LessonProblem.lessonConfig
        c.numHiddenLayers = 4
        let p = LessonProblem(config: c, batch: 8, length: 8)
        beginTasks()
        let result = Result { try InProcessRanks.run(2, timeout: 10) { comm -> [String] in
            let model = p.makeModel()
            let stage = PipelineStage(model: model, stage: comm.rank, stages: 2, microBatches: 4)
            let recorder = HookRecorder(stage.namedParameters)
            let step = PipelineStep(stage: stage, link: PipelineLink(group: comm, count: 2 * p.length * c.hiddenSize),
                                    synchronizer: recorder)
            let micro = (0 ..< 4).map { i -> MicroBatch in
                let (x, y) = p.rows((2 * i) ..< (2 * i + 2))
                return MicroBatch(inputs: x, targets: y, batch: 2, length: p.length)
            }
            _ = try step.run(micro, engine: .zeroBubble)
            let all = Set(stage.namedParameters.map(\.0))
            return (0 ..< 4).compactMap { m in
                let missing = all.subtracting(recorder.complete[m] ?? [])
                return missing.isEmpty ? nil : "stage \(comm.rank), backward \(m): no hook for \(missing.sorted())"
            }
        } }
        if unfinished(["Step3."]) { return }
        XCTAssertEqual(try result.get().flatMap { $0 }, [])
    }
}
