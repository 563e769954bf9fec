// Aligned plain-text tables for lesson output: every lesson prints its verification and its
// traffic as one, so the layout is the same everywhere and stable enough to diff in CI.

/// A table of strings printed with aligned columns.
///
///     var t = Table(["group", "max|Δ|", ""], align: [.left, .right, .left])
///     t.add(["model.norm", "1.2e-08", "PASS"])
///     print(t.render(indent: 2))
public struct Table: Sendable {
    public enum Alignment: Sendable { case left, right }

    public let header: [String]
    public var align: [Alignment]
    public private(set) var rows: [[String]] = []

    /// Columns named by `header`; alignment defaults to left for the first column, right after.
    public init(_ header: [String], align: [Alignment]? = nil) {
        self.header = header
        self.align = align ?? header.indices.map { $0 == 0 ? .left : .right }
        precondition(self.align.count == header.count, "table: \(header.count) columns, \(self.align.count) alignments")
    }

    public mutating func add(_ row: [String]) {
        precondition(row.count == header.count, "table row has \(row.count) cells, header \(header.count): \(row)")
        rows.append(row)
    }

    /// Header, a rule of dashes, then the rows; columns separated by two spaces, no trailing spaces.
    public func render(indent: Int = 0) -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        let pad = String(repeating: " ", count: indent)
        func line(_ cells: [String]) -> String {
            let text = cells.indices.map { c -> String in
                let fill = String(repeating: " ", count: widths[c] - cells[c].count)
                return align[c] == .left ? cells[c] + fill : fill + cells[c]
            }.joined(separator: "  ")
            return pad + String(text.reversed().drop(while: { $0 == " " }).reversed())
        }
        let rule = pad + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// Conventions for lesson output that CI compares with the lesson text.
public enum LessonOutput {
    /// Lines that depend on timing start with this mark. `scripts/check-lesson-output.sh` masks
    /// their numbers and the bars between `|…|` before comparing; every other line must match
    /// exactly, so print deterministic values (losses, max |Δ|, bytes) with a fixed format.
    public static let timingMark = "~ "

    /// `line` marked as timing-dependent (each line of it, if it has several).
    public static func timing(_ line: String) -> String {
        line.split(separator: "\n", omittingEmptySubsequences: false).map { timingMark + $0 }.joined(separator: "\n")
    }

    /// A float in a fixed format for comparisons in CI: `%.6f`.
    public static func fixed(_ x: Float, digits: Int = 6) -> String { String(format: "%.\(digits)f", x) }

    /// A difference in a fixed format: `%.1e` (`0.0e+00` when exact).
    public static func diff(_ x: Float) -> String { String(format: "%.1e", x) }
}
