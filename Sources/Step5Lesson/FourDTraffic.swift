// What one training step sends in each group of the grid, from the ledger of a real step, beside
// the formula of each Step's lesson, composed. Payloads in float32 (4 bytes), per rank and step.
// Legend: A = micro-batches, B = rows per micro-batch, N = B·T/cp tokens a rank holds of one
// micro-batch, C = hidden, V = vocabulary, kv = (key/value heads / tp)·head size, Ls = layers of the
// rank's stage, e = 1 on the first stage (it embeds), h = 1 on the last (head and loss), P = the
// parameters the rank holds.
//
//   tp    all-reduce  A·(4Ls + e + h) of N·C   (Megatron's f and g: 2 per layer forward, 2 backward,
//                                              g after the embedding, f before the head)
//                   + A·3h of N                (vocab-parallel loss: row max, Σ exp, target logit)
//                   + 1 float                  (Σ g² of the shards, for clipping)
//   cp    send        A·Ls·(2(cp − 1) + 4cp) blocks of B·(T/cp)·kv in A·Ls·(2cp − 1) messages
//                                              (ring: K and V forward cp − 1 times; K, V, dK, dV backward cp times)
//         all-reduce  A·h of 1 float           (the sequence's count of targets, for the loss share)
//   pp    send        A·(1 − h) + A·(1 − e) of N·C   (the boundary activation forward, its gradient back)
//         all-reduce  2 of 1 float             (the loss from the last stage, Σ g² of the stages)
//   dp    all-reduce  P in buckets, + 1 float  (the gradient average; the loss for the log)
//   (with cp > 1 the gradient average runs over the cp+dp group instead of dp)

import Distributed
import LessonKit
import Step3_PipelineParallel

enum FourDTraffic {
    /// The rows of the table: (group, operation).
    static let keys: [(GridAxis, CommOp)] = [(.tp, .allReduce), (.cp, .send), (.cp, .allReduce), (.pp, .send),
                                             (.pp, .allReduce), (.dp, .allReduce), (.cpdp, .allReduce)]

    /// Calls and floats the formula gives for `rank` (nil: the group does not take part).
    static func expected(_ axis: GridAxis, _ op: CommOp, rank: Int, grid g: GridLayout, setup s: FourDSetup,
                         held p: Int) -> (calls: Int, floats: Int, formula: String)? {
        let c = g.coordinates(of: rank), m = s.model, a = s.microBatches
        let b = s.rows / (g.dp * a), n = b * s.length / g.cp, hidden = m.hiddenSize
        let ls = stageLayers(layers: m.numHiddenLayers, stages: g.pp, stage: c.pp).count
        let (e, h) = (c.pp == 0 ? 1 : 0, c.pp == g.pp - 1 ? 1 : 0)
        let kv = m.numKeyValueHeads / g.tp * m.headDim
        switch (axis, op) {
        case (.tp, .allReduce) where g.tp > 1:
            let layers = 4 * ls + e + h
            return (a * (layers + 3 * h) + 1, a * (layers * n * hidden + 3 * h * n) + 1,
                    "A·(4Ls+e+h)·N·C + A·3h·N + 1 = \(a)·\(layers)·\(n)·\(hidden) + \(a)·\(3 * h)·\(n) + 1")
        case (.cp, .send) where g.cp > 1:
            let blocks = a * ls * (2 * (g.cp - 1) + 4 * g.cp)
            return (a * ls * (2 * g.cp - 1), blocks * b * (s.length / g.cp) * kv,
                    "A·Ls·(2(cp−1)+4cp)·B·(T/cp)·kv = \(blocks)·\(b)·\(s.length / g.cp)·\(kv)")
        case (.cp, .allReduce) where g.cp > 1:
            return (a * h, a * h, "A·h = \(a * h)")
        case (.pp, .send) where g.pp > 1:
            let k = a * (1 - h) + a * (1 - e)
            return (k, k * n * hidden, "(A(1−h) + A(1−e))·N·C = \(k)·\(n)·\(hidden)")
        case (.pp, .allReduce) where g.pp > 1:
            return (2, 2, "2 floats")
        case (.dp, .allReduce) where g.dp > 1 && g.cp == 1, (.cpdp, .allReduce) where g.cp * g.dp > 1 && g.cp > 1:
            return (2, p + 1, "P + 1 = \(p) + 1")
        default:
            return nil
        }
    }

    /// Prints the traffic of one step for world rank 0 and the last world rank.
    static func report(_ r: GridResult, grid g: GridLayout, setup s: FourDSetup, world: Communicator,
                       out: (String) -> Void) throws {
        let last = world.size - 1
        var mine = [Float]()
        for (axis, op) in keys {
            let e = r.traffic[axis.rawValue, op]
            mine += [Float(e.calls), Float(e.bytes)]
        }
        mine.append(Float(r.heldParameters))
        let all = try world.allGather(mine)       // [ranks, 2·keys + 1]
        let width = mine.count
        var table = Table(["group", "op", "rank", "calls", "bytes (ledger)", "formula: calls", "floats", "bytes", ""],
                          align: [.left, .left, .right, .right, .right, .right, .left, .right, .left])
        for (k, (axis, op)) in keys.enumerated() {
            for rank in Set([0, last]).sorted() {
                let row = Array(all[(rank * width) ..< ((rank + 1) * width)])
                let held = Int(row[width - 1])
                let (calls, bytes) = (Int(row[2 * k]), Int(row[2 * k + 1]))
                guard let want = expected(axis, op, rank: rank, grid: g, setup: s, held: held) else {
                    if calls > 0 { table.add([axis.rawValue, op.rawValue, "\(rank)", "\(calls)", CommStats.format(bytes: bytes),
                                              "0", "(none expected)", "", "DIFFERS"]) }
                    continue
                }
                let same = calls == want.calls && bytes == 4 * want.floats
                table.add([axis.rawValue, op.rawValue, "\(rank)", "\(calls)", CommStats.format(bytes: bytes),
                           "\(want.calls)", want.formula, CommStats.format(bytes: 4 * want.floats), same ? "=" : "DIFFERS"])
            }
        }
        out("""

            Traffic of one step, \(FourDLayout.name(g)): per group, what world ranks 0 and \(last) handed to each \
            operation (the ledger of step 2) beside the formula (receives mirror the sends)
            \(table.render(indent: 2))
            """)
    }
}
