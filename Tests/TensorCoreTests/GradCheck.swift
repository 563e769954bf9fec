// A reusable gradient checker, and the comparison helpers every TensorCore test uses.
//
// The loss is a fixed random projection of the op's output, L = Σ wᵢ·yᵢ: every output element
// gets its own weight, so a backward that mixes up two outputs, drops one or scales one is seen
// (a plain sum would hide a permutation). The analytic gradient comes from `y.backward(gradient: w)`
// (dL/dy = w seeds the backward directly, so no op under test is needed to form L); the numeric
// one from central differences, (L(x + ε) − L(x − ε)) / 2ε, with L summed in Double.
//
// Two tolerances, both |analytic − numeric| ≤ absolute + relative · max(|analytic|, |numeric|):
// - `.float32CentralDifference`: differences of the float32 forward itself (see its comment).
// - `.doubleReference`: the analytic gradient against central differences of an independent
//   double-precision forward written in the test, for ops float32 differences cannot check tightly.
//
// Results are values (`GradCheckResult`) so a test can assert that a wrong backward IS caught;
// `assertGradients` turns them into XCTest failures.

import TensorCore
import XCTest

/// |a − b| ≤ absolute + relative · max(|a|, |b|).
struct Tolerance: CustomStringConvertible {
    var relative: Double
    var absolute: Double

    func bound(_ a: Double, _ b: Double) -> Double { absolute + relative * max(abs(a), abs(b)) }
    func accepts(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= bound(a, b) }
    var description: String { "\(absolute) + \(relative)·|x|" }

    /// Central differences of the float32 forward, ε = 1e-2, inputs of size ~1. Rounding: only
    /// the outputs the perturbed element touches change, each by a few ulp (≈ 1e-7 · |y|), so
    /// the noise of (L(x + ε) − L(x − ε)) / 2ε is ~1e-5 for the sizes used here. Truncation:
    /// ε²/6 · |f'''| ≈ 2e-5 · |f'''|, zero for the (bi)linear ops. ε = 1e-3 would divide the same
    /// rounding noise by 2e-3: ten times noisier, for less truncation error than we need.
    /// Measured over every check in this target, the worst |Δ| is 1/9 of this bound.
    static let float32CentralDifference = Tolerance(relative: 3e-3, absolute: 3e-4)

    /// Analytic float32 gradient against double central differences with ε = 1e-6: the reference
    /// is exact to ~1e-9 (truncation ε² · f''', rounding 1e-16 · |L| / ε), so what remains is the
    /// op's own float32 rounding in forward and backward, a few ulp per value (ulp(1) = 1.2e-7).
    /// Tighter than the usual 1e-4: the worst measured |Δ| here is 1/9 of this bound.
    static let doubleReference = Tolerance(relative: 1e-5, absolute: 1e-6)

    /// A float32 forward against a double reference from the same float inputs: ~16 ulp, for
    /// short float sums (K ≤ 8 terms here) and one fastExp (~2 ulp) on the way.
    static let float32Forward = Tolerance(relative: 2e-6, absolute: 2e-7)
}

/// One gradient element that disagrees.
struct GradMismatch: CustomStringConvertible {
    var op: String
    var argument: Int
    var name: String
    var shape: [Int]
    var element: Int
    var analytic: Double
    var numeric: Double
    var tolerance: Tolerance

    var index: [Int] { unravel(element, shape) }
    var description: String {
        let d = abs(analytic - numeric)
        return "\(op): ∂L/∂(argument \(argument) '\(name)' \(shape)) at element \(element) = \(index): "
            + "analytic \(fmt(analytic)) vs numeric \(fmt(numeric)), "
            + "|Δ| \(fmt(d)) > \(fmt(tolerance.bound(analytic, numeric)))"
    }
}

struct GradCheckResult {
    var op: String
    var tolerance: Tolerance
    var mismatches: [GradMismatch] = []
    /// Structural problems (no graph recorded, gradient of the wrong size).
    var errors: [String] = []
    /// Elements compared per argument (all, or a random subset of a large input); 0 = not checked.
    var checked: [Int]
    /// The largest |numeric gradient| per argument: a check where every one is 0 proves little.
    var largestNumeric: [Double]
    /// The largest |analytic − numeric| / allowed over all elements: how close to failing (≤ 1 passes).
    var worstRatio = 0.0
    var passed: Bool { mismatches.isEmpty && errors.isEmpty }
}

enum GradCheck {
    /// The projection weights w, N(0, 1), fixed by `seed`.
    static func projection(count: Int, seed: UInt64) -> [Float] {
        var rng = TestRandom(seed: seed ^ 0x9E37_79B9)
        return (0..<count).map { _ in rng.normal() }
    }

