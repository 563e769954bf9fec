// The launcher's reports: many ranks are named in a short list, and ranks failing the same way
// are reported once. In-process worlds are bounded by what the machine runs as threads.
import XCTest
@testable import Distributed

final class LauncherTests: XCTestCase {
    func testRankListsShortenRunsToRanges() {
        XCTAssertEqual(Launcher.rankList([]), "")
        XCTAssertEqual(Launcher.rankList([3]), "3")
        XCTAssertEqual(Launcher.rankList([0, 1]), "0, 1")
        XCTAssertEqual(Launcher.rankList([0, 2, 3, 4, 5, 9]), "0, 2–5, 9")
        XCTAssertEqual(Launcher.rankList(Array(0..<100_000)), "0–99999")
    }

    func testInProcessWorldsAreBoundedByWhatTheMachineRuns() throws {
        XCTAssertGreaterThanOrEqual(InProcessWorld.maxRanks, 1)
        XCTAssertLessThanOrEqual(InProcessWorld.maxRanks, 256)
        XCTAssertThrowsError(try InProcessWorld(size: 100_000)) { error in
            guard case CommError.resources(let m) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("100000 in-process ranks") && m.contains("at most \(InProcessWorld.maxRanks)"), m)
            XCTAssertTrue(m.contains("mpirun -np 100000"), m)
        }
        let world = try InProcessWorld(size: InProcessWorld.maxRanks, timeout: 60)
        let ranks = try world.run { $0.rank }.map { try $0.get() }
        XCTAssertEqual(ranks, Array(0..<InProcessWorld.maxRanks), "the largest allowed world runs")
    }
}
