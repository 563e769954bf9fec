import Distributed
import XCTest

/// Group memberships against picotron's layout, `torch.arange(world).view(dp, pp, cp, tp)`.
/// Expected members are written out by hand for the 8-rank layouts and rebuilt for every
/// {1,2}⁴ layout by slicing a nested array the way picotron's process_group_manager.py
/// does, independently of `GridLayout`'s arithmetic.
final class ProcessGridTests: XCTestCase {
    /// What one rank observed: each group's members measured by an all-gather of world ranks.
    struct Observed {
        var description: String
        var members: [String: [Int]]
        var reported: [String: [Int]]
        var ppPrev: Int?, ppNext: Int?, first: Bool, last: Bool
        var cpSend: Int, cpRecv: Int
    }

    private func observe(_ dp: Int, _ pp: Int, _ cp: Int, _ tp: Int) throws -> [Observed] {
        try onRanks(dp * pp * cp * tp) { world in
            let g = try ProcessGrid(dp: dp, pp: pp, cp: cp, tp: tp, world: world)
            let groups: [(String, Communicator, [Int])] = [
                ("tp", g.tpGroup, g.tpGroupRanks), ("cp", g.cpGroup, g.cpGroupRanks), ("pp", g.ppGroup, g.ppGroupRanks),
                ("dp", g.dpGroup, g.dpGroupRanks), ("cp+dp", g.cpDPGroup, g.cpDPGroupRanks),
            ]
            var members: [String: [Int]] = [:], reported: [String: [Int]] = [:]
            for (name, comm, ranks) in groups {
                members[name] = try comm.allGather([Float(world.rank)]).map { Int($0) }
                reported[name] = ranks
            }
            return Observed(
                description: g.description, members: members, reported: reported, ppPrev: g.ppPrevRank,
                ppNext: g.ppNextRank, first: g.ppIsFirstStage, last: g.ppIsLastStage, cpSend: g.cpSendRank,
                cpRecv: g.cpRecvRank)
        }
    }

    /// Checks every rank's groups against `expected[axis]`, a partition of the world.
    private func assertGroups(_ obs: [Observed], _ expected: [String: [[Int]]], _ label: String) {
        for (r, o) in obs.enumerated() {
            for (axis, partition) in expected {
                let want = partition.first { $0.contains(r) }
                XCTAssertEqual(o.members[axis], want, "\(label) rank \(r): \(axis) group members")
                XCTAssertEqual(o.reported[axis], want, "\(label) rank \(r): \(axis)GroupRanks")
            }
        }
    }

    func testDP2PP2CP2TP1ByHand() throws {
        let obs = try observe(2, 2, 2, 1)
        assertGroups(obs, [
            "tp": (0 ..< 8).map { [$0] },
            "cp": [[0, 1], [2, 3], [4, 5], [6, 7]],
            "pp": [[0, 2], [1, 3], [4, 6], [5, 7]],
            "dp": [[0, 4], [1, 5], [2, 6], [3, 7]],
            "cp+dp": [[0, 1, 4, 5], [2, 3, 6, 7]],
        ], "2x2x2x1")
        XCTAssertEqual(obs[5].description, "TP(1)-CP(2)-PP(2)-DP(2)-Rank(5)")
        XCTAssertEqual(obs[5].cpSend, 4)
        XCTAssertEqual(obs[5].cpRecv, 4)
        XCTAssertEqual(obs[5].ppPrev, nil)
        XCTAssertEqual(obs[5].ppNext, 7)
    }

    func testDP1PP1CP2TP4ByHand() throws {
        let obs = try observe(1, 1, 2, 4)
        assertGroups(obs, [
            "tp": [[0, 1, 2, 3], [4, 5, 6, 7]],
            "cp": [[0, 4], [1, 5], [2, 6], [3, 7]],
            "pp": (0 ..< 8).map { [$0] },
            "dp": (0 ..< 8).map { [$0] },
            "cp+dp": [[0, 4], [1, 5], [2, 6], [3, 7]],
        ], "1x1x2x4")
        XCTAssertEqual(obs[1].cpSend, 5)
        XCTAssertEqual(obs[1].cpRecv, 5)
        XCTAssertEqual(obs[6].description, "TP(4)-CP(2)-PP(1)-DP(1)-Rank(6)")
        XCTAssertTrue(obs[6].first && obs[6].last)
    }