    /// Runs `f`, back-propagates w, and returns the output, w and each input's gradient (zeros if none).
    static func analytic(_ inputs: [Tensor], seed: UInt64, _ f: ([Tensor]) -> Tensor)
        -> (y: Tensor, w: [Float], grads: [[Float]], errors: [String]) {
        for x in inputs { x.zeroGrad() }
        let y = f(inputs)
        let w = projection(count: y.count, seed: seed)
        guard y.requiresGrad else { return (y, w, inputs.map { _ in [] }, ["output does not require grad"]) }
        let snapshot = y.data
        y.backward(gradient: w)
        var errors = [String]()
        if snapshot != y.data { errors.append("backward changed the output values") }
        let grads = inputs.enumerated().map { a, x -> [Float] in
            let g = x.grad ?? [Float](repeating: 0, count: x.count)
            if g.count != x.count {
                errors.append("argument \(a) '\(x.name)': gradient has \(g.count) values, input \(x.count)")
            }
            return g
        }
        return (y, w, grads, errors)
    }

    /// Checks every input that requires grad by float32 central differences.
    /// Inputs with more than `maxElements` values are checked on a random subset of them.
    static func check(_ op: String, _ inputs: [Tensor], eps: Float = 1e-2,
                      tolerance: Tolerance = .float32CentralDifference, maxElements: Int = 400,
                      seed: UInt64 = 1, _ f: ([Tensor]) -> Tensor) -> GradCheckResult {
        let (_, w, grads, errors) = analytic(inputs, seed: seed, f)
        var result = GradCheckResult(op: op, tolerance: tolerance, errors: errors, checked: inputs.map { _ in 0 },
                                     largestNumeric: inputs.map { _ in 0 })
        guard errors.isEmpty else { return result }
        func loss() -> Double {
            Autograd.withoutGrad { zip(f(inputs).data, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        }
        for (a, x) in inputs.enumerated() where x.requiresGrad {
            for i in sampleIndices(x.count, maxElements, seed: seed &+ UInt64(a)) {
                let v = x.data[i]
                x.data[i] = v + eps
                let (up, lossUp) = (Double(x.data[i]), loss())
                x.data[i] = v - eps
                let (down, lossDown) = (Double(x.data[i]), loss())
                x.data[i] = v
                // Divide by the step actually taken: v ± ε is rounded to float32.
                let numeric = (lossUp - lossDown) / (up - down)
                result.record(a, x, element: i, analytic: Double(grads[a][i]), numeric: numeric)
            }
        }
        return result
    }

    /// Central differences of Σ wᵢ·yᵢ for a double-precision forward `f`: the reference gradient.
    static func referenceGradients(_ inputs: [[Double]], weights: [Float], eps: Double = 1e-6,
                                   _ f: ([[Double]]) -> [Double]) -> [[Double]] {
        var x = inputs
        func loss() -> Double {
            let y = f(x)
            precondition(y.count == weights.count, "reference output has \(y.count) values, op \(weights.count)")
            return zip(y, weights).reduce(0.0) { $0 + $1.0 * Double($1.1) }
        }
        return inputs.indices.map { a in
            inputs[a].indices.map { i in
                let v = x[a][i]
                x[a][i] = v + eps
                let up = loss()
                x[a][i] = v - eps
                let down = loss()
                x[a][i] = v
                return (up - down) / (2 * eps)
            }
        }
    }

    /// The analytic gradient of the float32 op against central differences (ε = 1e-6) of an
    /// independent double forward `reference`, which takes the inputs in the same order.
    static func checkAgainstReference(_ op: String, _ inputs: [Tensor], tolerance: Tolerance = .doubleReference,
                                      seed: UInt64 = 2, reference: ([[Double]]) -> [Double],
                                      _ f: ([Tensor]) -> Tensor) -> GradCheckResult {
        let (_, w, grads, errors) = analytic(inputs, seed: seed, f)
        var result = GradCheckResult(op: op, tolerance: tolerance, errors: errors, checked: inputs.map { _ in 0 },
                                     largestNumeric: inputs.map { _ in 0 })
        guard errors.isEmpty else { return result }
        let ref = referenceGradients(inputs.map { $0.data.map(Double.init) }, weights: w, reference)
        for (a, x) in inputs.enumerated() where x.requiresGrad {
            for i in 0..<x.count {
                result.record(a, x, element: i, analytic: Double(grads[a][i]), numeric: ref[a][i])
            }
        }
        return result
    }

    /// `count` indices, or a fixed random subset of `limit` of them.
    static func sampleIndices(_ count: Int, _ limit: Int, seed: UInt64) -> [Int] {
        guard count > limit else { return Array(0..<count) }
        var rng = TestRandom(seed: seed)
        var all = Array(0..<count)
        for i in 0..<limit { all.swapAt(i, i + Int(rng.next() % UInt64(count - i))) }   // partial shuffle
        return Array(all[..<limit]).sorted()
    }
}

extension GradCheckResult {
    mutating func record(_ a: Int, _ x: Tensor, element i: Int, analytic: Double, numeric: Double) {
        checked[a] += 1
        largestNumeric[a] = max(largestNumeric[a], abs(numeric))
        worstRatio = max(worstRatio, abs(analytic - numeric) / tolerance.bound(analytic, numeric))
        if !tolerance.accepts(analytic, numeric) || !analytic.isFinite || !numeric.isFinite {
            mismatches.append(GradMismatch(op: op, argument: a, name: x.name, shape: x.shape, element: i,
                                           analytic: analytic, numeric: numeric, tolerance: tolerance))
        }
    }
}

// MARK: - XCTest wrappers

/// Fails the test for every mismatch (the first 8 in full), every structural error, and every
/// argument that requires grad but was not checked or had only zero gradients (unless listed in
/// `zeroGradient`): a check that compares nothing must not pass.
func assertGradients(_ r: GradCheckResult, _ inputs: [Tensor], zeroGradient: Set<Int> = [],
                     file: StaticString = #filePath, line: UInt = #line) {
    for e in r.errors { XCTFail("\(r.op): \(e)", file: file, line: line) }
    for m in r.mismatches.prefix(8) { XCTFail(m.description, file: file, line: line) }
    if r.mismatches.count > 8 {
        XCTFail("\(r.op): \(r.mismatches.count - 8) more mismatches", file: file, line: line)
    }
    guard r.errors.isEmpty else { return }
    if traceMargins { print("margin \(r.op) [\(r.tolerance)]: worst |Δ| / allowed = \(fmt(r.worstRatio))") }
    for (a, x) in inputs.enumerated() where x.requiresGrad {
        if r.checked[a] == 0 { XCTFail("\(r.op): argument \(a) '\(x.name)' was not checked", file: file, line: line) }
        if !zeroGradient.contains(a) && r.largestNumeric[a] < 1e-6 {
            XCTFail("\(r.op): argument \(a) '\(x.name)' has an all-zero numeric gradient; the check proves nothing",
                    file: file, line: line)
        }
    }
}

/// Float32 central-difference check of `f`'s backward, reported through XCTest.
func assertGradCheck(_ op: String, _ inputs: [Tensor], eps: Float = 1e-2,
                     tolerance: Tolerance = .float32CentralDifference, zeroGradient: Set<Int> = [],
                     file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
    let r = GradCheck.check(op, inputs, eps: eps, tolerance: tolerance, f)
    assertGradients(r, inputs, zeroGradient: zeroGradient, file: file, line: line)
}

/// Compares values with a reference: names the tensor, its shape, the worst element (flat and
/// multi-dimensional index), both values there, and how many elements are out of tolerance.
func assertClose(_ name: String, _ actual: [Float], _ expected: [Double], shape: [Int],
                 tolerance: Tolerance = .float32Forward, file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        return XCTFail("\(name)\(shape): \(actual.count) values vs \(expected.count) expected", file: file, line: line)
    }
    var worst = (ratio: 0.0, index: 0, diff: 0.0), bad = 0
    for i in actual.indices {
        let a = Double(actual[i]), e = expected[i]
        // |Δ| / allowed: > 1 fails. Equal values (also ±∞) and NaN against NaN agree.
        let ratio = a == e || (a.isNaN && e.isNaN) ? 0
            : !a.isFinite || !e.isFinite ? .infinity : abs(a - e) / tolerance.bound(a, e)
        if ratio > 1 { bad += 1 }
        if ratio > worst.ratio { worst = (ratio, i, abs(a - e)) }
    }
    if traceMargins { print("margin \(name) [\(tolerance)]: worst |Δ| / allowed = \(fmt(worst.ratio))") }
    if bad > 0 {
        let i = worst.index
        XCTFail("\(name) rank \(shape.count) \(shape): \(bad) of \(actual.count) values differ; worst |Δ| "
                + "\(fmt(worst.diff)) at \(i) = \(unravel(i, shape)): \(actual[i]) vs expected \(expected[i]) "
                + "(tolerance \(tolerance))", file: file, line: line)
    }
}

func assertClose(_ name: String, _ actual: [Float], _ expected: [Float], shape: [Int],
                 tolerance: Tolerance = .float32Forward, file: StaticString = #filePath, line: UInt = #line) {
    assertClose(name, actual, expected.map(Double.init), shape: shape, tolerance: tolerance, file: file, line: line)
}

// MARK: - Helpers

/// GRADCHECK_TRACE=1 prints how close every check came to its tolerance (worst |Δ| / allowed):
/// the measurements behind the tolerance comments.
let traceMargins = ProcessInfo.processInfo.environment["GRADCHECK_TRACE"] != nil

/// The multi-dimensional index of a row-major flat index.
func unravel(_ flat: Int, _ shape: [Int]) -> [Int] {
    var rest = flat, index = [Int](repeating: 0, count: shape.count)
    for d in shape.indices.reversed() where shape[d] > 0 {
        index[d] = rest % shape[d]
        rest /= shape[d]
    }
    return index
}

func fmt(_ x: Double) -> String { String(format: "%.6g", x) }
