// The autograd engine itself: accumulation (within one backward and across backwards),
// withoutGrad, and the gradient-ready hooks bucketed data parallelism launches all-reduces from.
// Legend: N = rows, C = features.

import TensorCore
import XCTest

final class AutogradTests: XCTestCase {
    // MARK: Accumulation

    func testTensorUsedTwiceAccumulatesBothGradients() {
        let x = Tensor(shape: [3], data: [1, -2, 0.5], requiresGrad: true, name: "x")
        (x * x).backward(gradient: [1, 1, 2])
        XCTAssertEqual(x.grad, [2, -4, 2], "d(x·x)/dx = 2x, once from each operand")
        assertGradCheck("x * x", [x]) { $0[0] * $0[0] }
    }

    func testGradientsAccumulateAcrossBackwardsUntilZeroGrad() {
        let x = Tensor(shape: [2], data: [3, -1], requiresGrad: true, name: "x")
        func loss() -> Tensor { (x * x).sum() }   // graph rebuilt per backward (it is released)
        loss().backward()
        XCTAssertEqual(x.grad, [6, -2])
        loss().backward()
        XCTAssertEqual(x.grad, [12, -4], "the second backward adds to the first")
        x.zeroGrad()
        XCTAssertNil(x.grad)
        loss().backward()
        XCTAssertEqual(x.grad, [6, -2])
    }

    func testBackwardSeedScalesTheGradient() {
        let x = Tensor(shape: [2], data: [3, -1], requiresGrad: true, name: "x")
        (2 * x).sum().backward(seed: 0.5)
        XCTAssertEqual(x.grad, [1, 1])
    }

    func testWithoutGradRecordsNothing() {
        let x = randomTensor([2, 3], "x", seed: 1), w = randomTensor([4, 3], "w", seed: 2)
        let y = Autograd.withoutGrad { () -> Tensor in
            XCTAssertFalse(Autograd.isEnabled)
            return Tensor.linear(x, w).silu().sum()
        }
        XCTAssertTrue(Autograd.isEnabled, "recording resumes after withoutGrad")
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
        y.backward()   // nothing recorded: a no-op
        XCTAssertNil(x.grad)
        XCTAssertNil(w.grad)
        // Same values as with recording on, and recording on again afterwards.
        let z = Tensor.linear(x, w).silu().sum()
        XCTAssertEqual(z.item, y.item)
        XCTAssertTrue(z.requiresGrad)
        XCTAssertFalse(z.isLeaf)
    }

    func testNoGraphWithoutInputsThatRequireGrad() {
        let a = randomTensor([2, 2], "a", seed: 3, requiresGrad: false)
        let y = Tensor.matmul(a, a).silu()
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(y.isLeaf)
    }

    // MARK: Gradient-ready hooks

    /// Three layers, x → linear(w1) → silu → linear(w2) → silu → linear(w3) → sum, with a hook
    /// on each weight that logs its name and a copy of its gradient at the moment it fires.
    final class Chain {
        let x = randomTensor([3, 4], "x", seed: 4, requiresGrad: false)   // [N, C]
        let w1 = randomTensor([5, 4], "w1", seed: 5), w2 = randomTensor([5, 5], "w2", seed: 6)
        let w3 = randomTensor([2, 5], "w3", seed: 7)
        var log: [(name: String, grad: [Float]?, w1Grad: [Float]?)] = []

        init() {
            for p in [w1, w2, w3] {
                p.onGradReady { [unowned self] t in self.log.append((t.name, t.grad, self.w1.grad)) }
            }
        }
        func step() {
            let h1 = Tensor.linear(x, w1).silu()          // [N, 5]
            let h2 = Tensor.linear(h1, w2).silu()         // [N, 5]
            Tensor.linear(h2, w3).sum().backward()        // [N, 2] → []
        }
    }