    func testDP2PP2CP1TP2ByHand() throws {
        let obs = try observe(2, 2, 1, 2)
        assertGroups(obs, [
            "tp": [[0, 1], [2, 3], [4, 5], [6, 7]],
            "cp": (0 ..< 8).map { [$0] },
            "pp": [[0, 2], [1, 3], [4, 6], [5, 7]],
            "dp": [[0, 4], [1, 5], [2, 6], [3, 7]],
            "cp+dp": [[0, 4], [1, 5], [2, 6], [3, 7]],
        ], "2x2x1x2")
        XCTAssertEqual(obs[3].description, "TP(2)-CP(1)-PP(2)-DP(2)-Rank(3)")
        XCTAssertEqual(obs[3].ppPrev, 1)
        XCTAssertEqual(obs[3].ppNext, nil)
        XCTAssertTrue(obs[3].last && !obs[3].first)
        XCTAssertEqual(obs[1].ppNext, 3)
        XCTAssertTrue(obs[1].first)
    }

    func testDP2PP1CP2TP2ByHand() throws {
        // cp+dp = grid[:, p, :, t].flatten(): dp major, cp minor.
        let obs = try observe(2, 1, 2, 2)
        assertGroups(obs, [
            "tp": [[0, 1], [2, 3], [4, 5], [6, 7]],
            "cp": [[0, 2], [1, 3], [4, 6], [5, 7]],
            "pp": (0 ..< 8).map { [$0] },
            "dp": [[0, 4], [1, 5], [2, 6], [3, 7]],
            "cp+dp": [[0, 2, 4, 6], [1, 3, 5, 7]],
        ], "2x1x2x2")
    }

    func testFourStageRings() throws {
        let cp = try observe(1, 1, 4, 1)
        XCTAssertEqual(cp.map(\.cpSend), [1, 2, 3, 0])
        XCTAssertEqual(cp.map(\.cpRecv), [3, 0, 1, 2])
        let pp = try observe(1, 4, 1, 1)
        XCTAssertEqual(pp.map(\.ppNext), [1, 2, 3, nil])
        XCTAssertEqual(pp.map(\.ppPrev), [nil, 0, 1, 2])
        XCTAssertEqual(pp.map(\.first), [true, false, false, false])
        XCTAssertEqual(pp.map(\.last), [false, false, false, true])
    }

    /// Every layout with dp, pp, cp, tp ∈ {1, 2}, against picotron's slicing of the grid.
    func testEveryLayoutOfOnesAndTwos() throws {
        for dp in 1 ... 2 { for pp in 1 ... 2 { for cp in 1 ... 2 { for tp in 1 ... 2 {
            let label = "dp\(dp) pp\(pp) cp\(cp) tp\(tp)"
            let ref = PicotronReference(dp: dp, pp: pp, cp: cp, tp: tp)
            let obs = try observe(dp, pp, cp, tp)
            assertGroups(obs, ref.groups, label)
            for (r, o) in obs.enumerated() {
                let ppIDs = ref.groups["pp"]!.first { $0.contains(r) }!
                let i = ppIDs.firstIndex(of: r)!
                XCTAssertEqual(o.ppPrev, i > 0 ? ppIDs[i - 1] : nil, "\(label) rank \(r) pp prev")
                XCTAssertEqual(o.ppNext, i + 1 < pp ? ppIDs[i + 1] : nil, "\(label) rank \(r) pp next")
                let cpIDs = ref.groups["cp"]!.first { $0.contains(r) }!
                let j = cpIDs.firstIndex(of: r)!
                XCTAssertEqual(o.cpSend, cpIDs[(j + 1) % cp], "\(label) rank \(r) cp send")
                XCTAssertEqual(o.cpRecv, cpIDs[(j - 1 + cp) % cp], "\(label) rank \(r) cp recv")
                XCTAssertEqual(o.description, "TP(\(tp))-CP(\(cp))-PP(\(pp))-DP(\(dp))-Rank(\(r))")
            }
        } } } }
    }

