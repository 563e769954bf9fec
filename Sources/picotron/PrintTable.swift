// A plain text table for the commands' reports (plan, bench).

import Foundation

/// Left-aligned first column, right-aligned numbers; with `note`, the last column is free text.
func printTable(_ rows: [[String]], note: Bool = false) {
    let widths = (0 ..< rows.map(\.count).max()!).map { i in rows.map { i < $0.count ? $0[i].count : 0 }.max()! }
    for row in rows {
        let cells = row.enumerated().map { i, cell in
            i == 0 ? cell.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                : note && i == row.count - 1 ? cell
                : String(repeating: " ", count: widths[i] - cell.count) + cell
        }
        print("  " + cells.joined(separator: "  "))
    }
}
