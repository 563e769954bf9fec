// What `swift run lesson-4d` (and `mpirun -np N lesson-4d`) prints: the rank layout of the grid and
// its groups, each grid trained as `picotron train` trains it and verified against the single
// process (the losses of every step, every gradient of step 1), the traffic of one step per group
// from the ledger beside the formulas, the memory of each rank measured beside the estimate, and the
// tokens per second of a few grids on this machine. It lives here, not in the executable, so a test
// runs exactly this on in-process ranks.
//
// Output rules (scripts/check-lesson-output.sh diffs it with the lesson text): deterministic values
// in fixed formats; lines that depend on timing start with `~ ` (LessonOutput.timing).

import Distributed
import Foundation
import LessonKit
import TensorCore
import Training

public enum FourDLesson {
    public struct Options: Sendable {
        /// Print only the layout and the checks (CI under mpirun).
        public var verifyOnly = false
        /// Time a few grids of the world (the longest part of the run).
        public var throughput = true
        /// The grid's sizes; nil ones are chosen (`FourDLayout.grid`). With any of them set, only that grid runs.
        public var dp: Int?, pp: Int?, cp: Int?, tp: Int?
        public init() {}
        var fixed: Bool { dp != nil || pp != nil || cp != nil || tp != nil }
    }

    public struct Failed: Error, CustomStringConvertible {
        public let description: String
    }

    /// One verified grid: its name, the worst loss difference (relative), the worst gradient |Δ|, PASS or not.
    public struct Verdict: Sendable {
        public let grid: GridLayout
        public let lossDiff: Float, gradientDiff: Float
        /// Gradient tensors compared, over all ranks (each rank its shards of its stage).
        public let compared: Int
        public let passed: Bool
    }

    /// The grids `run` trains on `world` ranks: the chosen one and, unless the sizes were given, the
    /// same world with context parallelism.
    public static func grids(world n: Int, options o: Options) throws -> [GridLayout] {
        let main = try FourDLayout.grid(world: n, dp: o.dp, pp: o.pp, cp: o.cp, tp: o.tp)
        guard main.worldSize == n else {
            throw Failed(description: "world size \(n) != dp \(main.dp) × pp \(main.pp) × cp \(main.cp) × tp \(main.tp) "
                         + "(= \(main.worldSize)): pass --ranks \(main.worldSize) or change the sizes")
        }
        return [main] + (o.fixed ? [] : FourDLayout.withContext(main).map { [$0] } ?? [])
    }

    @discardableResult
    public static func run(world: Communicator, options o: Options, setup s: FourDSetup = FourDSetup(),
                           emit: (String) -> Void) throws -> [Verdict] {
        func out(_ text: String) { if world.rank == 0 { emit(text) } }
        let grids = try grids(world: world.size, options: o)
        if let bad = grids.compactMap({ s.problem($0) }).first { throw Failed(description: bad) }
        let launch = Launcher.isUnderMPI ? "mpirun" : "in-process"
        let c = s.model
        out("""
            Lesson 5 — 4D parallelism on \(world.size) rank\(world.size == 1 ? "" : "s") (\(launch))
            model: \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), MLP \(c.intermediateSize), \(c.numAttentionHeads) query \
            heads over \(c.numKeyValueHeads) key/value heads of \(c.headDim), vocab \(c.vocabSize)
            each step: \(s.rows) rows of T = \(s.length) tokens in A = \(s.microBatches) micro-batches per dp rank; \
            \(s.steps) steps of AdamW
            """)
        let reference = try GridRun.reference(s)
        var verdicts = [Verdict](), results = [GridResult]()
        for grid in grids {
            out("\nThe rank layout of \(FourDLayout.name(grid)) (world rank = ((d·pp + p)·cp + c)·tp + t for coordinates d, p, c, t)\n"
                + FourDLayout.table(grid).render(indent: 2))
            let result = try GridRun.run(s, grid: grid, world: world, reference: reference)
            let lossDiff = zip(result.losses, reference.losses).map { abs($0 - $1) / abs($1) }.max() ?? 0
            var worst = [lossDiff, result.checks.map(\.maxAbsDiff).max() ?? 0,
                         Float(result.checks.filter { !$0.passed }.count)]
            try world.allReduce(&worst, op: .max)
            let compared = Int(try world.allReduced([Float(result.checks.count)], op: .sum)[0])
            let passed = worst[0] <= ReferenceCheck.relativeTolerance && worst[2] == 0 && compared > 0
            for check in result.checks where !check.passed { RankPrinter(world).error("\(FourDLayout.name(grid)): \(check)") }
            verdicts.append(Verdict(grid: grid, lossDiff: worst[0], gradientDiff: worst[1], compared: compared, passed: passed))
            results.append(result)
        }
        var table = Table(["grid", "losses of \(s.steps) steps: max relative |Δ|", "step 1 gradients: tensors", "max|Δ|", ""],
                          align: [.left, .right, .right, .right, .left])
        for v in verdicts {
            table.add([FourDLayout.name(v.grid), LessonOutput.diff(v.lossDiff), "\(v.compared)",
                       LessonOutput.diff(v.gradientDiff), v.passed ? "PASS" : "FAIL"])
        }
        out("""

            Verify against the single process (the loss of every step, every gradient of step 1 on every rank \
            as it holds it; tolerance 1e-5, relative)
            \(table.render(indent: 2))
            single process: losses \(reference.losses.map { LessonOutput.fixed($0) }.joined(separator: ", "))
            """)
        if !o.verifyOnly {
            for (grid, result) in zip(grids, results) {
                try FourDTraffic.report(result, grid: grid, setup: s, world: world, out: out)
            }
            for (grid, result) in zip(grids, results) {
                try FourDMemory.report(result, grid: grid, setup: s, world: world, out: out)
            }
            if o.throughput { try FourDThroughput.report(world: world, out: out) }
        }
        let failed = verdicts.filter { !$0.passed }.count
        out("\n" + (failed == 0 ? "PASS: every grid trains as the single process does"
                                : "FAIL: \(failed) grid(s) differ from the single process (details on stderr)"))
        if failed > 0 { throw Failed(description: "\(failed) grid(s) failed") }
        return verdicts
    }
}
