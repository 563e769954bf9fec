// Weight gradients put off by a backward (the zero-bubble pipeline's split of B and W): the input
// gradient is there at once, the weight's only after the queue runs, and then equal to computing
// it at once; gradient-ready hooks wait for the queued products, also across two backwards.

import TensorCore
import XCTest

final class DeferredGradientsTests: XCTestCase {
    /// loss = Σ (x · W₁ᵀ) · W₂ᵀ for micro-batch `seed`, W₁ [4, 3], W₂ [2, 4] leaves.
    func loss(_ w1: Tensor, _ w2: Tensor, seed: UInt64) -> (Tensor, Tensor) {
        let x = randomTensor([5, 3], "x", seed: seed)
        x.requiresGrad = true
        return (Tensor.linear(Tensor.linear(x, w1), w2).sum(), x)
    }

    func testTheWeightGradientWaitsForTheQueueAndThenEqualsTheImmediateOne() {
        let (a1, a2) = (randomTensor([4, 3], "w1", seed: 1), randomTensor([2, 4], "w2", seed: 2))
        let (b1, b2) = (randomTensor([4, 3], "w1", seed: 1), randomTensor([2, 4], "w2", seed: 2))
        let (now, xNow) = loss(a1, a2, seed: 3)
        now.backward()
        let queue = DeferredGradients()
        let (later, xLater) = loss(b1, b2, seed: 3)
        Autograd.deferring(into: queue) { later.backward() }
        XCTAssertEqual(xLater.grad, xNow.grad, "the input's gradient (B) is computed at once")
        XCTAssertNil(b1.grad, "W₁'s gradient waits in the queue")
        XCTAssertNil(b2.grad, "W₂'s gradient waits in the queue")
        XCTAssertEqual(queue.count, 2)
        queue.runAll()
        XCTAssertTrue(queue.isEmpty)
        XCTAssertEqual(b1.grad, a1.grad, "W₁ after the queue ran")
        XCTAssertEqual(b2.grad, a2.grad, "W₂ after the queue ran")
    }

    func testHooksFireOnceTheQueuedProductsHaveRunWithTheWholeGradient() {
        let (a1, a2) = (randomTensor([4, 3], "w1", seed: 1), randomTensor([2, 4], "w2", seed: 2))
        let (b1, b2) = (randomTensor([4, 3], "w1", seed: 1), randomTensor([2, 4], "w2", seed: 2))
        for seed: UInt64 in [3, 4] { loss(a1, a2, seed: seed).0.backward() }   // two micro-batches at once
        var fired: [String: [Float]] = [:]
        for w in [b1, b2] { w.onGradReady { fired[$0.name] = $0.grad } }
        let queue = DeferredGradients()
        // Micro-batch 3's W is still queued when micro-batch 4's backward (the one that
        // synchronises) finishes each weight: the hook must wait for both products.
        Autograd.deferring(into: queue) { loss(b1, b2, seed: 3).0.backward() }
        fired.removeAll()   // hooks of the first backward (data parallelism ignores those)
        Autograd.deferring(into: queue) { loss(b1, b2, seed: 4).0.backward() }
        XCTAssertEqual(fired.count, 0, "no hook before the queued products ran")
        queue.runAll()
        XCTAssertEqual(fired["w1"], a1.grad, "W₁'s hook saw both micro-batches' gradient")
        XCTAssertEqual(fired["w2"], a2.grad, "W₂'s hook saw both micro-batches' gradient")
    }

    func testWithoutAQueueNothingIsPutOff() {
        let (w1, w2) = (randomTensor([4, 3], "w1", seed: 1), randomTensor([2, 4], "w2", seed: 2))
        var fired = 0
        w1.onGradReady { _ in fired += 1 }
        loss(w1, w2, seed: 3).0.backward()
        XCTAssertNotNil(w1.grad)
        XCTAssertEqual(fired, 1)
    }
}