    func testWrongWorldSizeSaysWhatToChange() throws {
        let world = try InProcessWorld(size: 6)
        let results = try world.run { try ProcessGrid(dp: 2, pp: 2, cp: 1, tp: 2, world: $0) }
        for result in results {
            let message = String(describing: error(result)!)
            XCTAssertTrue(message.hasPrefix(
                "world size 6 != dp 2 × pp 2 × cp 1 × tp 2 (= 8): start 8 ranks (--ranks 8 or mpirun -np 8) "
                    + "or change the parallel sizes"), message)
        }
    }

    func testSizesBelowOneAreErrors() {
        XCTAssertThrowsError(try GridLayout(dp: 1, pp: 0, cp: 1, tp: 1)) { e in
            XCTAssertEqual(
                String(describing: e), "pp size 0 is invalid (dp 1, pp 0, cp 1, tp 1): every size must be >= 1")
        }
        XCTAssertThrowsError(try GridLayout(dp: -2, pp: 1, cp: 1, tp: 1))
    }

    func testCoordinatesRoundTrip() throws {
        let l = try GridLayout(dp: 3, pp: 2, cp: 2, tp: 2)
        for r in 0 ..< l.worldSize { XCTAssertEqual(l.rank(l.coordinates(of: r)), r) }
        XCTAssertEqual(l.coordinates(of: 13), .init(dp: 1, pp: 1, cp: 0, tp: 1))
    }
}

/// picotron's process_group_manager.py, transcribed: build `grid[d][p][c][t]` by counting,
/// then enumerate groups exactly as its `new_subgroups_by_enumeration` lists do.
struct PicotronReference {
    var groups: [String: [[Int]]] = [:]

    init(dp: Int, pp: Int, cp: Int, tp: Int) {
        // grid[d][p][c][t] = torch.arange(dp * pp * cp * tp).view(dp, pp, cp, tp)
        var grid: [[[[Int]]]] = []
        var k = 0
        for _ in 0 ..< dp {
            grid.append((0 ..< pp).map { _ in (0 ..< cp).map { _ in (0 ..< tp).map { _ in k += 1; return k - 1 } } })
        }
        let (D, P, C, T) = (0 ..< dp, 0 ..< pp, 0 ..< cp, 0 ..< tp)
        var tpG: [[Int]] = [], cpG: [[Int]] = [], ppG: [[Int]] = [], dpG: [[Int]] = [], cpdpG: [[Int]] = []
        // tp_group: [grid[d, p, c, :] for d for p for c]
        for d in D { for p in P { for c in C { tpG.append(grid[d][p][c]) } } }
        // cp_group: [grid[d, p, :, t] for d for p for t]
        for d in D { for p in P { for t in T { cpG.append(C.map { grid[d][p][$0][t] }) } } }
        // pp_group: [grid[d, :, c, t] for d for c for t]
        for d in D { for c in C { for t in T { ppG.append(P.map { grid[d][$0][c][t] }) } } }
        // dp_group: [grid[:, p, c, t] for p for c for t]
        for p in P { for c in C { for t in T { dpG.append(D.map { grid[$0][p][c][t] }) } } }
        // cp_dp_group: [grid[:, p, :, t].flatten() for p for t]
        for p in P { for t in T { cpdpG.append(D.flatMap { d in C.map { grid[d][p][$0][t] } }) } }
        groups = ["tp": tpG, "cp": cpG, "pp": ppG, "dp": dpG, "cp+dp": cpdpG]
    }
}
