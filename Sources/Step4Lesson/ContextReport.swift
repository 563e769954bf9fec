// The pieces of lesson-cp's report: the layouts, the ring's steps, one verified step of a layout and
// an attention (with its traffic, key/value memory and attention time), the causal work per rank.
// Legend: cp = ranks, r = a rank, j = a ring step, B = batch, T = sequence, Tl = T/cp, nkv = key/value
// heads, hs = head size, L = layers.

import Distributed
import Foundation
import LessonKit
import Llama
import Step4_ContextParallel
import TensorCore
import Training

enum ContextReport {
    /// Positions of every rank.
    static func positions(length t: Int, cp: Int, layout: ContextLayout) -> [[Int]] {
        (0 ..< cp).map { contextPositions(length: t, ranks: cp, rank: $0, layout: layout) }
    }

    /// `0–7` or `0–3, 12–15`: a rank's positions as runs.
    static func runs(_ p: [Int]) -> String {
        var parts: [String] = [], start = p[0], last = p[0]
        for x in p.dropFirst() {
            if x == last + 1 { last = x; continue }
            parts.append("\(start)–\(last)"); (start, last) = (x, x)
        }
        parts.append("\(start)–\(last)")
        return parts.joined(separator: ", ")
    }

    /// Whether the layouts deal every position exactly once, T/cp to each rank, in increasing order
    /// (on the exercise track, before Task 4.1, they may not: the tables are then left out).
    static func valid(length t: Int, cp: Int) -> Bool {
        ContextLayout.allCases.allSatisfy { layout in
            let pos = positions(length: t, cp: cp, layout: layout)
            return pos.allSatisfy { $0.count == t / cp && $0 == $0.sorted() } && pos.flatMap { $0 }.sorted() == Array(0 ..< t)
        }
    }

    static func layoutTable(length t: Int, cp: Int) -> Table {
        var table = Table(["layout"] + (0 ..< cp).map { "rank \($0)" })
        for layout in ContextLayout.allCases {
            table.add([layout.rawValue] + positions(length: t, cp: cp, layout: layout).map(runs))
        }
        return table
    }

    /// What rank r does at step j with the block it holds (of rank r − j).
    static func status(queries q: [Int], keys k: [Int]) -> String {
        k.first! > q.last! ? "skipped" : k.last! <= q.first! ? "all" : "diagonal"
    }

    static func ringTable(length t: Int, cp: Int, layout: ContextLayout) -> Table {
        let pos = positions(length: t, cp: cp, layout: layout)
        var table = Table(["rank"] + (0 ..< cp).map { "step \($0)" })
        for r in 0 ..< cp {
            table.add(["\(r)"] + (0 ..< cp).map { j in
                let owner = (r - j + cp) % cp
                return "r\(owner) " + status(queries: pos[r], keys: pos[owner])
            })
        }
        return table
    }

    static func reference(_ p: LessonProblem, _ targets: [Int]) -> (loss: Float, logits: [Float], grads: [String: [Float]]) {
        let model = p.makeModel()
        let logits = model.logits(p.inputs, batch: p.batch, length: p.length)
        let loss = model.lossFunction(logits, targets)
        loss.backward()
        return (loss.item, logits.data, Dictionary(uniqueKeysWithValues: model.namedParameters.map { ($0.0, $0.1.grad!) }))
    }

    /// One verified step of a layout and an attention on this rank, with its traffic and key/value memory.
    struct Run {
        var checks: [Comparison]
        var traffic: CommStats
        var keyValueFloats: Int
    }

    static func step(_ p: LessonProblem, _ targets: [Int], reference: (loss: Float, logits: [Float], grads: [String: [Float]]),
                     group comm: Communicator, layout: ContextLayout, attention: ContextAttention) throws -> Run {
        let cp = comm.size, pos = positions(length: p.length, cp: cp, layout: layout), mine = pos[comm.rank]
        let model = p.makeModel()
        let group = applyContextParallel(to: model, group: comm, positions: pos, attention: attention)
        let before = comm.stats
        let ids = contextShard(p.inputs, batch: p.batch, length: p.length, positions: mine)
        let y = contextShard(targets, batch: p.batch, length: p.length, positions: mine)
        let logits = model.logits(ids, batch: p.batch, length: mine.count, positions: mine)   // [B, Tl, V]
        let loss = model.lossFunction(logits, y)
        loss.backward()
        try group.check()
        let traffic = comm.stats.since(before)
        let v = p.config.vocabSize
        let want = contextShard(Array(0 ..< p.batch * p.length), batch: p.batch, length: p.length, positions: mine)
            .flatMap { Array(reference.logits[($0 * v) ..< (($0 + 1) * v)]) }
        var checks = [ReferenceCheck.compare("logits", got: logits.data, want: want),
                      ReferenceCheck.compare("loss", got: [try comm.allReduced([loss.item], op: .average)[0]], want: [reference.loss])]
        for (name, t) in model.namedParameters {
            checks.append(ReferenceCheck.compare("grad \(name)", got: try comm.allReduced(t.grad!, op: .average),
                                                 want: reference.grads[name]!))
        }
        return Run(checks: checks, traffic: traffic, keyValueFloats: group.peakKeyValueFloats)
    }

    /// This rank's attention kernel time (ring, forward, all layers; waiting for blocks left out), the
    /// best of 3 forwards of one sequence of `timingLength` tokens: long enough for the causal
    /// imbalance to show above the noise.
    static func attentionTime(group comm: Communicator, layout: ContextLayout, timingLength t: Int = 1024) throws -> Double {
        let p = LessonProblem(config: LessonProblem.lessonConfig, batch: 1, length: t)
        let pos = positions(length: t, cp: comm.size, layout: layout), mine = pos[comm.rank]
        let model = p.makeModel()
        let group = applyContextParallel(to: model, group: comm, positions: pos, attention: .ring)
        let ids = contextShard(p.inputs, batch: 1, length: t, positions: mine)
        var best = Double.infinity
        for _ in 0 ..< 3 {
            let before = group.computeMilliseconds
            _ = Autograd.withoutGrad { model.logits(ids, batch: 1, length: mine.count, positions: mine) }
            try group.check()
            best = min(best, group.computeMilliseconds - before)
        }
        return best
    }

