extension CommSelfTest {
    /// All-reduce, all-gather, reduce-scatter, broadcast, barrier: every op, odd and empty
    /// counts, one large buffer, and the determinism of reductions.
    static func collectiveChecks(_ s: SelfTestSuite) {
        let c = s.comm, n = c.size, r = c.rank

        s.check("ranks are 0..<size") { e in
            e.equal(try c.allGather([Float(r)]), (0 ..< n).map(Float.init), "gathered ranks")
        }

        for op in ReduceOp.allCases {
            for count in [0, 1, 7, 1000 + n] {
                s.check("allReduce \(op) of \(count) floats") { e in
                    var x = values(r, count: count)
                    try c.allReduce(&x, op: op)
                    e.equal(x, reduced(op, ranks: n, count: count), "allReduce(\(op))")
                }
            }
        }

        s.check("allReduce sum of \(s.largeCount) floats (\((s.largeCount * 4) >> 20) MB)") { e in
            var x = values(r, count: s.largeCount)
            try c.allReduce(&x, op: .sum)
            e.equal(x, reduced(.sum, ranks: n, count: s.largeCount), "large allReduce")
        }

        s.check("allReduce result is bitwise identical on every rank") { e in
            let count = 100_003
            var x = (0 ..< count).map { noise(r, $0) }
            try c.allReduce(&x, op: .sum)
            var root = x
            try c.broadcast(&root, root: 0)
            e.equal(x, root, "rank \(r) vs rank 0", bitwise: true)
            if c is InProcessCommunicator {
                // In-process sums in rank order: ((x0 + x1) + x2) + ...
                let want = (0 ..< count).map { i in (1 ..< n).reduce(noise(0, i)) { $0 + noise($1, i) } }
                e.equal(x, want, "in-process rank-order sum", bitwise: true)
            }
        }

        s.check("allReduced returns a reduced copy and leaves the input") { e in
            let x = values(r, count: 9)
            let y = try c.allReduced(x, op: .max)
            e.equal(x, values(r, count: 9), "input")
            e.equal(y, reduced(.max, ranks: n, count: 9), "result")
        }

        for count in [0, 1, 5, 4097] {
            s.check("allGather of \(count) floats per rank") { e in
                let got = try c.allGather((0 ..< count).map { Float(r * 10_000 + $0) })
                e.equal(got, (0 ..< n).flatMap { q in (0 ..< count).map { Float(q * 10_000 + $0) } }, "allGather")
            }
        }

        s.check("allGather to \((s.largeCount * 4) >> 20) MB") { e in
            let count = s.largeCount / n
            let got = try c.allGather(values(r, count: count))
            e.equal(got, (0 ..< n).flatMap { values($0, count: count) }, "large allGather")
        }

        for op in [ReduceOp.sum, .average, .max] {
            for chunk in [0, 1, 3, 1001] {
                s.check("reduceScatter \(op), chunks of \(chunk)") { e in
                    let got = try c.reduceScatter(values(r, count: chunk * n), op: op)
                    e.equal(got, reduced(op, ranks: n, count: chunk, offset: r * chunk), "reduceScatter(\(op))")
                }
            }
        }

        s.check("reduceScatter of \((s.largeCount * 4) >> 20) MB") { e in
            let chunk = s.largeCount / n
            let got = try c.reduceScatter(values(r, count: chunk * n), op: .sum)
            e.equal(got, reduced(.sum, ranks: n, count: chunk, offset: r * chunk), "large reduceScatter")
        }

        if n > 1 {
            s.check("reduceScatter of a count that does not divide by size is an error") { e in
                let isInvalid: (CommError) -> Bool = { if case .invalidArgument = $0 { true } else { false } }
                e.throwsError("reduceScatter(\(n + 1) floats)", isInvalid) {
                    _ = try c.reduceScatter([Float](repeating: 1, count: n + 1))
                }
            }
        }

        for root in 0 ..< n {
            for count in [0, 1, 1000] {
                s.check("broadcast of \(count) floats from root \(root)") { e in
                    let sent = (0 ..< count).map { Float(root * 7 + $0) }
                    var x = r == root ? sent : [Float](repeating: -1, count: count)
                    try c.broadcast(&x, root: root)
                    e.equal(x, sent, "broadcast")
                }
            }
        }

        s.check("broadcast of \((s.largeCount * 4) >> 20) MB from the last rank") { e in
            var x = r == n - 1 ? values(n, count: s.largeCount) : [Float](repeating: 0, count: s.largeCount)
            try c.broadcast(&x, root: n - 1)
            e.equal(x, values(n, count: s.largeCount), "large broadcast")
        }

        s.check("barrier, three times") { _ in
            for _ in 0 ..< 3 { try c.barrier() }
        }
    }

    /// The reduction of `value(0, i) … value(n−1, i)`: values are (r+1)·k with k = i%13+1.
    static func expectedReduce(_ op: ReduceOp, _ n: Int, _ i: Int) -> Float {
        let k = i % 13 + 1
        switch op {
        case .sum: return Float(n * (n + 1) / 2 * k)
        case .average: return Float(n * (n + 1) / 2 * k) / Float(n)
        case .max: return Float(n * k)
        }
    }
}
