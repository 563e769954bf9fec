// Where every world rank sits in the 4D grid and which groups it belongs to, as `ProcessGrid`
// builds them (picotron's `grid[dp][pp][cp][tp]`, tp fastest), and the grids the lesson picks.

import Distributed
import LessonKit

public enum FourDLayout {
    /// One row per world rank: its coordinates and the world ranks of its tp, cp, pp, dp and cp+dp groups.
    public static func table(_ g: GridLayout) -> Table {
        var table = Table(["rank", "dp", "pp", "cp", "tp", "tp group", "cp group", "pp group", "dp group", "cp+dp group"],
                          align: [.right, .right, .right, .right, .right, .left, .left, .left, .left, .left])
        for r in 0 ..< g.worldSize {
            let c = g.coordinates(of: r)
            let groups = GridAxis.allCases.map { g.members(of: $0, containing: r).map(String.init).joined(separator: ",") }
            table.add(["\(r)", "\(c.dp)", "\(c.pp)", "\(c.cp)", "\(c.tp)"] + groups)
        }
        return table
    }

    /// The grid for `world` ranks with the sizes given fixed: tp 2 and pp 2 where they divide what is
    /// left, dp the rest (8 ranks: dp 2 × pp 2 × tp 2).
    public static func grid(world n: Int, dp: Int? = nil, pp: Int? = nil, cp: Int? = nil, tp: Int? = nil) throws -> GridLayout {
        let cp = cp ?? 1
        let tp = tp ?? (dp == nil && n % (2 * cp) == 0 ? 2 : 1)
        let pp = pp ?? (dp == nil && n % (4 * cp) == 0 && tp == 2 ? 2 : 1)
        let dp = dp ?? max(1, n / (pp * cp * tp))
        return try GridLayout(dp: dp, pp: pp, cp: cp, tp: tp)
    }

    /// The same world with context parallelism: a factor 2 taken from dp (else pp, else tp) given to
    /// cp; nil when there is none to take.
    public static func withContext(_ g: GridLayout) -> GridLayout? {
        if g.dp % 2 == 0 { return try? GridLayout(dp: g.dp / 2, pp: g.pp, cp: g.cp * 2, tp: g.tp) }
        if g.pp % 2 == 0 { return try? GridLayout(dp: g.dp, pp: g.pp / 2, cp: g.cp * 2, tp: g.tp) }
        if g.tp % 2 == 0 { return try? GridLayout(dp: g.dp, pp: g.pp, cp: g.cp * 2, tp: g.tp / 2) }
        return nil
    }

    /// `dp 2 × pp 2 × cp 1 × tp 2`
    public static func name(_ g: GridLayout) -> String { "dp \(g.dp) × pp \(g.pp) × cp \(g.cp) × tp \(g.tp)" }
}
