/// The communicator's per-operation checks, runnable on any world: from XCTest on in-process
/// worlds of several sizes, and from `picotron selftest comm` under mpirun. Every rank runs
/// the same checks in the same order (they are collectives).
///
/// A check passes when it passes on every rank: after each check the ranks agree with a
/// max-all-reduce of their failure flags, so `passed`/`failed` are the same on every rank.
/// `failures` holds this rank's own messages, `"check name: what went wrong"`.
public enum CommSelfTest {
    /// - Parameter largeCount: floats in the "large buffer" checks (default 4 Mi = 16 MB).
    public static func run(world: Communicator, largeCount: Int = 1 << 22)
        -> (passed: Int, failed: Int, failures: [String])
    {
        let suite = SelfTestSuite(world, largeCount: largeCount)
        collectiveChecks(suite)
        pointToPointChecks(suite)
        groupChecks(suite)
        return (suite.passed, suite.failed, suite.failures)
    }

    /// Rank `r`'s test value at index `i`: small integers, so sums are exact in Float and
    /// any correct reduction order gives the same bits.
    static func value(_ r: Int, _ i: Int) -> Float { Float((r + 1) * (i % 13 + 1)) }

    /// `value(r, i)` for `i` in `0 ..< count`.
    static func values(_ r: Int, count: Int) -> [Float] {
        periodic(count: count, offset: 0) { value(r, $0) }
    }

    /// The reduction of every rank's `values` at indices `offset ..< offset + count`.
    static func reduced(_ op: ReduceOp, ranks n: Int, count: Int, offset: Int = 0) -> [Float] {
        periodic(count: count, offset: offset) { expectedReduce(op, n, $0) }
    }

    /// `f(offset + i)` for `i` in `0 ..< count`, for an `f` with period 13: a table lookup,
    /// so the 16 MB checks stay fast in debug builds.
    private static func periodic(count: Int, offset: Int, _ f: (Int) -> Float) -> [Float] {
        let table = (0 ..< 13).map(f)
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            var k = offset % 13
            for i in 0 ..< count {
                out[i] = table[k]
                k = k == 12 ? 0 : k + 1
            }
            initialized = count
        }
    }

    /// A pseudo-random value in [-1, 1) for rank `r`, index `i` (SplitMix64), for checks
    /// where the summation order changes the last bits.
    static func noise(_ r: Int, _ i: Int) -> Float {
        var z = UInt64(truncatingIfNeeded: r) << 32 &+ UInt64(truncatingIfNeeded: i) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
}

/// Runs named checks and keeps the score.
final class SelfTestSuite {
    let comm: Communicator
    let largeCount: Int
    private(set) var passed = 0
    private(set) var failed = 0
    private(set) var failures: [String] = []

    init(_ comm: Communicator, largeCount: Int) {
        self.comm = comm
        self.largeCount = largeCount
    }

    /// Set when a check leaves the world unusable (a peer failed, a timeout, a mismatch, an
    /// MPI error): the remaining checks are skipped, since each would only fail the same way.
    private(set) var stoppedBy: String?

    /// Runs `body`, which records this rank's problems in its `Expect` (a thrown error is a
    /// problem too). Then all ranks agree on the outcome.
    func check(_ name: String, _ body: (inout Expect) throws -> Void) {
        guard stoppedBy == nil else { return }
        var expect = Expect()
        do {
            try body(&expect)
        } catch {
            expect.problems.append("threw \(error)")
            if let e = error as? CommError, Self.breaksTheWorld(e) { stoppedBy = name }
        }
        var flag: [Float] = [expect.problems.isEmpty ? 0 : 1]
        if stoppedBy == nil {
            do {
                try comm.allReduce(&flag, op: .max)
            } catch {
                expect.problems.append("ranks could not agree on the outcome: \(error)")
                flag = [1]
                stoppedBy = name
            }
        }
        if flag[0] == 0 { passed += 1 } else { failed += 1 }
        if flag[0] != 0 && expect.problems.isEmpty { expect.problems.append("failed on another rank") }
        failures += expect.problems.prefix(3).map { "\(name): \($0)" }
        if stoppedBy != nil { failures.append("remaining checks skipped: the world is no longer usable") }
    }

    private static func breaksTheWorld(_ e: CommError) -> Bool {
        switch e {
        case .invalidArgument, .badGrid: return false
        case .mismatch, .timeout, .peerFailed, .mpi, .resources: return true
        }
    }
}

/// Collects a check's problems with messages that say where and by how much.
struct Expect {
    var problems: [String] = []

    mutating func that(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { problems.append(message()) }
    }

    /// Equal element by element, bit for bit when `bitwise` (else with ==).
    mutating func equal(_ got: [Float], _ want: [Float], _ what: String, bitwise: Bool = false) {
        guard got.count == want.count else {
            problems.append("\(what): got \(got.count) floats, expected \(want.count)")
            return
        }
        var bad = 0, first = -1
        got.withUnsafeBufferPointer { g in
            want.withUnsafeBufferPointer { w in
                for i in 0 ..< g.count where bitwise ? g[i].bitPattern != w[i].bitPattern : g[i] != w[i] {
                    bad += 1
                    if first < 0 { first = i }
                }
            }
        }
        if bad > 0 {
            problems.append(
                "\(what): \(bad) of \(got.count) elements differ; first at [\(first)]: got \(got[first]), "
                    + "expected \(want[first])")
        }
    }

    /// `body` must throw a `CommError` for which `matches` holds.
    mutating func throwsError(_ what: String, _ matches: (CommError) -> Bool, _ body: () throws -> Void) {
        do {
            try body()
            problems.append("\(what): expected an error, none was thrown")
        } catch let e as CommError {
            if !matches(e) { problems.append("\(what): unexpected error \(e)") }
        } catch {
            problems.append("\(what): unexpected error type \(error)")
        }
    }
}
