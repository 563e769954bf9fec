// Weight gradients put off by a backward pass, to be computed later: the split of a backward into
// B (the gradient of the input, which the previous pipeline stage is waiting for) and W (the
// gradients of the weights, which nobody needs before the optimizer step). A pipeline stage sends
// B on at once and does W while it would otherwise wait: the idea of zero-bubble pipeline
// schedules (Qi et al., https://arxiv.org/abs/2401.10241).
//
// While a backward runs inside `Autograd.deferring(queue) { … }`, a matrix product whose second
// operand is a leaf (a layer's weight) queues its dW = op(A)ᵀ · dC instead of computing it. A
// parameter's gradient-ready hooks fire only once its put-off products have run, and only for the
// backward that brought its count to zero last, so data parallelism still sees whole gradients
// (the schedule runs the queue after each backward that synchronises).

/// Put-off weight-gradient products, oldest first.
public final class DeferredGradients {
    private var items: [(tensor: Tensor, work: () -> Void)] = []
    private var outstanding: [ObjectIdentifier: Int] = [:]
    /// Leaves whose backward finished while products for them were still queued: their hooks fire
    /// when the last one runs.
    private var fireWhenDone: [ObjectIdentifier: Tensor] = [:]

    public init() {}

    /// Products waiting.
    public var count: Int { items.count }
    public var isEmpty: Bool { items.isEmpty }

    /// Runs every waiting product, oldest first, firing hooks of gradients that become complete.
    public func runAll() {
        while !items.isEmpty {
            let (tensor, work) = items.removeFirst()
            work()
            let id = ObjectIdentifier(tensor)
            outstanding[id]! -= 1
            if outstanding[id] == 0 {
                outstanding[id] = nil
                if let t = fireWhenDone.removeValue(forKey: id) { t.fireGradReady() }
            }
        }
    }

    func add(_ tensor: Tensor, _ work: @escaping () -> Void) {
        items.append((tensor, work))
        outstanding[ObjectIdentifier(tensor), default: 0] += 1
    }

    /// A new backward begins: hooks still held back for an earlier backward are dropped. So a
    /// backward whose hooks matter (data parallelism synchronises it) must be followed by
    /// `runAll()` before the next one starts; the zero-bubble schedule does that.
    func backwardStarts() { fireWhenDone.removeAll() }

    /// Called when `tensor`'s backward count reached zero: true if it has products waiting (its
    /// hooks will fire when they have run), false if its gradient is complete now.
    func holdsBack(_ tensor: Tensor) -> Bool {
        let id = ObjectIdentifier(tensor)
        guard outstanding[id] != nil else { return false }
        fireWhenDone[id] = tensor
        return true
    }
}

extension Autograd {
    /// The queue that backward passes on this thread put weight gradients into (nil: compute them).
    @TaskLocal public static var deferredGradients: DeferredGradients?

    /// Runs `body` (a backward) with its weight-gradient products put off into `queue`.
    public static func deferring<R>(into queue: DeferredGradients?, _ body: () throws -> R) rethrows -> R {
        try $deferredGradients.withValue(queue) { try body() }
    }
}
