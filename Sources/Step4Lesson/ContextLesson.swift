// What `swift run lesson-cp` (and `mpirun -np N lesson-cp`) prints: which tokens each rank holds in
// both layouts, the ring step by step, every layout × attention verified against the single-process
// reference, the causal work of each rank (counted) beside its attention time (measured), the
// traffic per layer from the ledger beside the formula, and the key/value memory of all-gather vs
// ring. It lives here, not in the executable, so a test runs exactly this on in-process ranks.
//
// Output rules (scripts/check-lesson-output.sh diffs it with the lesson text): deterministic values
// in fixed formats; lines that depend on timing start with `~ ` (LessonOutput.timing).
// Legend: cp = ranks, B = batch, T = sequence, Tl = T/cp, nkv = key/value heads, hs = head size, L = layers.

import Distributed
import ExerciseKit
import Foundation
import LessonKit
import Llama
import Step4_ContextParallel
import TensorCore
import Training

public enum ContextLesson {
    public struct Options: Sendable {
        /// Print only the split and the checks (CI under mpirun).
        public var verifyOnly = false
        /// Write the ring's steps as SVG files into this folder.
        public var svgDirectory: String?
        public init() {}
    }

    public struct Failed: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The lesson problem: 8 query heads over 4 key/value heads, 4 rows of 32 tokens (cp 1, 2, 4, 8
    /// and both layouts divide), a few targets ignored so ranks count different numbers of them.
    public static var problem: (LessonProblem, [Int]) {
        let p = LessonProblem(config: LessonProblem.lessonConfig, batch: 4, length: 32)
        var targets = p.targets
        for i in [0, 1, 2, 40, 77, 127] { targets[i] = LlamaForCausalLM.ignoreIndex }
        return (p, targets)
    }

    public static func run(world: Communicator, options o: Options, emit: (String) -> Void) throws {
        func out(_ text: String) { if world.rank == 0 { emit(text) } }
        let cp = world.size, (p, targets) = problem, c = p.config
        guard p.length % (2 * cp) == 0 else {
            throw Failed(description: "\(cp) ranks cannot split the lesson's \(p.length) tokens in 2·cp chunks: use 1, 2, 4, 8 or 16")
        }
        let grid = try ProcessGrid(dp: 1, pp: 1, cp: cp, tp: 1, world: world)
        let launch = Launcher.isUnderMPI ? "mpirun" : "in-process"
        out("""
            Lesson 4 — context parallelism on \(cp) rank\(cp == 1 ? "" : "s") (\(launch))
            grid: \(grid.description.replacingOccurrences(of: "-Rank(0)", with: "")), one context-parallel group of ranks \(grid.cpGroupRanks)
            model: \(c.numHiddenLayers) layers, \(c.numAttentionHeads) query heads over \(c.numKeyValueHeads) key/value heads of \
            \(c.headDim); batch \(p.batch) × T \(p.length) tokens, each rank Tl = \(p.length / cp) of every sequence
            """)
        let layoutsValid = ContextReport.valid(length: p.length, cp: cp)
        out(layoutsValid ? "\nWhich tokens each rank holds\n" + ContextReport.layoutTable(length: p.length, cp: cp).render(indent: 2)
                         : "\n(the layouts do not deal every token once yet: Task 4.1)")
        if !o.verifyOnly, layoutsValid {
            for layout in ContextLayout.allCases {
                out("\nThe ring, \(layout.rawValue): at step j rank r holds the keys of rank r − j "
                    + "(all: every key in the past; diagonal: the causal mask applies; skipped: all in the future)\n"
                    + ContextReport.ringTable(length: p.length, cp: cp, layout: layout).render(indent: 2))
            }
        }
        let reference = ContextReport.reference(p, targets)
        var table = Table(["layout", "attention", "logits, loss, every gradient: max|Δ|", ""],
                          align: [.left, .left, .right, .left])
        var failed = 0, runs: [String: ContextReport.Run] = [:]
        for layout in ContextLayout.allCases {
            for attention in ContextAttention.allCases {
                let run = try ContextReport.step(p, targets, reference: reference, group: grid.cpGroup,
                                                 layout: layout, attention: attention)
                var worst = [run.checks.map(\.maxAbsDiff).max() ?? 0, Float(run.checks.filter { !$0.passed }.count)]
                try world.allReduce(&worst, op: .max)
                failed += Int(worst[1])
                table.add([layout.rawValue, attention.rawValue, LessonOutput.diff(worst[0]), worst[1] == 0 ? "PASS" : "FAIL"])
                for c in run.checks where !c.passed { RankPrinter(world).error("\(layout.rawValue), \(attention.rawValue): \(c)") }
                runs["\(layout.rawValue) \(attention.rawValue)"] = run
            }
        }
        out("""

            Verify against the single-process reference (each rank's logits, the sequence's loss, every gradient \
            averaged over cp; tolerance 1e-5 × max|ref|)
            \(table.render(indent: 2))
            """)
        // The exercise track: what is unfinished. The measurements need every task.
        let pending = Todo.pending("Step4.")
        for task in pending { out("TODO: \(task)") }
        if !pending.isEmpty { out("(finish the TODOs above first: the work, traffic and memory tables need them)") }
        if !o.verifyOnly, pending.isEmpty {
            try ContextReport.work(p, runs: runs, group: grid.cpGroup, out: out)
            try ContextReport.trafficAndMemory(p, runs: runs, group: grid.cpGroup, out: out)
            if let dir = o.svgDirectory, world.rank == 0 {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                for layout in ContextLayout.allCases {
                    try Data(ContextReport.ringSVG(length: p.length, cp: cp, layout: layout).utf8)
                        .write(to: URL(fileURLWithPath: dir).appendingPathComponent("ring-\(layout.rawValue).svg"))
                }
            }
        }
        out("\n" + (failed == 0 ? "PASS: context parallelism on \(cp) ranks equals the single-process model"
                                : "FAIL: \(failed) check(s) failed (details on stderr)"))
        if failed > 0 { throw Failed(description: "\(failed) check(s) failed") }
    }
}
