// The checks of each task on its own, shared by the task's test and by the tests of a block or the
// whole model (which first make sure every task's checks pass, so a failure there names the task).
// None of them can trap on a plausible bug: a backward is called directly and its sizes checked
// before autograd would meet them, a layer's output shape is checked before a loss reads it, the
// embedding is probed with spare rows before a real shard is indexed, and the cross-entropy's
// targets are ordered so a missing offset reads a wrong logit, never past the end.
// Legend: N = rows, in/out = full features, C = hidden, V = vocabulary, tp = ranks, r = rank.

import Distributed
import LessonKit
import LessonTesting
import Llama
@testable import Step2_TensorParallel
import TensorCore

enum TaskChecks {
    static let (n, inF, outF) = (5, 12, 8)

    // MARK: - Tasks 2.1 and 2.2: f and g

    /// f on x with a different upstream gradient on each rank: identity forward, Σ backward.
    static func f(tp: Int) throws -> [Check] {
        let (n, c) = (4, 6)
        let x = randomValues(n * c, seed: 1, "x")                                  // [N, C] same on every rank
        let dys = (0..<tp).map { randomValues(n * c, seed: 2, "dy\($0)") }          // [N, C] one per rank
        let want = (0..<(n * c)).map { i in dys.reduce(Float(0)) { $0 + $1[i] } }
        return try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let xt = Tensor(shape: [n, c], data: x, requiresGrad: true)
            let y = copyToTensorParallelRegion(xt, group)
            y.backward(gradient: dys[comm.rank])
            try group.check()
            return [check(comm.rank, "f(x)", got: y.data, want: x, shape: [n, c],
                          hint: "f's forward is the identity: every rank already has x"),
                    check(comm.rank, "∂L/∂x through f", got: xt.grad ?? [], want: want, shape: [n, c],
                          hint: "f's backward must all-reduce (sum, once) the gradient over the tp group")]
        }.flatMap { $0 }
    }

    /// g on a different x on each rank: Σ forward, identity backward.
    static func g(tp: Int) throws -> [Check] {
        let (n, c) = (4, 6)
        let xs = (0..<tp).map { randomValues(n * c, seed: 3, "x\($0)") }            // [N, C] one per rank
        let dy = randomValues(n * c, seed: 4, "dy")
        let want = (0..<(n * c)).map { i in xs.reduce(Float(0)) { $0 + $1[i] } }
        return try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let xt = Tensor(shape: [n, c], data: xs[comm.rank], requiresGrad: true)
            let y = reduceFromTensorParallelRegion(xt, group)
            y.backward(gradient: dy)
            try group.check()
            return [check(comm.rank, "g(x)", got: y.data, want: want, shape: [n, c],
                          hint: "g's forward must all-reduce (sum) the partial results"),
                    check(comm.rank, "∂L/∂x through g", got: xt.grad ?? [], want: dy, shape: [n, c],
                          hint: "g's backward is the identity: an all-reduce there multiplies by tp")]
        }.flatMap { $0 }
    }

    static func passes(_ checks: [Check]) -> Bool { checks.allSatisfy(\.comparison.passed) }

    // MARK: - Tasks 2.3–2.6: the linear layers

    /// One nn.Linear: y = x Wᵀ, and the gradients of L = Σ y ⊙ R, by plain loops (not `Gemm`, so a
    /// misused product is not mirrored by the reference).
    struct Linear {
        let x = randomValues(n * inF, seed: 10, "x"), w = randomValues(outF * inF, seed: 11, "w")  // [N, in], [out, in]
        let r = randomValues(n * outF, seed: 12, "r")                                               // [N, out]
        var y: [Float] { product(x, w, n: n, k: inF, m: outF) }
        var dx: [Float] { gradInput(r, w, n: n, k: inF, m: outF) }
        var dw: [Float] { gradWeight(r, x, n: n, k: inF, m: outF) }
    }

    /// y = x Wᵀ, x [n, k], W [m, k] → [n, m].
    static func product(_ x: [Float], _ w: [Float], n: Int, k: Int, m: Int) -> [Float] {
        (0..<(n * m)).map { e in (0..<k).reduce(Float(0)) { $0 + x[(e / m) * k + $1] * w[(e % m) * k + $1] } }
    }

    /// dx = dy W, dy [n, m], W [m, k] → [n, k].
    static func gradInput(_ dy: [Float], _ w: [Float], n: Int, k: Int, m: Int) -> [Float] {
        (0..<(n * k)).map { e in (0..<m).reduce(Float(0)) { $0 + dy[(e / k) * m + $1] * w[$1 * k + e % k] } }
    }

    /// dW = dyᵀ x, dy [n, m], x [n, k] → [m, k].
    static func gradWeight(_ dy: [Float], _ x: [Float], n: Int, k: Int, m: Int) -> [Float] {
        (0..<(m * k)).map { e in (0..<n).reduce(Float(0)) { $0 + dy[$1 * m + e / k] * x[$1 * k + e % k] } }
    }

    /// A layer's backward called directly on each rank's slice: its checks, and whether both
    /// results have the right sizes (autograd traps on a gradient of the wrong size, so a layer
    /// whose backward fails this is never run backward).
    static func backwardAlone(_ name: String, tp: Int, cut: ShardSpec.Cut,
                              _ backward: ([Float], [Float], [Float], Int, Int, Int) -> (dx: [Float], dw: [Float]))
        -> (checks: [Check], sizesRight: Bool) {
        let ref = Linear()
        var checks = [Check](), sizesRight = true
        for r in 0..<tp {
            let wCut = ShardSpec(cut: cut, fullShape: [outF, inF], rank: r, size: tp)
            let w = wCut.slice(ref.w), (m, k) = (wCut.shardShape[0], wCut.shardShape[1])
            let xIn = cut == .rows ? ref.x : ShardSpec(cut: .columns, fullShape: [n, inF], rank: r, size: tp).slice(ref.x)
            let dy = cut == .rows ? ShardSpec(cut: .columns, fullShape: [n, outF], rank: r, size: tp).slice(ref.r) : ref.r
            let (dx, dw) = backward(dy, xIn, w, n, k, m)
            sizesRight = sizesRight && dx.count == n * k && dw.count == m * k
            let dxName = cut == .rows ? "dx = dy_r · W_r [N, in]" : "dx_r = dy · W_r [N, in/tp]"
            let dwName = cut == .rows ? "dW_r = dy_rᵀ · x [out/tp, in]" : "dW_r = dyᵀ · x_r [out, in/tp]"
            checks += [
                check(r, "\(name) dx", got: dx, want: gradInput(dy, w, n: n, k: k, m: m), shape: [n, k],
                      hint: "the first result is \(dxName): `Gemm.gradInput(dy, w, …)`"),
                check(r, "\(name) dW", got: dw, want: gradWeight(dy, xIn, n: n, k: k, m: m), shape: [m, k],
                      hint: "the second result is \(dwName): `Gemm.gradWeight(dy, x, …)`"),
            ]
        }
        return (checks, sizesRight)
    }

    /// Task 2.4 alone.
    static func columnBackward(tp: Int) -> (checks: [Check], sizesRight: Bool) {
        backwardAlone("ColumnParallelLinear.backward", tp: tp, cut: .rows) {
            ColumnParallelLinear.backward($0, input: $1, weight: $2, n: $3, k: $4, m: $5)
        }
    }

    /// Task 2.6 alone.
    static func rowBackward(tp: Int) -> (checks: [Check], sizesRight: Bool) {
        backwardAlone("RowParallelLinear.backward", tp: tp, cut: .columns) {
            RowParallelLinear.backward($0, input: $1, weight: $2, n: $3, k: $4, m: $5)
        }
    }

    /// Task 2.3: the column-parallel forward, split and gathered; that x goes through the shared f
    /// (one all-reduce for two projections reading x); and that its backward hands ∂L/∂x and ∂L/∂W_r
    /// on. The gradients are checked only when f (2.1) and the backward (2.4) pass on their own.
    static func columnForward(tp: Int) throws -> [Check] {
        let ref = Linear(), (n, inF, outF) = (n, inF, outF), m = outF / tp
        let alone = columnBackward(tp: tp)
        let fRight = passes(try f(tp: tp)), backwardRight = passes(alone.checks)
        return try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let full = Tensor(shape: [outF, inF], data: ref.w)
            let yCut = ShardSpec(cut: .columns, fullShape: [n, outF], rank: comm.rank, size: tp)
            let layer = try ColumnParallelLinear(sliceOf: full, group: group)
            let x = Tensor(shape: [n, inF], data: ref.x, requiresGrad: true)
            let y = layer.forward(x)                                                   // [N, out/tp]
            let gathered = try ColumnParallelLinear(sliceOf: full, group: group, gatherOutput: true)
                .forward(Tensor(shape: [n, inF], data: ref.x))                         // [N, out]
            var out = [check(comm.rank, "column-parallel y_r", got: y.data, want: yCut.slice(ref.y), shape: [n, m],
                             hint: "rank r's output columns are x · W_rᵀ with W_r rows r·out/tp ..< (r+1)·out/tp; "
                                 + "leave them split when gatherOutput is false"),
                       check(comm.rank, "column-parallel y with gatherOutput", got: gathered.data, want: ref.y,
                             shape: [n, outF], hint: "when gatherOutput is true, gatherFromTensorParallelRegion "
                                 + "puts every rank's columns together: [N, out]")]
            guard alone.sizesRight, y.shape == [n, m] else { try group.check(); return out }
            (y * Tensor(shape: y.shape, data: yCut.slice(ref.r))).sum().backward()
            // Two projections reading the same x share one f: one all-reduce in their backward.
            let shared = SharedCopy(group: group)
            let a = try ColumnParallelLinear(sliceOf: full, group: group, copy: shared)
            let b = try ColumnParallelLinear(sliceOf: full, group: group, copy: shared)
            let x2 = Tensor(shape: [n, inF], data: ref.x, requiresGrad: true)
            let both = a.forward(x2).sum() + b.forward(x2).sum()
            let before = comm.stats
            both.backward()
            let reduces = comm.stats.since(before)[comm.name, .allReduce].calls
            try group.check()
            if fRight && backwardRight {
                out.append(check(comm.rank, "column-parallel ∂L/∂x", got: x.grad ?? [], want: ref.dx, shape: [n, inF],
                                 hint: "pass x through f (`copy(x)`) and return the backward's dx for it: "
                                     + "f sums the ranks' parts"))
            }
            if backwardRight {
                out.append(check(comm.rank, "column-parallel ∂L/∂W_r", got: layer.weight.grad ?? [],
                                 want: ShardSpec(cut: .rows, fullShape: [outF, inF], rank: comm.rank, size: tp).slice(ref.dw),
                                 shape: [m, inF], hint: "return the backward's dW for the weight: inputs [f(x), weight]"))
            }
            if fRight && tp > 1 {
                out.append(check(comm.rank, "all-reduces in the backward of two projections sharing f",
                                 got: [Float(reduces)], want: [1],
                                 hint: "x goes through the shared f, `copy(x)`: 0 means no f, 2 means one f per "
                                     + "projection (copyToTensorParallelRegion called directly)"))
            }
            return out
        }.flatMap { $0 }
    }

    /// Task 2.5: the row-parallel forward (partial products summed by g), and that its backward
    /// hands ∂L/∂x_r and ∂L/∂W_r on, checked only when g (2.2) and the backward (2.6) pass alone.
    static func rowForward(tp: Int) throws -> [Check] {
        let ref = Linear(), (n, inF, outF) = (n, inF, outF)
        let alone = rowBackward(tp: tp)
        let gRight = passes(try g(tp: tp)), backwardRight = passes(alone.checks)
        return try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let layer = try RowParallelLinear(sliceOf: Tensor(shape: [outF, inF], data: ref.w), group: group)
            let xCut = ShardSpec(cut: .columns, fullShape: [n, inF], rank: comm.rank, size: tp)
            let x = Tensor(shape: [n, inF / tp], data: xCut.slice(ref.x), requiresGrad: true)   // [N, in/tp]
            let y = layer.forward(x)                                                           // [N, out]
            var out = [check(comm.rank, "row-parallel y", got: y.data, want: ref.y, shape: [n, outF],
                             hint: "y = g(x_r · W_rᵀ): the partial products must be summed over ranks by g (Task 2.2)")]
            guard alone.sizesRight, y.shape == [n, outF] else { try group.check(); return out }
            (y * Tensor(shape: y.shape, data: ref.r)).sum().backward()
            try group.check()
            if gRight && backwardRight {
                out += [check(comm.rank, "row-parallel ∂L/∂x_r", got: x.grad ?? [], want: xCut.slice(ref.dx),
                              shape: [n, inF / tp], hint: "return the backward's dx for x; tp× too large means an "
                                  + "all-reduce in the backward (g's backward is the identity)"),
                        check(comm.rank, "row-parallel ∂L/∂W_r", got: layer.weight.grad ?? [], want: layer.spec.slice(ref.dw),
                              shape: layer.spec.shardShape, hint: "return the backward's dW for the weight: inputs [x, weight]")]
            }
            return out
        }.flatMap { $0 }
    }

    // MARK: - Tasks 2.7 and 2.8

    /// The masked lookup called directly on a weight with spare rows, forward and backward: a
    /// missing offset or mask then reads or writes a wrong row instead of past the end. Vocab
    /// 0..<4 with every id (catches a missing mask), vocab 8..<12 with ids from 8 (a missing offset).
    static func maskedLookupAlone() -> [Check] {
        let (rows, c) = (16, 3)
        let w = randomValues(rows * c, seed: 23, "spare")                             // [16, C]
        return [(0..<4, [0, 5, 3, 15, 3, 9, 1]), (8..<12, [8, 13, 11, 9, 11, 15])].map { vocab, ids in
            let weight = Tensor(shape: [rows, c], data: w, requiresGrad: true)
            let dy = randomValues(ids.count * c, seed: 24, "dy")
            var want = [Float](repeating: 0, count: ids.count * c), wantDw = [Float](repeating: 0, count: rows * c)
            for (i, id) in ids.enumerated() where vocab.contains(id) {
                for j in 0..<c {
                    want[i * c + j] = w[(id - vocab.lowerBound) * c + j]
                    wantDw[(id - vocab.lowerBound) * c + j] += dy[i * c + j]
                }
            }
            let y = VocabParallelEmbedding.maskedLookup(ids, shape: [ids.count], weight: weight, vocab: vocab)
            if y.count == ids.count * c { y.backward(gradient: dy) }
            let what = "maskedLookup(ids \(ids), vocab \(vocab))"
            return [check(0, "\(what) forward", got: y.data, want: want, shape: [ids.count, c],
                          hint: "row i is shard row id − vocab.lowerBound when vocab contains the id, zeros otherwise"),
                    check(0, "\(what) ∂L/∂weight", got: weight.grad ?? [], want: wantDw, shape: [rows, c],
                          hint: "add dy's row i into shard row id − vocab.lowerBound, owned ids only, once per occurrence")]
        }.flatMap { $0 }
    }

    /// Task 2.7: the lookup alone, then (when it passes) the embedding on tp ranks against the
    /// ordinary one.
    static func embedding(tp: Int) throws -> [Check] {
        let alone = maskedLookupAlone()
        guard passes(alone) else { return alone }
        let (v, c) = (16, 6)
        let w = randomValues(v * c, seed: 20, "E")
        let ids = [0, 15, 3, 8, 8, 12, 7, 4, 1, 11]                                 // [2, 5], 8 twice
        let r = randomValues(ids.count * c, seed: 21, "R")
        let wt = Tensor(shape: [v, c], data: w, requiresGrad: true)
        let h = Tensor.embedding(ids, shape: [2, 5], weight: wt)
        (h * Tensor(shape: h.shape, data: r)).sum().backward()
        return try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let emb = try VocabParallelEmbedding(sliceOf: Tensor(shape: [v, c], data: w), group: group)
            let y = emb.forward(ids, shape: [2, 5])                                    // [2, 5, C]
            (y * Tensor(shape: y.shape, data: r)).sum().backward()
            try group.check()
            return [check(comm.rank, "embedding output", got: y.data, want: h.data, shape: [ids.count, c],
                          hint: "a token outside this rank's rows must give a zero row, then g sums the ranks"),
                    check(comm.rank, "∂L/∂E_r", got: emb.weight.grad ?? [], want: emb.spec.slice(wt.grad!),
                          shape: emb.spec.shardShape,
                          hint: "only the owner adds a token's gradient, at row id − r·V/tp (8 appears twice: add both)")]
        }.flatMap { $0 }
    }

    /// Task 2.8: the loss and each rank's logit-column gradient. Row 0's logits are 40–46 on every
    /// rank (a max summed over ranks underflows Σ exp); row 2 has a 90 on one rank and about −50
    /// on the others (a max kept local or summed overflows exp); row 3 is ignored. Row i's target
    /// is below (N − i)·V/tp, so a target read without the vocab offset stays inside the logits.
    static func crossEntropy(tp: Int) throws -> [Check] {
        let (v, n) = (16, 7)
        var x = randomValues(n * v, seed: 22, "logits").map { $0 * 3 }                // [N, V]
        for j in 0..<v {
            x[j] = 43 + x[j]                                                           // row 0: 40 ..< 46
            x[2 * v + j] = -50 + x[2 * v + j]                                          // row 2: about −50 …
        }
        x[2 * v + 13] = 90                                                             // … and one 90
        let targets = [13, 15, 13, -100, 9, 3, 0]
        let xt = Tensor(shape: [n, v], data: x, requiresGrad: true)
        let loss = Tensor.crossEntropy(xt, targets: targets)
        loss.backward()
        return try onRanks(tp) { comm -> [Check] in
            let group = TensorParallelGroup(comm)
            let cut = ShardSpec(cut: .columns, fullShape: [n, v], rank: comm.rank, size: tp)
            let shard = Tensor(shape: [n, v / tp], data: cut.slice(x), requiresGrad: true)
            let l = vocabParallelCrossEntropy(shard, targets: targets, vocab: cut.range, group: group)
            l.backward()
            try group.check()
            return [check(comm.rank, "loss", got: l.count == 1 ? [l.item] : [], want: [loss.item],
                          hint: "loss = m + log Σ exp(x − m) − x_target: m the max over all ranks (op .max), Σ and "
                              + "x_target summed over ranks (the owner's x_target at id − vocab.lowerBound), "
                              + "the mean over rows whose target is not ignored"),
                    check(comm.rank, "∂L/∂logits_r", got: shard.grad ?? [], want: cut.slice(xt.grad!), shape: [n, v / tp],
                          hint: "(exp(x − lse) − one-hot)/valid rows, for this rank's columns; the one-hot only on the "
                              + "target's owner; ignored rows get 0")]
        }.flatMap { $0 }
    }

    // MARK: - Every task, for the block and model tests

    /// Each task's checks at tp 2, with the tests that show them in full.
    static func everyTask() throws -> [(task: String, tests: String, checks: [Check])] {
        [("Step2.1", "CommunicationTests", try f(tp: 2)), ("Step2.2", "CommunicationTests", try g(tp: 2)),
         ("Step2.3", "LinearTests", try columnForward(tp: 2)), ("Step2.4", "LinearTests", columnBackward(tp: 2).checks),
         ("Step2.5", "LinearTests", try rowForward(tp: 2)), ("Step2.6", "LinearTests", rowBackward(tp: 2).checks),
         ("Step2.7", "VocabTests", try embedding(tp: 2)), ("Step2.8", "VocabTests", try crossEntropy(tp: 2))]
    }
}
