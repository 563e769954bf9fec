extension CommSelfTest {
    /// Send/receive around a ring, tags, message order, non-blocking calls completed out of
    /// order. Every exchange posts its sends non-blocking first: a ring of blocking sends
    /// would deadlock (each rank waits for its successor to receive).
    static func pointToPointChecks(_ s: SelfTestSuite) {
        let c = s.comm, n = c.size, r = c.rank
        let next = (r + 1) % n, prev = (r - 1 + n) % n

        for count in [0, 1, 1000, 1 << 20] {
            s.check("ring send/recv of \(count) floats") { e in
                let out = try c.isend(values(r, count: count), to: next, tag: 0)
                let got = try c.recv(count: count, from: prev, tag: 0)
                try out.wait()
                e.equal(got, values(prev, count: count), "message from rank \(prev)")
            }
        }

        s.check("blocking send and recv, pointer forms, between rank pairs") { e in
            // Even ranks send first, odd ranks receive first: safe with synchronous sends.
            let partner = r % 2 == 0 ? r + 1 : r - 1
            guard partner < n else { return }
            let mine = (0 ..< 100).map { Float(r * 100 + $0) }
            var got = [Float](repeating: 0, count: 100)
            if r % 2 == 0 {
                try c.send(mine, to: partner, tag: 9)
                try c.recv(into: &got, from: partner, tag: 9)
            } else {
                try c.recv(into: &got, from: partner, tag: 9)
                try c.send(mine, to: partner, tag: 9)
            }
            e.equal(got, (0 ..< 100).map { Float(partner * 100 + $0) }, "pair exchange")
        }

        s.check("tags keep messages apart (received in the opposite order of sending)") { e in
            let a = try c.isend([Float(r), 5], to: next, tag: 5)
            let b = try c.isend([Float(r), 6, 6], to: next, tag: 6)
            let six = try c.recv(count: 3, from: prev, tag: 6)
            let five = try c.recv(count: 2, from: prev, tag: 5)
            try a.wait()
            try b.wait()
            e.equal(six, [Float(prev), 6, 6], "tag 6")
            e.equal(five, [Float(prev), 5], "tag 5")
        }

        s.check("messages with the same tag arrive in the order sent") { e in
            let sends = try (0 ..< 4).map { k in try c.isend([Float(r * 10 + k)], to: next, tag: 3) }
            var got: [Float] = []
            for _ in 0 ..< 4 { got += try c.recv(count: 1, from: prev, tag: 3) }
            for q in sends { try q.wait() }
            e.equal(got, (0 ..< 4).map { Float(prev * 10 + $0) }, "order")
        }

        s.check("non-blocking receives and all-reduce completed out of order") { e in
            let ra = try c.irecv(count: 3, from: prev, tag: 1)
            let rb = try c.irecv(into: FloatBuffer(count: 5), from: prev, tag: 2)
            let sum = try c.iallReduce(values(r, count: 6))
            let sb = try c.isend(FloatBuffer([Float](repeating: Float(r), count: 5)), to: next, tag: 2)
            let sa = try c.isend([Float(r), 1, 1], to: next, tag: 1)
            e.equal(try sum.wait(), reduced(.sum, ranks: n, count: 6), "iallReduce")
            e.equal(try rb.wait().array, [Float](repeating: Float(prev), count: 5), "irecv tag 2")
            try sa.wait()
            e.equal(try ra.wait(), [Float(prev), 1, 1], "irecv tag 1")
            try sb.wait()
            e.equal(try ra.wait(), [Float(prev), 1, 1], "second wait returns the same result")
        }

        s.check("three outstanding iallReduce waited in reverse order") { e in
            let bufs = (0 ..< 3).map { k in FloatBuffer(values(r, count: 100 + k)) }
            let ops: [ReduceOp] = [.sum, .average, .max]
            let reqs = try (0 ..< 3).map { k in try c.iallReduce(bufs[k], op: ops[k]) }
            for k in (0 ..< 3).reversed() {
                let got = try reqs[k].wait()
                e.that(got === bufs[k], "iallReduce #\(k) should return its own buffer")
                e.equal(got.array, reduced(ops[k], ranks: n, count: 100 + k), "iallReduce #\(k)")
            }
        }

        s.check("iallReduce of \((s.largeCount * 4) >> 20) MB") { e in
            let buf = FloatBuffer(values(r, count: s.largeCount))
            let got = try c.iallReduce(buf, op: .sum).wait()
            e.equal(got.array, reduced(.sum, ranks: n, count: s.largeCount), "large iallReduce")
        }

        s.check("peers and tags out of range are errors") { e in
            let isInvalid: (CommError) -> Bool = { if case .invalidArgument = $0 { true } else { false } }
            e.throwsError("send to rank \(n)", isInvalid) { try c.send([1], to: n, tag: 0) }
            e.throwsError("recv from rank -1", isInvalid) { _ = try c.recv(count: 1, from: -1, tag: 0) }
            e.throwsError("isend with tag -1", isInvalid) { _ = try c.isend([1], to: next, tag: -1) }
            e.throwsError("broadcast from root \(n)", isInvalid) {
                var x: [Float] = [1]
                try c.broadcast(&x, root: n)
            }
        }
    }
}
