/// Where each rank sits in the 4D grid, as picotron lays it out
/// (`grid = torch.arange(world_size).view(dp, pp, cp, tp)`, tp fastest):
///
///     rank = ((d · pp + p) · cp + c) · tp + t
///
/// so tensor-parallel partners are neighbours (they talk most), then context, pipeline and
/// data parallel. Pure arithmetic: no communicator, so it can be printed and tested alone.
public struct GridLayout: Sendable, Equatable, CustomStringConvertible {
    public let dp: Int, pp: Int, cp: Int, tp: Int

    /// A rank's position: `(dp, pp, cp, tp)` indices.
    public struct Coordinates: Sendable, Equatable {
        public var dp: Int, pp: Int, cp: Int, tp: Int
        public init(dp: Int, pp: Int, cp: Int, tp: Int) { (self.dp, self.pp, self.cp, self.tp) = (dp, pp, cp, tp) }
    }

    /// Throws unless every size is >= 1.
    public init(dp: Int, pp: Int, cp: Int, tp: Int) throws(CommError) {
        let sizes = [("dp", dp), ("pp", pp), ("cp", cp), ("tp", tp)]
        if let (n, v) = sizes.first(where: { $0.1 < 1 }) {
            throw .badGrid(
                "\(n) size \(v) is invalid (dp \(dp), pp \(pp), cp \(cp), tp \(tp)): every size must be >= 1")
        }
        (self.dp, self.pp, self.cp, self.tp) = (dp, pp, cp, tp)
    }

    public var worldSize: Int { dp * pp * cp * tp }

    public func rank(_ c: Coordinates) -> Int { ((c.dp * pp + c.pp) * cp + c.cp) * tp + c.tp }

    public func coordinates(of rank: Int) -> Coordinates {
        precondition(rank >= 0 && rank < worldSize, "rank \(rank) outside 0..<\(worldSize)")
        return Coordinates(dp: rank / (pp * cp * tp), pp: rank / (cp * tp) % pp, cp: rank / tp % cp, tp: rank % tp)
    }

    /// The world ranks of `rank`'s group along `axis`, in group-rank order
    /// (picotron's `tp_group_ids`, `cp_group_ids`, `pp_group_ids`, `dp_group_ids`,
    /// and `cp_dp_group_ids` = `grid[:, p, :, t].flatten()`, dp major, cp minor).
    public func members(of axis: GridAxis, containing rank: Int) -> [Int] {
        let c = coordinates(of: rank)
        func at(_ f: (inout Coordinates) -> Void) -> Int {
            var x = c
            f(&x)
            return self.rank(x)
        }
        switch axis {
        case .tp: return (0 ..< tp).map { i in at { $0.tp = i } }
        case .cp: return (0 ..< cp).map { i in at { $0.cp = i } }
        case .pp: return (0 ..< pp).map { i in at { $0.pp = i } }
        case .dp: return (0 ..< dp).map { i in at { $0.dp = i } }
        case .cpdp: return (0 ..< dp).flatMap { d in (0 ..< cp).map { i in at { $0.dp = d; $0.cp = i } } }
        }
    }

    /// Which group of `axis` holds `rank`: the index of that group in picotron's enumeration
    /// order (used as the split color; any value equal within a group would do).
    public func groupIndex(of axis: GridAxis, containing rank: Int) -> Int {
        let c = coordinates(of: rank)
        switch axis {
        case .tp: return (c.dp * pp + c.pp) * cp + c.cp
        case .cp: return (c.dp * pp + c.pp) * tp + c.tp
        case .pp: return (c.dp * cp + c.cp) * tp + c.tp
        case .dp: return (c.pp * cp + c.cp) * tp + c.tp
        case .cpdp: return c.pp * tp + c.tp
        }
    }

    /// `DP(2)×PP(2)×CP(1)×TP(2) = 8 ranks`
    public var description: String { "DP(\(dp))×PP(\(pp))×CP(\(cp))×TP(\(tp)) = \(worldSize) ranks" }
}

/// The groups of the 4D grid. `cpdp` is the context+data group: ranks holding the same
/// parameters (same pp stage and tp shard), across which gradients are averaged.
public enum GridAxis: String, Sendable, CaseIterable {
    case tp, cp, pp, dp
    case cpdp = "cp+dp"
}
