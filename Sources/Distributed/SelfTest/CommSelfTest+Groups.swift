extension CommSelfTest {
    /// Sub-communicators, the process grid of every layout that fits the world, accounting.
    static func groupChecks(_ s: SelfTestSuite) {
        let c = s.comm, n = c.size, r = c.rank

        s.check("split by parity, reversed order") { e in
            let sub = try c.split(color: r % 2, key: -r, name: "parity")
            let members = (0 ..< n).filter { $0 % 2 == r % 2 }.reversed().map { $0 }
            e.that(sub.size == members.count, "size \(sub.size), expected \(members.count)")
            e.that(sub.rank == members.firstIndex(of: r), "rank \(sub.rank), expected \(members.firstIndex(of: r)!)")
            e.that(sub.name == "parity", "name '\(sub.name)'")
            e.equal(try sub.allGather([Float(r)]), members.map(Float.init), "members in group-rank order")
            let inner = try sub.split(color: sub.rank, key: 0, name: "single")
            e.that(inner.size == 1 && inner.rank == 0, "a split of a split into singletons: size \(inner.size)")
            e.equal(try inner.allReduced([Float(r)]), [Float(r)], "singleton allReduce")
        }

        s.check("split with a negative color is an error") { e in
            e.throwsError("split(color: -1)", { if case .invalidArgument = $0 { true } else { false } }) {
                _ = try c.split(color: -1, key: 0, name: "bad")
            }
        }

        for (dp, pp, cp, tp) in gridConfigs(worldSize: n) {
            s.check("ProcessGrid dp \(dp) × pp \(pp) × cp \(cp) × tp \(tp)") { e in
                try checkGrid(try ProcessGrid(dp: dp, pp: pp, cp: cp, tp: tp, world: c), &e)
            }
        }

        s.check("ProcessGrid rejects sizes that do not fit the world") { e in
            e.throwsError("world \(n) as dp \(n + 1)", {
                $0.description.contains("world size \(n) != dp \(n + 1) × pp 1 × cp 1 × tp 1 (= \(n + 1))")
            }) { _ = try ProcessGrid(dp: n + 1, pp: 1, cp: 1, tp: 1, world: c) }
            e.throwsError("tp 0", { $0.description.contains("tp size 0 is invalid") }) {
                _ = try ProcessGrid(dp: n, pp: 1, cp: 1, tp: 0, world: c)
            }
        }

        s.check("accounting counts calls and bytes per group") { e in
            let before = c.stats
            var x = [Float](repeating: 1, count: 1000)
            try c.allReduce(&x)
            try c.allReduce(&x, op: .max)
            _ = try c.allGather([Float](repeating: 1, count: 10))
            let sub = try c.split(color: 0, key: r, name: "all")
            _ = try sub.reduceScatter([Float](repeating: 1, count: 4 * n))
            let d = c.stats.since(before)
            e.that(d["world", .allReduce].traffic == .init(calls: 2, bytes: 8000, ringBytes: 2 * (2 * (n - 1) * 4000 / n)),
                   "world allReduce \(d["world", .allReduce])")
            e.that(d["world", .allGather].traffic == .init(calls: 1, bytes: 40, ringBytes: (n - 1) * 40),
                   "world allGather \(d["world", .allGather])")
            e.that(d["world", .split].calls == 1, "world split \(d["world", .split])")
            e.that(d["all", .reduceScatter].traffic == .init(calls: 1, bytes: 16 * n, ringBytes: (n - 1) * 16),
                   "group 'all' reduceScatter \(d["all", .reduceScatter])")
        }
    }

    /// Every (dp, pp, cp, tp) with sizes in {1, 2} whose product is `worldSize`, the 8-rank
    /// layouts 2×2×2×1 and 1×1×2×4, and the four one-axis layouts (so odd sizes get some too).
    static func gridConfigs(worldSize n: Int) -> [(Int, Int, Int, Int)] {
        var all: [(Int, Int, Int, Int)] = []
        for dp in 1 ... 2 {
            for pp in 1 ... 2 { for cp in 1 ... 2 { for tp in 1 ... 2 { all.append((dp, pp, cp, tp)) } } }
        }
        all += [(2, 2, 2, 1), (1, 1, 2, 4), (n, 1, 1, 1), (1, n, 1, 1), (1, 1, n, 1), (1, 1, 1, n)]
        var seen = Set<[Int]>()
        return all.filter { $0.0 * $0.1 * $0.2 * $0.3 == n && seen.insert([$0.0, $0.1, $0.2, $0.3]).inserted }
    }

    /// Each group really holds the ranks the layout says, in that order, and a ring/pipeline
    /// message reaches the neighbour the grid names.
    static func checkGrid(_ g: ProcessGrid, _ e: inout Expect) throws {
        let groups: [(String, Communicator, [Int], Int)] = [
            ("tp", g.tpGroup, g.tpGroupRanks, g.tpRank), ("cp", g.cpGroup, g.cpGroupRanks, g.cpRank),
            ("pp", g.ppGroup, g.ppGroupRanks, g.ppRank), ("dp", g.dpGroup, g.dpGroupRanks, g.dpRank),
            ("cp+dp", g.cpDPGroup, g.cpDPGroupRanks, g.dpRank * g.cpSize + g.cpRank),
        ]
        for (name, comm, ranks, myRank) in groups {
            e.that(comm.name == name, "group named '\(comm.name)', expected '\(name)'")
            e.that(comm.rank == myRank, "\(name) rank \(comm.rank), expected \(myRank)")
            e.equal(try comm.allGather([Float(g.worldRank)]), ranks.map(Float.init), "\(name) members")
        }
        let want = "TP(\(g.tpSize))-CP(\(g.cpSize))-PP(\(g.ppSize))-DP(\(g.dpSize))-Rank(\(g.worldRank))"
        e.that(g.description == want, "description '\(g.description)', expected '\(want)'")
        // Pipeline: pass the world rank forward one stage, through the world communicator.
        let forward = try g.ppNextRank.map { try g.world.isend([Float(g.worldRank)], to: $0, tag: 11) }
        if let prev = g.ppPrevRank {
            e.equal(try g.world.recv(count: 1, from: prev, tag: 11), [Float(prev)], "message from previous stage")
        }
        try forward?.wait()
        // Context ring: send to cpSendRank, receive from cpRecvRank.
        let ring = try g.world.isend([Float(g.worldRank)], to: g.cpSendRank, tag: 12)
        e.equal(try g.world.recv(count: 1, from: g.cpRecvRank, tag: 12), [Float(g.cpRecvRank)], "cp ring")
        try ring.wait()
    }
}
