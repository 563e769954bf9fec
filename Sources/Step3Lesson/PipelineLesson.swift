// What `swift run lesson-pp` (and `mpirun -np N lesson-pp`) prints: how the layers are split into
// stages, every engine verified against the single-process reference, each schedule drawn in unit
// time (deterministic) and as measured (timing), its bubble beside the formula, the activations it
// holds (measured), and what crosses each stage boundary. It lives here, not in the executable, so
// a test runs exactly this on in-process ranks.
//
// Output rules (scripts/check-lesson-output.sh diffs it with the lesson text): deterministic values
// in fixed formats; lines that depend on timing start with `~ ` (LessonOutput.timing).
// Legend: pp = stages (the ranks), v = chunks per stage, M = micro-batches, B = rows per
// micro-batch, T = sequence length, C = hidden, L = layers.

import Distributed
import ExerciseKit
import Foundation
import LessonKit
import Llama
import Step3_PipelineParallel
import TensorCore
import Training

public enum PipelineLesson {
    public struct Options: Sendable {
        /// M, micro-batches per step (the batch has 16 rows).
        public var microBatches = 8
        /// v, chunks per stage for the interleaved engine.
        public var virtualStages = 2
        /// Print only the split and the checks (CI under mpirun).
        public var verifyOnly = false
        /// Write each schedule's charts as SVG files into this folder.
        public var svgDirectory: String?
        public init() {}
    }

    public struct Failed: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The lesson problem: 8 layers (so 2 and 4 stages, and 2 chunks each, all divide), 16 rows of 16 tokens.
    public static var problem: LessonProblem {
        var c = LessonProblem.lessonConfig
        c.numHiddenLayers = 8
        return LessonProblem(config: c, batch: 16, length: 16)
    }

    /// What one engine did on this rank: its checks, its order and timings, its memory and traffic.
    struct EngineRun {
        var checks: [Comparison], actions: [PipelineAction], spans: [PlacedAction]
        var held: Int, bytes: Int, sent: Int
    }

    public static func run(world: Communicator, options o: Options, emit: (String) -> Void) throws {
        func out(_ text: String) { if world.rank == 0 { emit(text) } }
        let pp = world.size, p = problem, c = p.config, m = o.microBatches
        guard m >= 1, p.batch % m == 0 else {
            throw Failed(description: "--micro-batches \(m) must divide the batch of \(p.batch) rows")
        }
        let grid = try ProcessGrid(dp: 1, pp: pp, cp: 1, tp: 1, world: world)
        let rows = p.batch / m, launch = Launcher.isUnderMPI ? "mpirun" : "in-process"
        var engines: [PipelineEngine] = [.afab, .oneFOneB]
        if pp > 1, m % pp == 0, pp * o.virtualStages <= c.numHiddenLayers { engines.append(.interleaved) }
        var split = Table(["stage", "layers", "also"], align: [.left, .left, .left])
        for s in 0 ..< pp {
            let l = stageLayers(layers: c.numHiddenLayers, stages: pp, stage: s)
            let also = [s == 0 ? "embedding" : nil, s == pp - 1 ? "final norm, head, loss" : nil].compactMap { $0 }
            split.add(["\(s)", "\(l.lowerBound)–\(l.upperBound - 1) (\(l.count))", also.joined(separator: ", ")])
        }
        out("""
            Lesson 3 — pipeline parallelism on \(pp) rank\(pp == 1 ? "" : "s") (\(launch))
            grid: \(grid.description.replacingOccurrences(of: "-Rank(0)", with: "")), one pipeline group of ranks \(grid.ppGroupRanks)
            model: L \(c.numHiddenLayers) layers, hidden C \(c.hiddenSize), vocab \(c.vocabSize); \
            batch \(p.batch) × \(p.length) tokens in M = \(m) micro-batches of B = \(rows)

            How the layers are split (picotron's rule: the first L mod pp stages take one more)
            \(split.render(indent: 2))
            """)

        let reference = p.reference()
        var runs: [PipelineEngine: EngineRun] = [:]
        for engine in engines { runs[engine] = try runEngine(engine, problem: p, reference: reference, group: grid.ppGroup,
                                                             microBatches: m, chunks: engine == .interleaved ? o.virtualStages : 1) }
        // Verification: the worst rank.
        var table = Table(["engine", "loss and every gradient, max|Δ|", ""], align: [.left, .right, .left])
        var failed = 0
        for engine in engines {
            let checks = runs[engine]!.checks
            var worst = [checks.map(\.maxAbsDiff).max() ?? 0, Float(checks.filter { !$0.passed }.count)]
            try world.allReduce(&worst, op: .max)
            failed += Int(worst[1])
            table.add([name(engine, o), LessonOutput.diff(worst[0]), worst[1] == 0 ? "PASS" : "FAIL"])
            for c in checks where !c.passed { RankPrinter(world).error("\(engine.rawValue): \(c)") }
        }
        out("""

            Verify against the single-process reference (the whole batch's loss, every stage's gradients; \
            tolerance 1e-5 × max|ref|)
            \(table.render(indent: 2))
            """)
        // The exercise track: what is unfinished. The pictures and tables need every task.
        let pending = Todo.pending("Step3.")
        for task in pending { out("TODO: \(task)") }
        if !pending.isEmpty { out("(finish the TODOs above first: the schedules, the memory and the traffic need them)") }
        if !o.verifyOnly, pending.isEmpty {
            for engine in engines {
                try report(engine, runs[engine]!, o: o, group: grid.ppGroup, m: m, out: out)
            }
            try memoryAndTraffic(engines.map { ($0, runs[$0]!) }, o: o, p: p, m: m, group: grid.ppGroup, out: out)
        }
        out("\n" + (failed == 0 ? "PASS: every engine on \(pp) stages equals the single-process model"
                                : "FAIL: \(failed) check(s) failed (details on stderr)"))
        if failed > 0 { throw Failed(description: "\(failed) check(s) failed") }
    }

