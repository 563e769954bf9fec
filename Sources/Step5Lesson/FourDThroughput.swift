// Tokens per second of a few grids of the same world on this machine: each grid trains the same
// global batch as `picotron train` would (a larger one than the checks', so that the steps are
// worth timing), and the best of its timed steps is kept. In-process ranks share the machine's
// cores; with R ranks on C cores each rank's BLAS gets max(1, C / R) threads.

import Distributed
import Foundation
import LessonKit
import TensorCore

enum FourDThroughput {
    /// The run the table times: 16 rows of 64 tokens per step, 2 micro-batches per dp rank.
    static var setup: FourDSetup {
        var s = FourDSetup()
        (s.rows, s.length, s.steps) = (16, 64, 3)
        return s
    }

    /// Every grid of `n` ranks with pp, cp and tp each 1 or 2 that the setup can train, dp the rest.
    static func grids(world n: Int, setup s: FourDSetup) -> [GridLayout] {
        var grids = [GridLayout]()
        for pp in [1, 2] { for cp in [1, 2] { for tp in [1, 2] where n % (pp * cp * tp) == 0 {
            if let g = try? GridLayout(dp: n / (pp * cp * tp), pp: pp, cp: cp, tp: tp), s.problem(g) == nil { grids.append(g) }
        } } }
        return grids.sorted { ($0.pp + $0.cp + $0.tp, $0.tp, $0.pp) < ($1.pp + $1.cp + $1.tp, $1.tp, $1.pp) }
    }

    static func report(world: Communicator, out: (String) -> Void) throws {
        let s = setup, reference = try GridRun.reference(s)
        var table = Table(["grid", "tokens/s", "ms per step"])
        for g in grids(world: world.size, setup: s) {
            let r = try GridRun.run(s, grid: g, world: world, reference: reference)
            let best = try world.allReduced([Float(r.seconds.min() ?? 0)], op: .max)[0]   // the slowest rank's
            table.add([FourDLayout.name(g), String(format: "%.0f", Double(s.rows * s.length) / Double(best)),
                       String(format: "%.1f", 1000 * best)])
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let launch = Launcher.isUnderMPI ? "processes" : "threads of one process"
        out("\n" + LessonOutput.timing("""
            Throughput on this machine (\(cores) cores, \(world.size) ranks as \(launch), BLAS \(BLAS.threads) thread(s) \
            per rank): \(s.rows) rows × \(s.length) tokens per step, best of \(s.steps - 1) steps
            \(table.render(indent: 2))
            """))
    }
}
