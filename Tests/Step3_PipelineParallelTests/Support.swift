// What Step 3's tests add to the shared vocabulary (LessonTesting): the lesson problem cut into
// micro-batches, and a step run on in-process stages whose every stage reports what it checked,
// what it held, the order its backwards reached data parallelism, and, when it stopped, why.
// A schedule that deadlocks fails (never hangs): stages wait at most `stageTimeout` seconds for a
// neighbour, and the failure names the stage, what it waited for and what it had run.
// Legend: pp = stages, s = a stage, M = micro-batches, B = rows of the whole batch, T = tokens per row.

import Distributed
import LessonKit
import LessonTesting
import Llama
@testable import Step3_PipelineParallel
import TensorCore
import Training
import XCTest

/// Seconds a stage waits for a neighbour before the run fails: a correct step of the lesson
/// problem exchanges its messages in milliseconds.
let stageTimeout: Double = 5

/// A lesson problem with `layers` decoder layers and a batch of `rows` rows of 8 tokens.
func pipelineProblem(layers: Int, tied: Bool = false, rows: Int = 8) -> LessonProblem {
    var c = LessonProblem.lessonConfig
    c.numHiddenLayers = layers
    c.tieWordEmbeddings = tied
    return LessonProblem(config: c, batch: rows, length: 8)
}

/// The batch cut into `count` micro-batches of consecutive rows (`rows` of them, default all).
func microBatches(_ p: LessonProblem, _ count: Int, rows: Range<Int>? = nil) -> [MicroBatch] {
    let rows = rows ?? 0 ..< p.batch
    let b = rows.count / count
    return (0 ..< count).map { m in
        let (x, y) = p.rows((rows.lowerBound + m * b) ..< (rows.lowerBound + (m + 1) * b))
        return MicroBatch(inputs: x, targets: y, batch: b, length: p.length)
    }
}

/// Floats in one message between stages: B/M · T · C.
func messageCount(_ p: LessonProblem, _ mb: MicroBatch) -> Int { mb.batch * mb.length * p.config.hiddenSize }

/// Records the micro-batch of every backward data parallelism is told about, and its finishStep.
final class BackwardRecorder: GradientSynchronizer {
    private(set) var backwards: [Int] = []
    private(set) var finished = 0
    func beforeBackward(microBatch index: Int, of count: Int) { backwards.append(index) }
    func finishStep() throws { finished += 1 }
}

/// What one stage (one rank) reports from a step.
struct StageReport: Sendable {
    var rank: Int
    var checks: [Check] = []
    var peakHeld = 0
    /// The micro-batches in the order their backwards told data parallelism (with a recorder).
    var backwards: [Int]?
    var finished = 0
    /// What the stage ran before it stopped (its forwards and backwards, from its trace).
    var ran: [String] = []
    /// Why the stage stopped (nil: it finished); `released` when only because another stage failed.
    var error: String?
    var released = false
}

/// One rank's part of a run: its step, its micro-batches, and the reference to check against.
struct StageSetup {
    var step: PipelineStep
    var micro: [MicroBatch]
    var engine: PipelineEngine
    var recorder: BackwardRecorder?
}

/// Runs one step on `ranks` in-process ranks (`setup` builds each rank's part) and checks the loss
/// and every gradient each rank holds against `reference` (not the loss with data parallelism:
/// each replica's last stage has its own rows' loss). A rank's error is caught and reported.
func runStages(_ ranks: Int, reference: (loss: Float, gradients: [String: [Float]]), checkLoss: Bool = true,
               hint: String, _ setup: @escaping (Communicator) throws -> StageSetup) throws -> [StageReport] {
    try onRanks(ranks, timeout: stageTimeout) { world -> StageReport in
        var report = StageReport(rank: world.rank)
        var built: StageSetup?
        do {
            let s = try setup(world)
            built = s
            let loss = try s.step.run(s.micro, engine: s.engine)
            if let loss, checkLoss {
                report.checks.append(check(world.rank, "loss", got: [loss], want: [reference.loss],
                                           hint: "the step's loss is the mean of its micro-batches' losses"))
            }
            for (name, t) in s.step.namedParameters {
                report.checks.append(check(world.rank, "grad \(name)", got: t.grad ?? [], want: reference.gradients[name] ?? [],
                                           shape: t.shape, hint: hint))
            }
        } catch {
            if case CommError.peerFailed = error { report.released = true }
            report.error = describe(error)
        }
        if let s = built {
            report.peakHeld = s.step.peakHeld
            report.backwards = s.recorder?.backwards
            report.finished = s.recorder?.finished ?? 0
            report.ran = s.step.trace.timeline.spans.map(\.label)
        }
        return report
    }
}