    static func name(_ e: PipelineEngine, _ o: Options) -> String {
        e == .interleaved ? "interleaved (v \(o.virtualStages))" : e == .afab ? "AFAB" : "1F1B"
    }

    /// One step of `engine` on this rank's stage: checks against the reference, the order of its
    /// actions, their measured spans, the activations held and the bytes sent.
    static func runEngine(_ engine: PipelineEngine, problem p: LessonProblem, reference: (loss: Float, gradients: [String: [Float]]),
                          group: Communicator, microBatches m: Int, chunks v: Int) throws -> EngineRun {
        let pp = group.size, s = group.rank, rows = p.batch / m
        let model = p.makeModel()
        let chunks = (0 ..< v).map { PipelineStage(model: model, stage: $0 * pp + s, stages: pp * v, microBatches: m) }
        let step = PipelineStep(chunks: chunks, link: PipelineLink(group: group, count: rows * p.length * p.config.hiddenSize))
        step.measureMemory = true
        let micro = (0 ..< m).map { i -> MicroBatch in
            let (x, y) = p.rows((i * rows) ..< ((i + 1) * rows))
            return MicroBatch(inputs: x, targets: y, batch: rows, length: p.length)
        }
        let before = group.stats
        let loss = try step.run(micro, engine: engine)
        let sent = group.stats.since(before)[group.name, .send].bytes
        var checks = loss.map { [ReferenceCheck.compare("loss", got: [$0], want: [reference.loss])] } ?? []
        for (name, t) in step.namedParameters {
            checks.append(ReferenceCheck.compare("grad \(name)", got: t.grad ?? [Float](repeating: 0, count: t.count),
                                                 want: reference.gradients[name]!))
        }
        let spans = step.trace.timeline.spans.compactMap { span in
            PipelineAction(label: span.label).map { PlacedAction(action: $0, start: span.start, end: span.end) }
        }
        return EngineRun(checks: checks, actions: spans.map(\.action), spans: spans, held: step.peakHeld,
                         bytes: step.peakActivationBytes, sent: sent)
    }

    /// Every stage's (action, start, end), gathered to every rank: each rank sends 5 floats per action.
    static func gather(_ run: EngineRun, group: Communicator) throws -> [[PlacedAction]] {
        let mine = run.spans.flatMap { [Float($0.action.forward ? 1 : 0), Float($0.action.m), Float($0.action.k),
                                         Float($0.start), Float($0.end)] }
        let all = try group.allGather(mine), per = mine.count
        return (0 ..< group.size).map { r in
            stride(from: r * per, to: (r + 1) * per, by: 5).map { i in
                PlacedAction(action: PipelineAction(forward: all[i] == 1, m: Int(all[i + 1]), k: Int(all[i + 2])),
                             start: Double(all[i + 3]), end: Double(all[i + 4]))
            }
        }
    }

