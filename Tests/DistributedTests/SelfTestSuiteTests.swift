import Distributed
import XCTest

/// The shared per-operation suite (`CommSelfTest`) on in-process worlds of 1 to 8 ranks;
/// `picotron selftest comm` runs the same checks under mpirun.
final class SelfTestSuiteTests: XCTestCase {
    func test1Rank() throws { try runSuite(1) }
    func test2Ranks() throws { try runSuite(2) }
    func test3Ranks() throws { try runSuite(3) }
    func test4Ranks() throws { try runSuite(4) }
    func test5Ranks() throws { try runSuite(5) }
    func test6Ranks() throws { try runSuite(6) }
    func test7Ranks() throws { try runSuite(7) }
    func test8Ranks() throws { try runSuite(8) }

    private func runSuite(_ n: Int) throws {
        let outcomes = try onRanks(n) { CommSelfTest.run(world: $0) }
        for (r, o) in outcomes.enumerated() {
            XCTAssertEqual(o.failed, 0, "rank \(r) of \(n):\n" + o.failures.joined(separator: "\n"))
            XCTAssertGreaterThanOrEqual(o.passed, 50, "rank \(r) of \(n) ran too few checks")
            XCTAssertEqual(o.passed, outcomes[0].passed, "ranks disagree on the score")
        }
    }
}