    func testHookFiresOncePerBackwardLaterLayersFirst() {
        let c = Chain()
        c.step()
        XCTAssertEqual(c.log.map(\.name), ["w3", "w2", "w1"], "later layers are ready first")
        XCTAssertNil(c.log[0].w1Grad, "w3's hook fires while the backward still has w1 to do")
        c.step()
        XCTAssertEqual(c.log.map(\.name), ["w3", "w2", "w1", "w3", "w2", "w1"], "exactly once per backward")
    }

    func testHookSeesTheFinalGradient() {
        let c = Chain()
        c.step()
        for (entry, p) in zip(c.log, [c.w3, c.w2, c.w1]) {
            XCTAssertNotNil(entry.grad, "\(p.name) has its gradient when its hook fires")
            XCTAssertEqual(entry.grad, p.grad, "\(p.name): gradient at hook time vs after backward")
        }
        c.step()   // second backward: the hook sees the accumulated (doubled) gradient
        for (entry, p) in zip(c.log[3...], [c.w3, c.w2, c.w1]) { XCTAssertEqual(entry.grad, p.grad) }
    }

    func testHookOfAParameterUsedTwiceFiresAfterBothUses() {
        // w is used by the first and the last layer (tied weights): it is ready only after the
        // first layer's backward, i.e. after v, and with both contributions summed.
        let x = randomTensor([3, 4], "x", seed: 8, requiresGrad: false)
        let w = randomTensor([4, 4], "w", seed: 9), v = randomTensor([4, 4], "v", seed: 10)
        var log: [(String, [Float]?)] = []
        for p in [w, v] { p.onGradReady { log.append(($0.name, $0.grad)) } }
        let h = Tensor.linear(Tensor.linear(Tensor.linear(x, w).silu(), v).silu(), w)   // [N, 4]
        h.backward(gradient: GradCheck.projection(count: 12, seed: 1))
        XCTAssertEqual(log.map(\.0), ["v", "w"])
        XCTAssertEqual(log.last?.1, w.grad, "w's hook saw both contributions")
        // And that final gradient is right: both uses together, checked numerically.
        assertGradCheck("tied w", [w, v]) { t in
            Tensor.linear(Tensor.linear(Tensor.linear(x, t[0]).silu(), t[1]).silu(), t[0])
        }
    }

    func testHookForATensorUsedTwiceByOneOpFiresOnce() {
        let x = randomTensor([3], "x", seed: 11)
        var calls = 0
        x.onGradReady { _ in calls += 1 }
        (x * x).sum().backward()
        XCTAssertEqual(calls, 1)
    }

    func testLeafNotReachedByTheLossGetsNoHook() {
        let x = randomTensor([2, 3], "x", seed: 12, requiresGrad: false)
        let w = randomTensor([4, 3], "w", seed: 13), unused = randomTensor([4, 3], "unused", seed: 14)
        var fired: [String] = []
        for p in [w, unused] { p.onGradReady { fired.append($0.name) } }
        let side = Tensor.linear(x, unused)   // recorded, but the loss does not depend on it
        Tensor.linear(x, w).sum().backward()
        XCTAssertEqual(fired, ["w"])
        XCTAssertNil(unused.grad)
        XCTAssertTrue(side.requiresGrad)
    }

    func testRemovedHooksDoNotFire() {
        let w = randomTensor([3], "w", seed: 15)
        var calls = 0
        w.onGradReady { _ in calls += 1 }
        w.removeGradReadyHooks()
        (w * w).sum().backward()
        XCTAssertEqual(calls, 0)
    }

    func testBackwardReleasesTheGraph() {
        // After backward the recorded links are gone: intermediate tensors become leaves and keep
        // no gradient (memory is freed as the walk passes).
        let x = randomTensor([3], "x", seed: 16)
        let h = x.silu()
        let loss = h.sum()
        loss.backward()
        XCTAssertTrue(h.isLeaf)
        XCTAssertNil(h.grad)
        XCTAssertNotNil(x.grad)
    }
}