    /// One engine's charts: unit time with its bubble beside the formula; measured, as timing lines.
    static func report(_ engine: PipelineEngine, _ run: EngineRun, o: Options, group: Communicator, m: Int,
                       out: (String) -> Void) throws {
        let measured = try gather(run, group: group)
        guard group.rank == 0 else { return }
        let pp = group.size, v = engine == .interleaved ? o.virtualStages : 1
        guard let unit = PipelineChart.unitTime(orders: measured.map { $0.map(\.action) }, chunks: v) else {
            out("\n\(name(engine, o)): the order of the actions deadlocks"); return
        }
        // The idle share of the chart: (p − 1) stage-slots of warm-up and cool-down, each 1/v long
        // with chunks, out of v·m + p − 1 (Megatron: the bubble time shrinks by v).
        let formula = Double(pp - 1) / Double(v * m + pp - 1)
        let formulaText = v > 1 ? "(p − 1)/(v·m + p − 1) = \(pp - 1)/\(v * m + pp - 1)" : "(p − 1)/(m + p − 1) = \(pp - 1)/\(m + pp - 1)"
        let ends = measured.flatMap { $0 }.map(\.end), starts = measured.flatMap { $0 }.map(\.start)
        guard let last = ends.max(), let first = starts.min() else { return }
        let makespan = last - first
        out("""

            \(name(engine, o)) — the schedule in unit time (a stage's forward 1, backward 2\(v > 1 ? "; 3a = F3 on chunk a, 3A its backward" : ""))
            \(PipelineChart.text(unit, chunks: v, unit: v > 1 ? 2 * v : 3).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
              bubble: \(String(format: "%.1f%%", 100 * PipelineChart.bubble(unit))) of the chart idle; \
            formula \(formulaText) = \(String(format: "%.1f%%", 100 * formula))
            \(LessonOutput.timing("measured, one step (\(String(format: "%.1f", makespan)) ms):\n"
                + PipelineChart.text(measured, chunks: v, unit: 1, scale: 72 / max(makespan, 1e-9))
                    .split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
                + "\n  bubble: " + String(format: "%.1f%%", 100 * PipelineChart.bubble(measured)) + " idle"))
            """)
        if let dir = o.svgDirectory {
            let slug = engine == .interleaved ? "interleaved" : engine.rawValue
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(PipelineChart.svg(unit, chunks: v, title: "\(name(engine, o)), \(pp) stages, M = \(m) (unit time)",
                                       unitName: "forward 1, backward 2").utf8)
                .write(to: URL(fileURLWithPath: dir).appendingPathComponent("pipeline-\(slug).svg"))
            try Data(PipelineChart.svg(measured, chunks: v, title: "\(name(engine, o)), \(pp) stages, M = \(m) (measured)",
                                       unitName: "ms").utf8)
                .write(to: URL(fileURLWithPath: dir).appendingPathComponent("pipeline-\(slug)-measured.svg"))
        }
    }

    /// Peak activations held per stage (measured) and the bytes each stage sent, beside the formulas.
    static func memoryAndTraffic(_ runs: [(PipelineEngine, EngineRun)], o: Options, p: LessonProblem, m: Int,
                                 group: Communicator, out: (String) -> Void) throws {
        let pp = group.size, rows = p.batch / m
        var memory = Table(["engine"] + (0 ..< pp).map { "stage \($0)" } + ["formula (micro-batches held)"],
                           align: [.left] + Array(repeating: .right, count: pp) + [.left])
        var sent = Table(["engine"] + (0 ..< pp).map { "stage \($0)" }, align: [.left] + Array(repeating: .right, count: pp))
        for (engine, run) in runs {
            let all = try group.allGather([Float(run.held), Float(run.bytes), Float(run.sent)])
            let cells = (0 ..< pp).map { "\(Int(all[3 * $0])): \(CommStats.format(bytes: Int(all[3 * $0 + 1])))" }
            let formula = engine == .afab ? "M on every stage" : engine == .oneFOneB ? "min(M, p − s)"
                : "2(p − s − 1) + (v − 1)p + 1 chunks"
            memory.add([name(engine, o)] + cells + [formula])
            sent.add([name(engine, o)] + (0 ..< pp).map { CommStats.format(bytes: Int(all[3 * $0 + 2])) })
        }
        let boundary = 4 * rows * p.length * p.config.hiddenSize
        out("""

            Activations held at the peak, per stage (micro-batches: bytes the autograd graphs keep, measured)
            \(memory.render(indent: 2))

            Sent per step, per stage (CommLedger): B·T·C floats per micro-batch and boundary each way, \
            \(CommStats.format(bytes: boundary)) here; stage s sends M of them forward (if s < p − 1) and M backward (if s > 0)
            \(sent.render(indent: 2))
            """)
    }
}
