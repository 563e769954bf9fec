// The launcher's reports: many ranks are named in a short list, and ranks failing the same way
// are reported once. In-process worlds are bounded by what the machine runs as threads. The
// communication timeout reads the same under both backends (0 turns it off).
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

    func testATimeoutOfZeroWaitsForAPeerInsteadOfFailingAtOnce() throws {
        let world = try InProcessWorld(size: 2, timeout: 0)
        let sums = try world.run { c -> Float in
            if c.rank == 1 { Thread.sleep(forTimeInterval: 0.3) }
            return try c.allReduced([1])[0]
        }.map { try $0.get() }
        XCTAssertEqual(sums, [2, 2])
    }

    func testTheMPITimeoutMessageNamesTheRankTheOperationTheGroupAndTheSetting() {
        let wait = MPIWatchdog.Wait(rank: 1, size: 4, group: "dp", op: "allReduce", count: 1024, peer: nil, tag: nil)
        let m = MPIWatchdog.message(wait, waited: 300)
        for part in ["(rank 1 of group 'dp') waited 300 s in allReduce of 1024 floats on group 'dp' (size 4)",
                     "PICOTRON_COMM_TIMEOUT=seconds"] {
            XCTAssertTrue(m.contains(part), "should say \(part): \(m)")
        }
        let recv = MPIWatchdog.Wait(rank: 0, size: 2, group: "pp", op: "recv", count: 8, peer: 1, tag: 7)
        let m2 = MPIWatchdog.message(recv, waited: 5)
        XCTAssertTrue(m2.contains("recv of 8 floats with rank 1 of group 'pp' (tag 7)"), m2)
    }
}
