// The launcher's reports: many ranks are named in a short list, and ranks failing the same way
// are reported once.
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
}
