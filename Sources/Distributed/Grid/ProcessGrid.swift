/// The 4D process grid of one rank: its coordinates, its five groups and its neighbours,
/// built from the world communicator and passed explicitly to whatever needs the topology
/// (never a global). Mirrors picotron's `ProcessGroupManager` field by field.
///
/// Neighbour ranks (`ppNextRank`, `cpSendRank`, …) are *world* ranks, as in picotron; use them
/// with `world`. Inside `ppGroup`/`cpGroup` the same neighbours are group ranks
/// `ppRank ± 1` and `(cpRank ± 1) mod cpSize`.
public struct ProcessGrid: CustomStringConvertible {
    public let layout: GridLayout
    public let world: Communicator
    public let worldRank: Int

    public let tpGroup: Communicator, cpGroup: Communicator, ppGroup: Communicator
    public let dpGroup: Communicator, cpDPGroup: Communicator

    /// This rank's coordinates in the grid (= its rank in each group).
    public var dpRank: Int { layout.coordinates(of: worldRank).dp }
    public var ppRank: Int { layout.coordinates(of: worldRank).pp }
    public var cpRank: Int { layout.coordinates(of: worldRank).cp }
    public var tpRank: Int { layout.coordinates(of: worldRank).tp }

    public var dpSize: Int { layout.dp }
    public var ppSize: Int { layout.pp }
    public var cpSize: Int { layout.cp }
    public var tpSize: Int { layout.tp }
    public var cpDPSize: Int { layout.cp * layout.dp }
    public var worldSize: Int { layout.worldSize }

    /// The communicator of `axis` (`grid.group(.tp)` is `grid.tpGroup`).
    public func group(_ axis: GridAxis) -> Communicator {
        switch axis {
        case .tp: return tpGroup
        case .cp: return cpGroup
        case .pp: return ppGroup
        case .dp: return dpGroup
        case .cpdp: return cpDPGroup
        }
    }

    /// World ranks of each of this rank's groups, in group-rank order (picotron's `*_group_ids`).
    public var tpGroupRanks: [Int] { layout.members(of: .tp, containing: worldRank) }
    public var cpGroupRanks: [Int] { layout.members(of: .cp, containing: worldRank) }
    public var ppGroupRanks: [Int] { layout.members(of: .pp, containing: worldRank) }
    public var dpGroupRanks: [Int] { layout.members(of: .dp, containing: worldRank) }
    public var cpDPGroupRanks: [Int] { layout.members(of: .cpdp, containing: worldRank) }

    // Pipeline: stage order and neighbours (nil at the ends).
    public var ppIsFirstStage: Bool { ppRank == 0 }
    public var ppIsLastStage: Bool { ppRank == ppSize - 1 }
    public var ppFirstRank: Int { ppGroupRanks[0] }
    public var ppLastRank: Int { ppGroupRanks[ppSize - 1] }
    public var ppNextRank: Int? { ppIsLastStage ? nil : ppGroupRanks[ppRank + 1] }
    public var ppPrevRank: Int? { ppIsFirstStage ? nil : ppGroupRanks[ppRank - 1] }

    // Context: the ring attention passes key/value blocks to the next rank, from the previous.
    public var cpSendRank: Int { cpGroupRanks[(cpRank + 1) % cpSize] }
    public var cpRecvRank: Int { cpGroupRanks[(cpRank - 1 + cpSize) % cpSize] }

    public var tpFirstRank: Int { tpGroupRanks[0] }
    public var tpLastRank: Int { tpGroupRanks[tpSize - 1] }
    public var dpFirstRank: Int { dpGroupRanks[0] }
    public var dpLastRank: Int { dpGroupRanks[dpSize - 1] }

    /// Splits `world` into the tp, cp, pp, dp and cp+dp groups. A collective over `world`:
    /// every rank must call it with the same sizes.
    public init(dp: Int, pp: Int, cp: Int, tp: Int, world: Communicator) throws(CommError) {
        let layout = try GridLayout(dp: dp, pp: pp, cp: cp, tp: tp)
        guard layout.worldSize == world.size else {
            let n = layout.worldSize
            throw .badGrid(
                "world size \(world.size) != dp \(dp) × pp \(pp) × cp \(cp) × tp \(tp) (= \(n)): start \(n) ranks "
                    + "(--ranks \(n) or mpirun -np \(n)) or change the parallel sizes so their product is "
                    + "\(world.size)")
        }
        let r = world.rank
        func group(_ axis: GridAxis) throws(CommError) -> Communicator {
            let key = layout.members(of: axis, containing: r).firstIndex(of: r)!
            return try world.split(color: layout.groupIndex(of: axis, containing: r), key: key, name: axis.rawValue)
        }
        self.layout = layout
        self.world = world
        self.worldRank = r
        tpGroup = try group(.tp)
        cpGroup = try group(.cp)
        ppGroup = try group(.pp)
        dpGroup = try group(.dp)
        cpDPGroup = try group(.cpdp)
    }

    /// `TP(2)-CP(1)-PP(2)-DP(2)-Rank(3)`, as picotron prints it.
    public var description: String {
        "TP(\(tpSize))-CP(\(cpSize))-PP(\(ppSize))-DP(\(dpSize))-Rank(\(worldRank))"
    }
}