/// A communication error with what its tag carries: tags 1 and 2 are PipelineLink's activations
/// and gradients, 3 the tied embedding's gradient, 16 and up the interleaved ring's.
func describe(_ error: any Error) -> String {
    let text = "\(error)"
    guard let tag = text.firstMatch(of: #/with tag (\d+)/#).flatMap({ Int($0.1) }) else { return text }
    let carries = switch tag {
    case 1: "tag 1: an activation, sendForward → receiveForward"
    case 2: "tag 2: a gradient, sendBackward → receiveBackward"
    case 3: "tag 3: the tied embedding's gradient"
    case 16...: "tag \(tag): the interleaved ring's \(tag % 2 == 0 ? "activation" : "gradient")"
    default: "tag \(tag)"
    }
    return text + " (\(carries))"
}

/// Fails once, naming the running task, when a stage stopped: the first stage that failed for its
/// own reason, what it waited for, and what it had run by then. Returns whether one did.
func stopped(_ reports: [StageReport], _ context: String, file: StaticString = #filePath, line: UInt = #line) -> Bool {
    guard let r = reports.first(where: { $0.error != nil && !$0.released }) ?? reports.first(where: { $0.error != nil }),
          let error = r.error else { return false }
    let ran = r.ran.filter { !$0.hasPrefix("wait") }
    failTask("\(context)stage \(r.rank) stopped after running [\(ran.joined(separator: " "))]: \(error)",
             file: file, line: line)
    return true
}

/// Fails, naming the running task, when data parallelism was not told the step's last backward
/// last: it all-reduces during the backward of micro-batch M − 1, so every other backward must
/// come before it. Returns whether it failed.
func syncedTooEarly(_ reports: [StageReport], m: Int, _ context: String,
                    file: StaticString = #filePath, line: UInt = #line) -> Bool {
    for r in reports {
        guard let order = r.backwards else { continue }
        if order.sorted() != Array(0 ..< m) || order.last != m - 1 || r.finished != 1 {
            failTask("\(context)stage \(r.rank) told data parallelism of its backwards in the order "
                     + "\(order.map { "B\($0)" }.joined(separator: " ")) and finished \(r.finished) time(s): each of the "
                     + "\(m) backwards once, micro-batch \(m - 1)'s last (dp all-reduces during it), then one finishStep",
                     file: file, line: line)
            return true
        }
    }
    return false
}

/// `assertPass`, and whether every check passed: a task's test stops at its first failing case,
/// so a wrong task fails once with a few lines, not once per split and engine.
func passes(_ checks: [Check], _ context: String, file: StaticString = #filePath, line: UInt = #line) -> Bool {
    assertPass(checks, context, file: file, line: line)
    return checks.allSatisfy(\.comparison.passed)
}

/// A pp-stage pipeline of the problem on world ranks (one chunk per stage).
func pipelineSetup(_ p: LessonProblem, pp: Int, m: Int, engine: PipelineEngine, record: Bool = true)
    -> (Communicator) throws -> StageSetup {
    { world in
        let stage = PipelineStage(model: p.makeModel(), stage: world.rank, stages: pp, microBatches: m)
        let micro = microBatches(p, m)
        let recorder = record ? BackwardRecorder() : nil
        let step = PipelineStep(stage: stage, link: PipelineLink(group: world, count: messageCount(p, micro[0])),
                                synchronizer: recorder)
        return StageSetup(step: step, micro: micro, engine: engine, recorder: recorder)
    }
}

/// Interleaved stages: `v` chunks per stage (chunk k of stage s is virtual stage k · pp + s).
func interleavedSetup(_ p: LessonProblem, pp: Int, v: Int, m: Int) -> (Communicator) throws -> StageSetup {
    { world in
        let model = p.makeModel()
        let chunks = (0 ..< v).map {
            PipelineStage(model: model, stage: $0 * pp + world.rank, stages: pp * v, microBatches: m)
        }
        let micro = microBatches(p, m)
        let step = PipelineStep(chunks: chunks, link: PipelineLink(group: world, count: messageCount(p, micro[0])))
        return StageSetup(step: step, micro: micro, engine: .interleaved, recorder: nil)
    }
}

/// Data parallelism for the pipeline tests, without lesson 1's code (so Step 3 needs no Step 1 task):
/// like lesson 1's buckets, it takes each gradient as it stands when the step's last backward
/// finishes it (a gradient-ready hook), and at `finishStep` writes back their average over `group`.
/// So it notices what a real synchronizer notices: a gradient changed after the last backward (the
/// tied sum before `finishStep`) is overwritten.
final class AveragingSynchronizer: GradientSynchronizer {
    let parameters: [Tensor], group: Communicator
    var last = false
    var captured: [ObjectIdentifier: [Float]] = [:]

    init(parameters: [(String, Tensor)], group: Communicator) {
        (self.parameters, self.group) = (parameters.map(\.1), group)
        for p in self.parameters {
            p.onGradReady { [unowned self] t in if self.last { self.captured[ObjectIdentifier(t)] = t.grad } }
        }
    }

    func beforeBackward(microBatch index: Int, of count: Int) { last = index == count - 1 }

    func finishStep() throws {
        for p in parameters {
            var g = captured[ObjectIdentifier(p)] ?? p.grad ?? [Float](repeating: 0, count: p.count)
            try group.allReduce(&g, op: .average)
            p.grad = g
        }
        captured = [:]
    }

    deinit { for p in parameters { p.removeGradReadyHooks() } }
}
