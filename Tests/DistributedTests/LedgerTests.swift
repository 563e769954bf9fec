import Distributed
import XCTest

final class LedgerTests: XCTestCase {
    /// 4 ranks, 1 MiB all-reduce: payload 1 MiB per rank, ring estimate 2·3/4 MiB.
    func testBytesFollowTheRingFormulas() throws {
        let stats = try onRanks(4) { c -> CommStats in
            c.resetStats()
            var x = [Float](repeating: 1, count: 262_144)
            try c.allReduce(&x)
            let tp = try c.split(color: c.rank / 2, key: 0, name: "tp")
            let out = try tp.isend([1, 2], to: 1 - tp.rank, tag: 0)
            _ = try tp.recv(count: 2, from: 1 - tp.rank, tag: 0)
            try out.wait()
            _ = try tp.allGather([1, 2, 3])
            return c.stats
        }
        for s in stats {
            XCTAssertEqual(s["world", .allReduce].traffic, .init(calls: 1, bytes: 1 << 20, ringBytes: 3 << 19))
            XCTAssertEqual(s["world", .split].traffic, .init(calls: 1, bytes: 0, ringBytes: 0))
            XCTAssertEqual(s["tp", .send].traffic, .init(calls: 1, bytes: 8, ringBytes: 8))
            XCTAssertEqual(s["tp", .recv].traffic, .init(calls: 1, bytes: 8, ringBytes: 0))
            XCTAssertEqual(s["tp", .allGather].traffic, .init(calls: 1, bytes: 12, ringBytes: 12))
            XCTAssertEqual(s.groups, ["tp", "world"])
            XCTAssertEqual(s.total(group: "tp").calls, 3)
            XCTAssertEqual(s.total().bytes, (1 << 20) + 28)
        }
        XCTAssertTrue(stats[0].description.contains("world  allReduce     1 calls  1.0 MB  ring 1.6 MB"),
                      stats[0].description)
    }

    func testSinceAndReset() throws {
        _ = try onRanks(2) { c in
            let a = c.stats
            try c.barrier()
            _ = try c.iallReduce([1, 2, 3], op: .max).wait()
            let d = c.stats.since(a)
            XCTAssertEqual(d["world", .barrier].calls, 1)
            XCTAssertEqual(d["world", .allReduce].traffic, .init(calls: 1, bytes: 12, ringBytes: 12))
            c.resetStats()
            XCTAssertEqual(c.stats, CommStats())
        }
    }

    /// Time is measured where it is spent: a rank that arrives first waits for the late one inside the
    /// all-reduce; a wait inside `CommClock.inBackground` is overlapped, not blocked.
    func testSecondsAreTheTimeEachRankWaited() throws {
        let stats = try onRanks(2) { c -> CommStats in
            c.resetStats()
            if c.rank == 1 { usleep(300_000) }
            _ = try c.allReduced([1])
            let r = try c.iallReduce([1, 2], op: .sum)
            _ = try CommClock.inBackground { try r.wait() }
            c.recordWait(.allReduce, seconds: 0.5)
            return c.stats
        }
        XCTAssertGreaterThan(stats[0]["world", .allReduce].seconds, 0.75, "rank 0 waited ~0.3 s for rank 1, + 0.5 recorded")
        XCTAssertLessThan(stats[1]["world", .allReduce].seconds, 0.75, "rank 1 arrived last and waited little")
        XCTAssertGreaterThanOrEqual(stats[1]["world", .allReduce].seconds, 0.5)
        for s in stats { XCTAssertGreaterThan(s["world", .allReduce].overlappedSeconds, 0, "the background wait") }
    }

    func testFormatBytes() {
        XCTAssertEqual(CommStats.format(bytes: 999), "999 B")
        XCTAssertEqual(CommStats.format(bytes: 12_000), "12.0 KB")
        XCTAssertEqual(CommStats.format(bytes: 3_100_000), "3.1 MB")
        XCTAssertEqual(CommStats.format(bytes: 1_200_000_000), "1.20 GB")
    }
}