    /// Causal (query, key) pairs each rank's queries attend to, counted, beside its measured attention time.
    static func work(_ p: LessonProblem, runs: [String: Run], group: Communicator, out: (String) -> Void) throws {
        let cp = group.size
        var counted = Table(["layout"] + (0 ..< cp).map { "rank \($0)" } + ["max / mean"],
                            align: [.left] + Array(repeating: .right, count: cp + 1))
        var timed = [String]()
        for layout in ContextLayout.allCases {
            let pairs = positions(length: p.length, cp: cp, layout: layout).map { $0.reduce(0) { $0 + $1 + 1 } }
            let mean = Double(pairs.reduce(0, +)) / Double(cp)
            counted.add([layout.rawValue] + pairs.map(String.init) + [String(format: "%.2f", Double(pairs.max()!) / mean)])
            let ms = try group.allGather([Float(try attentionTime(group: group, layout: layout))])
            timed.append("\(layout.rawValue): " + ms.map { String(format: "%.2f ms", $0) }.joined(separator: ", "))
        }
        out("""

            Causal work per rank: (query, key) pairs its queries attend to, per head and row; contiguous gives rank r \
            (2r + 1)/cp² of them, zigzag 1/cp each
            \(counted.render(indent: 2))
            \(LessonOutput.timing("attention kernel time per rank (ring forward, 1 × 1024 tokens, all layers, best of 3):\n  "
                                  + timed.joined(separator: "\n  ")))
            """)
    }

    /// Bytes per layer from the ledger beside the formula, and the key/value floats held.
    static func trafficAndMemory(_ p: LessonProblem, runs: [String: Run], group: Communicator, out: (String) -> Void) throws {
        let (cp, c) = (group.size, p.config)
        let (layers, block) = (c.numHiddenLayers, p.batch * (p.length / cp) * c.numKeyValueHeads * c.headDim)   // B·Tl·nkv·hs
        let ring = runs["zigzag ring"]!.traffic, gather = runs["zigzag allgather"]!.traffic
        func perLayer(_ s: CommStats, _ op: CommOp) -> Int { s[group.name, op].bytes / layers }
        var t = Table(["attention", "op", "bytes per layer and rank", "formula"], align: [.left, .left, .right, .left])
        t.add(["ring", "send", CommStats.format(bytes: perLayer(ring, .send)),
               "(cp − 1) blocks of K and V forward + cp of K, V, dK, dV backward = \(CommStats.format(bytes: 4 * block * (2 * (cp - 1) + 4 * cp)))"])
        t.add(["allgather", "allGather", CommStats.format(bytes: perLayer(gather, .allGather)),
               "K and V of this rank's Tl tokens = \(CommStats.format(bytes: 4 * 2 * block))"])
        t.add(["allgather", "reduceScatter", CommStats.format(bytes: perLayer(gather, .reduceScatter)),
               "dK and dV of all T tokens = \(CommStats.format(bytes: 4 * 2 * block * cp))"])
        let kv = try group.allReduced([Float(runs["zigzag ring"]!.keyValueFloats), Float(runs["zigzag allgather"]!.keyValueFloats)], op: .max)
        out("""

            Traffic per layer (CommLedger, zigzag; one block = B·Tl·nkv·hs floats = \(CommStats.format(bytes: 4 * block)))
            \(t.render(indent: 2))
            Keys and values held at once by one attention call (measured): ring \(CommStats.format(bytes: 4 * Int(kv[0]))) \
            (the block in hand and the one arriving: O(T/cp)), all-gather \(CommStats.format(bytes: 4 * Int(kv[1]))) \
            (the whole sequence's: O(T))
            """)
    }

    /// The ring's steps as an SVG grid: rank × step, coloured by what the rank does with the block.
    static func ringSVG(length t: Int, cp: Int, layout: ContextLayout) -> String {
        let pos = positions(length: t, cp: cp, layout: layout), (w, h, left, top) = (110.0, 36.0, 70.0, 50.0)
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(left + w * Double(cp) + 20))" \
            height="\(Int(top + h * Double(cp) + 40))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="15">ring attention, \(layout.rawValue), cp = \(cp): the keys each rank holds at each step</text>

            """
        for j in 0 ..< cp { svg += "<text x=\"\(left + w * (Double(j) + 0.5))\" y=\"\(top - 8)\" text-anchor=\"middle\">step \(j)</text>\n" }
        for r in 0 ..< cp {
            svg += "<text x=\"10\" y=\"\(top + h * (Double(r) + 0.6))\">rank \(r)</text>\n"
            for j in 0 ..< cp {
                let owner = (r - j + cp) % cp, s = status(queries: pos[r], keys: pos[owner])
                let fill = s == "all" ? "#8fb8e8" : s == "diagonal" ? "#f2c57c" : "#eeeeee"
                svg += String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"%@\" stroke=\"white\"/>",
                              left + w * Double(j), top + h * Double(r), w, h, fill)
                svg += "<text x=\"\(left + w * (Double(j) + 0.5))\" y=\"\(top + h * (Double(r) + 0.6))\" text-anchor=\"middle\">"
                    + "keys of r\(owner): \(s)</text>\n"
            }
        }
        return svg + "</svg>\n"
    }
}
