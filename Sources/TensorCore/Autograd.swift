// Reverse-mode autograd. Every op that has an input requiring gradients records its parents
// and a backward closure on its output (micrograd style). `backward()` sorts the graph
// reachable from the loss topologically and runs the closures from the loss down to the leaves.
// That reverse topological order *is* the tape.
//
// Gradient-ready hooks: a parameter's gradient is final for this backward once every op that
// used the parameter has run its backward. We count those consumers before walking the tape
// and fire the parameter's hooks the moment its count reaches zero, while the rest of the
// backward pass still runs. Bucketed data parallelism launches its all-reduces from there.

public enum Autograd {
    /// Whether ops record the graph on this thread (false inside `withoutGrad`).
    @TaskLocal public static var isEnabled = true

    /// Runs `body` without recording the graph (inference, optimizer updates).
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(false) { try body() }
    }
}

extension Tensor {
    /// Makes the output of an op: records `parents` and `backward` only when gradients flow.
    /// `backward` receives the output tensor (read its `grad`) and accumulates into parents.
    @usableFromInline
    static func result(_ shape: [Int], _ data: [Float], parents: [Tensor], op: StaticString = #function,
                       _ backward: @escaping (Tensor) -> Void) -> Tensor {
        if OpProfiler.isEnabled { OpProfiler.forwardEnded(op) }
        let out = Tensor(shape: shape, data: data)
        if Autograd.isEnabled && parents.contains(where: { $0.requiresGrad }) {
            out.requiresGrad = true
            out.parents = parents
            out.backwardFn = backward
            out.op = op
        }
        return out
    }

    /// Whether this tensor was made by an op (false for parameters and inputs).
    public var isLeaf: Bool { backwardFn == nil }

    /// Registers a hook that fires during `backward()` as soon as this leaf's gradient is
    /// complete for that backward pass (all its consumers have contributed). The hook receives
    /// the tensor itself; read `grad` from it (it is the accumulated gradient). A leaf that is in
    /// the graph but received no gradient (a custom backward returned nil for it) still gets its
    /// hook, with `grad == nil`: read that as zero, so that a bucket waiting for it completes.
    public func onGradReady(_ hook: @escaping (Tensor) -> Void) {
        gradReadyHooks.append(hook)
    }

    /// Removes every gradient-ready hook.
    public func removeGradReadyHooks() { gradReadyHooks.removeAll() }

    /// Back-propagates from this tensor. A scalar seeds with `seed`; otherwise pass `gradient`.
    /// Intermediate gradients and the recorded graph are released as the walk passes them.
    public func backward(seed: Float = 1, gradient: [Float]? = nil) {
        if let gradient {
            precondition(gradient.count == count, "backward gradient has \(gradient.count) values, "
                         + "tensor \(shape) has \(count)")
        } else {
            precondition(count == 1, "backward() without a gradient needs a scalar, got shape \(shape)")
        }
        guard requiresGrad else { return }
        let later = Autograd.deferredGradients   // weight gradients put off (DeferredGradients.swift)
        later?.backwardStarts()
        let order = topologicalOrder()
        // How many recorded ops still have to add into each tensor's gradient.
        var pending = [ObjectIdentifier: Int]()
        for node in order { for p in node.parents { pending[ObjectIdentifier(p), default: 0] += 1 } }

        accumulateGrad(gradient ?? [seed])
        for node in order.reversed() {
            if let fn = node.backwardFn {
                if node.grad != nil {
                    if OpProfiler.isEnabled { OpProfiler.timeBackward(node.op) { fn(node) } } else { fn(node) }
                }
                let parents = node.parents
                // Release the graph and the intermediate gradient: they are used once.
                node.backwardFn = nil
                node.parents = []
                node.grad = nil
                for p in parents {
                    let id = ObjectIdentifier(p)
                    pending[id]! -= 1
                    if pending[id] == 0 && p.isLeaf && !(later?.holdsBack(p) ?? false) { p.fireGradReady() }
                }
            } else if node === self && !(later?.holdsBack(self) ?? false) {
                fireGradReady()
            }
        }
    }

    func fireGradReady() {
        guard requiresGrad, !gradReadyHooks.isEmpty else { return }
        for hook in gradReadyHooks { hook(self) }
    }

    /// Every tensor reachable from `self` through recorded parents, parents before children.
    private func topologicalOrder() -> [Tensor] {
        var order = [Tensor]()
        var visited = Set<ObjectIdentifier>()
        // Iterative depth-first search: deep models would overflow a recursive one.
        var stack: [(Tensor, Int)] = [(self, 0)]
        visited.insert(ObjectIdentifier(self))
        while let (node, next) = stack.popLast() {
            if next < node.parents.count {
                stack.append((node, next + 1))
                let p = node.parents[next]
                if p.requiresGrad && visited.insert(ObjectIdentifier(p)).inserted {
                    stack.append((p, 0))
                }
            } else {
                order.append(node)
            }
        }
        return order
    }
}

// MARK: - Custom differentiable functions

extension Tensor {
    /// A differentiable function with a hand-written backward, like PyTorch's
    /// `torch.autograd.Function`. The lessons write their communication ops with it, e.g.
    /// Megatron's `f`: identity forward, all-reduce of the gradient backward.
    ///
    /// - Parameters:
    ///   - inputs: the tensors the output depends on.
    ///   - shape, data: the forward result, already computed by the caller.
    ///   - backward: receives the output's gradient and returns one gradient per input
    ///     (same count as that input, or `nil` for none). It runs at most once per graph.
    public static func custom(inputs: [Tensor], shape: [Int], data: [Float],
                              op: StaticString = #function,
                              backward: @escaping (_ gradOutput: [Float]) -> [[Float]?]) -> Tensor {
        result(shape, data, parents: inputs, op: op) { out in
            let grads = backward(out.grad!)
            precondition(grads.count == inputs.count,
                         "custom backward returned \(grads.count) gradients for \(inputs.count) inputs")
            for (input, g) in zip(inputs, grads) {
                if let g { input.accumulateGrad(g) }
            }
        }
    }
}

extension Tensor {
    /// Bytes of the tensors the recorded graphs of `roots` keep alive, each counted once: every
    /// tensor reachable from them that is not a leaf (made by an op, held for the backward), its
    /// values and any gradient. Parameters and inputs are leaves and are left out. A measurement
    /// of what a forward holds until its backward runs (pipeline schedules compare it).
    public static func graphBytes(_ roots: [Tensor]) -> Int {
        var seen = Set<ObjectIdentifier>(), stack = roots, bytes = 0
        while let t = stack.popLast() {
            guard !t.isLeaf, seen.insert(ObjectIdentifier(t)).inserted else { continue }
            bytes += 4 * (t.data.count + (t.grad?.count ?? 0))
            stack += t.parents
        }
        return bytes
    }
}
