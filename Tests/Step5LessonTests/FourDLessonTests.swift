// `lesson-4d` on in-process ranks: the rank layout against groups written out by hand, every grid
// training as the single process (losses and step-1 gradients), the ledger equal to the formulas,
// and a grid that does not fill the world refused with the fix.

import Distributed
import LessonKit
import LessonTesting
import Step5Lesson
import XCTest

final class FourDLessonTests: XCTestCase {
    /// The groups of every rank, written out from picotron's `grid[dp][pp][cp][tp]` by hand:
    /// (rank, tp group, cp group, pp group, dp group, cp+dp group).
    typealias Row = (rank: Int, tp: [Int], cp: [Int], pp: [Int], dp: [Int], cpdp: [Int])

    // dp 2 × pp 2 × tp 2: tp partners are neighbours, pp partners 2 apart, dp partners 4 apart.
    let dp2pp2tp2: [Row] = [
        (0, [0, 1], [0], [0, 2], [0, 4], [0, 4]), (1, [0, 1], [1], [1, 3], [1, 5], [1, 5]),
        (2, [2, 3], [2], [0, 2], [2, 6], [2, 6]), (3, [2, 3], [3], [1, 3], [3, 7], [3, 7]),
        (4, [4, 5], [4], [4, 6], [0, 4], [0, 4]), (5, [4, 5], [5], [5, 7], [1, 5], [1, 5]),
        (6, [6, 7], [6], [4, 6], [2, 6], [2, 6]), (7, [6, 7], [7], [5, 7], [3, 7], [3, 7]),
    ]
    // dp 2 × cp 2 × tp 2 (pp 1): cp partners 2 apart, dp 4 apart; cp+dp holds all four of a tp rank.
    let dp2cp2tp2: [Row] = [
        (0, [0, 1], [0, 2], [0], [0, 4], [0, 2, 4, 6]), (1, [0, 1], [1, 3], [1], [1, 5], [1, 3, 5, 7]),
        (2, [2, 3], [0, 2], [2], [2, 6], [0, 2, 4, 6]), (3, [2, 3], [1, 3], [3], [3, 7], [1, 3, 5, 7]),
        (4, [4, 5], [4, 6], [4], [0, 4], [0, 2, 4, 6]), (5, [4, 5], [5, 7], [5], [1, 5], [1, 3, 5, 7]),
        (6, [6, 7], [4, 6], [6], [2, 6], [0, 2, 4, 6]), (7, [6, 7], [5, 7], [7], [3, 7], [1, 3, 5, 7]),
    ]

    func assertLayout(_ grid: GridLayout, _ want: [Row], file: StaticString = #filePath, line: UInt = #line) {
        let rows = FourDLayout.table(grid).rows
        XCTAssertEqual(rows.count, want.count, file: file, line: line)
        for (got, w) in zip(rows, want) {
            let groups = [w.tp, w.cp, w.pp, w.dp, w.cpdp].map { $0.map(String.init).joined(separator: ",") }
            XCTAssertEqual(got[0], "\(w.rank)", file: file, line: line)
            XCTAssertEqual(Array(got[5...]), groups, "rank \(w.rank) of \(FourDLayout.name(grid))", file: file, line: line)
        }
    }

    func testTheLayoutTableNamesEachRanksGroups() throws {
        assertLayout(try GridLayout(dp: 2, pp: 2, cp: 1, tp: 2), dp2pp2tp2)
        assertLayout(try GridLayout(dp: 2, pp: 1, cp: 2, tp: 2), dp2cp2tp2)
        // And the groups the table prints are the ones the grid really splits: each rank's communicators.
        let grid = try GridLayout(dp: 2, pp: 2, cp: 1, tp: 2)
        let sizes = try onRanks(8) { world -> [Int] in
            let g = try ProcessGrid(dp: 2, pp: 2, cp: 1, tp: 2, world: world)
            return [g.tpGroupRanks, g.ppGroupRanks, g.dpGroupRanks].flatMap { $0 }
        }
        for (rank, members) in sizes.enumerated() {
            XCTAssertEqual(members, dp2pp2tp2[rank].tp + dp2pp2tp2[rank].pp + dp2pp2tp2[rank].dp, "rank \(rank)")
        }
        XCTAssertEqual(try FourDLayout.grid(world: 8), grid, "8 ranks default to dp 2 × pp 2 × tp 2")
        XCTAssertEqual(FourDLayout.withContext(grid), try GridLayout(dp: 1, pp: 2, cp: 2, tp: 2))
    }

    func testEveryGridTrainsAsTheSingleProcessAndSendsWhatTheFormulasSay() throws {
        let lines = LessonLines()
        var options = FourDLesson.Options()
        options.throughput = false
        let verdicts = try onRanks(8) { world in try FourDLesson.run(world: world, options: options) { lines.add($0) } }[0]
        let all = lines.text.joined(separator: "\n")
        XCTAssertEqual(verdicts.map { FourDLayout.name($0.grid) },
                       ["dp 2 × pp 2 × cp 1 × tp 2", "dp 1 × pp 2 × cp 2 × tp 2"])
        for v in verdicts {
            XCTAssertTrue(v.passed, "\(FourDLayout.name(v.grid)):\n\(all)")
            // Every rank compares its stage's tensors: 2 stages × (embedding + 9 of a layer | 9 + norm + head) × 4.
            XCTAssertEqual(v.compared, 84, FourDLayout.name(v.grid))
        }
        XCTAssertTrue(lines.text.contains("PASS: every grid trains as the single process does"), all)
        let traffic = lines.text.filter { $0.contains(" allReduce ") || $0.contains(" send ") }
        XCTAssertEqual(traffic.count, 8 + 12, "traffic rows of both grids:\n\(all)")
        for line in traffic { XCTAssertTrue(line.hasSuffix("  ="), "the ledger differs from the formula: \(line)") }
    }

    func testAnotherGridWithContextVerifies() throws {
        var options = FourDLesson.Options()
        (options.verifyOnly, options.dp, options.cp, options.tp) = (true, 2, 2, 1)
        let verdicts = try onRanks(4) { world in try FourDLesson.run(world: world, options: options) { _ in } }[0]
        XCTAssertEqual(verdicts.count, 1)
        XCTAssertTrue(verdicts[0].passed && verdicts[0].compared == 4 * 21, FourDLayout.name(verdicts[0].grid))
    }

    func testAGridThatDoesNotFillTheWorldIsRefusedWithTheFix() throws {
        var options = FourDLesson.Options()
        (options.dp, options.tp) = (2, 2)
        XCTAssertThrowsError(try FourDLesson.grids(world: 8, options: options)) { error in
            XCTAssertTrue("\(error)".contains("pass --ranks 4"), "\(error)")
        }
    }
}
