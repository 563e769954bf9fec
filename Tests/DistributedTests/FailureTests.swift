import Distributed
import Foundation
import XCTest

/// Mismatched collectives, a rank that throws, a peer that never comes: every rank gets an
/// error that says what happened, within seconds, never a deadlock.
final class FailureTests: XCTestCase {
    func testMismatchedCountsFailOnEveryRank() throws {
        let world = try InProcessWorld(size: 3, timeout: 60)
        let results = try world.run { c in
            var x = [Float](repeating: 1, count: c.rank == 1 ? 12 : 10)
            try c.allReduce(&x)
        }
        for (r, result) in results.enumerated() {
            guard case CommError.mismatch(let m)? = error(result) as? CommError else {
                return XCTFail("rank \(r): expected a mismatch, got \(String(describing: error(result)))")
            }
            XCTAssertTrue(m.contains("allReduce(sum) of 10 floats") && m.contains("allReduce(sum) of 12 floats"), m)
            XCTAssertTrue(m.contains("collective #0 of group 'world'"), m)
        }
    }

    func testMismatchedOperationsFailOnEveryRank() throws {
        let world = try InProcessWorld(size: 2, timeout: 60)
        let results = try world.run { c in
            var x: [Float] = [1, 2, 3, 4]
            if c.rank == 0 { try c.allReduce(&x) } else { try c.broadcast(&x, root: 0) }
        }
        for result in results {
            let m = String(describing: error(result) ?? Injected())
            XCTAssertTrue(m.contains("allReduce(sum) of 4 floats") && m.contains("broadcast(root 0) of 4 floats"), m)
        }
    }

    func testBlockingAndNonBlockingAllReduceDoNotMatch() throws {
        let world = try InProcessWorld(size: 2, timeout: 60)
        let results = try world.run { c in
            if c.rank == 0 { _ = try c.allReduced([1]) } else { _ = try c.iallReduce([1]).wait() }
        }
        for result in results {
            guard case CommError.mismatch? = error(result) as? CommError else {
                return XCTFail("expected a mismatch, got \(String(describing: error(result)))")
            }
        }
    }

    func testReceiveOfTheWrongCountIsAnError() throws {
        let world = try InProcessWorld(size: 2, timeout: 60)
        let results = try world.run { c in
            if c.rank == 0 { try c.send([1, 2, 3], to: 1, tag: 4) } else { _ = try c.recv(count: 2, from: 0, tag: 4) }
        }
        XCTAssertNil(error(results[0]))
        let m = String(describing: error(results[1]) ?? Injected())
        XCTAssertTrue(m.contains("receive of 2 floats from rank 0 with tag 4 but rank 0 sent 3 floats"), m)
    }

    /// Rank 2 throws while the others wait on it: in a blocking all-reduce, a non-blocking
    /// all-reduce, a receive and a non-blocking receive. All are released with rank 2's error.
    func testARankThatThrowsReleasesTheOthers() throws {
        let waits: [(String, (InProcessCommunicator) throws -> Void)] = [
            ("allReduce", { c in _ = try c.allReduced([1, 2]) }),
            ("iallReduce", { c in _ = try c.iallReduce(FloatBuffer(count: 8), op: .sum).wait() }),
            ("recv", { c in _ = try c.recv(count: 5, from: 2, tag: 0) }),
            ("irecv", { c in _ = try c.irecv(count: 5, from: 2, tag: 0).wait() }),
        ]
        for (what, wait) in waits {
            let world = try InProcessWorld(size: 4, timeout: 120)
            let start = Date()
            let results = try world.run { c in
                if c.rank == 2 {
                    Thread.sleep(forTimeInterval: 0.2)
                    throw Injected()
                }
                try wait(c)
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 5, "\(what): ranks were not released promptly")
            XCTAssertTrue(error(results[2]) is Injected)
            for r in [0, 1, 3] {
                guard case CommError.peerFailed(let rank, let message)? = error(results[r]) as? CommError else {
                    let got = String(describing: error(results[r]))
                    return XCTFail("\(what) rank \(r): expected peerFailed, got \(got)")
                }
                XCTAssertEqual(rank, 2)
                XCTAssertEqual(message, "injected failure")
            }
        }
    }

    func testAPeerThatNeverComesTimesOut() throws {
        let world = try InProcessWorld(size: 3, timeout: 0.5)
        let start = Date()
        let results = try world.run { c in
            if c.rank == 0 { try c.barrier() }
            if c.rank == 1 { _ = try c.recv(count: 3, from: 2, tag: 7) }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertNil(error(results[2]))
        let messages = [0, 1].map { String(describing: error(results[$0]) ?? Injected()) }
        // Whichever rank times out first aborts the world; the other is released by it.
        let timedOut = messages.first { $0.hasPrefix("timeout:") } ?? ""
        XCTAssertTrue(timedOut.contains("waited 0.5 s"), timedOut)
        XCTAssertTrue(
            timedOut.contains("in barrier, collective #0 of group 'world', for rank(s) [1, 2]")
                || timedOut.contains("for a message of 3 floats from rank 2 of group 'world' with tag 7"), timedOut)
        XCTAssertTrue(messages.allSatisfy { $0.contains("waited 0.5 s") }, "\(messages)")
    }

    func testSendWaitsForTheReceiverAndTimesOutWithoutOne() throws {
        let world = try InProcessWorld(size: 2, timeout: 0.3)
        let results = try world.run { c in
            if c.rank == 0 { try c.send([1], to: 1, tag: 2) }
        }
        let m = String(describing: error(results[0]) ?? Injected())
        XCTAssertTrue(m.contains("for rank 1 of group 'world' to receive a message of 1 floats with tag 2"), m)
    }

    func testTimeoutFromEnvironment() throws {
        setenv("PICOTRON_COMM_TIMEOUT", "42", 1)
        defer { unsetenv("PICOTRON_COMM_TIMEOUT") }
        XCTAssertEqual(try InProcessWorld(size: 1).timeout, 42)
        XCTAssertEqual(try InProcessWorld(size: 1, timeout: 7).timeout, 7)
    }

    func testLauncherReportsTheFailingRank() {
        XCTAssertEqual(Launcher.run(ranks: 3) { c in _ = try c.allReduced([Float(c.rank)]) }, 0)
        XCTAssertEqual(Launcher.run(ranks: 3) { c in
            if c.rank == 1 { throw Injected() }
            try c.barrier()
        }, 1)
        XCTAssertEqual(Launcher.run(ranks: 0) { _ in }, 2)
    }

    func testErrorInASubGroupReleasesTheWholeWorld() throws {
        let world = try InProcessWorld(size: 4, timeout: 60)
        let results = try world.run { c in
            let half = try c.split(color: c.rank / 2, key: c.rank, name: "half")
            if c.rank == 3 { throw Injected() }
            try half.barrier()  // rank 2 waits on rank 3
            try c.barrier()  // ranks 0 and 1 wait on 2 and 3
        }
        for r in [0, 1, 2] {
            guard case CommError.peerFailed(3, _)? = error(results[r]) as? CommError else {
                return XCTFail("rank \(r): expected peerFailed(3), got \(String(describing: error(results[r])))")
            }
        }
    }
}
