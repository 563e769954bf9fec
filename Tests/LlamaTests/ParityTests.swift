// Our Llama against Hugging Face transformers' LlamaForCausalLM, on fixtures made by
// scripts/make_fixtures.py (see Fixtures/README.md for how, and for the float32 error of
// the fixtures themselves against exact float64 math, which the tolerances below rest on).

import Formats
import Foundation
import XCTest
import TensorCore
@testable import Llama
import Training

final class ParityTests: XCTestCase {
    static var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    struct Case {
        let model: LlamaForCausalLM
        let ids: [Int], labels: [Int], batch: Int, length: Int
        let expected: SafeTensorsFile
        let hyper: AdamW.Hyperparameters
    }

    func loadCase(_ name: String) throws -> Case {
        let dir = Self.fixtures.appendingPathComponent(name)
        let model = try LlamaForCausalLM.load(directory: dir)
        let batch = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("batch.safetensors"))
        let shape = try batch.info("input_ids").shape
        let hyperJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("hyper.json")))
        let h = hyperJSON as! [String: Double]
        return Case(model: model, ids: try batch.int64s("input_ids").map { Int($0) },
                    labels: try batch.int64s("labels").map { Int($0) }, batch: shape[0], length: shape[1],
                    expected: try SafeTensorsFile(contentsOf: dir.appendingPathComponent("expected.safetensors")),
                    hyper: AdamW.Hyperparameters(lr: h["lr"]!, beta1: h["beta1"]!, beta2: h["beta2"]!,
                                                 eps: h["eps"]!, weightDecay: h["weight_decay"]!))
    }

    // Tolerance: relative to the largest reference value of each tensor ("rel(max)").
    // The fixtures are float32 and sit within 1.4e-6 rel(max) of exact float64 math
    // (Fixtures/README.md); two float32 implementations can differ by about twice that.
    // 1e-5 leaves room for summation order and nothing more: a wrong sign, transpose, scale or
    // RoPE convention is off by 1e-2 or more.
    static let relMax: Float = 1e-5

    func checkForwardAndGradients(_ name: String) throws {
        let c = try loadCase(name)
        let (loss, logits) = c.model.loss(c.ids, labels: c.labels, batch: c.batch, length: c.length)
        let expectedLoss = try c.expected.floats("loss")[0]
        XCTAssertEqual(loss.item, expectedLoss, accuracy: abs(expectedLoss) * 1e-5, "\(name): loss")
        assertClose("\(name) logits", logits.data, try c.expected.floats("logits"), relMax: Self.relMax)
        loss.backward()
        let names = c.expected.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) }
        XCTAssertEqual(Set(names), Set(c.model.namedParameters.map(\.0)), "\(name): parameter names differ from transformers'")
        for (pname, p) in c.model.namedParameters {
            assertClose("\(name) grad \(pname)", p.grad ?? [], try c.expected.floats("grad." + pname), relMax: Self.relMax)
        }
    }

    func testTiedModelMatchesTransformers() throws { try checkForwardAndGradients("tied") }
    func testUntiedModelWithHeadDimMatchesTransformers() throws { try checkForwardAndGradients("untied") }

    /// AdamW alone: transformers' gradients in, torch's parameters after one step out.
    /// Same inputs on both sides, so 1e-6 (absolute; parameters are O(0.1–1)) is the bound.
    func testAdamWMatchesTorch() throws {
        for name in ["tied", "untied"] {
            let c = try loadCase(name)
            for (pname, p) in c.model.namedParameters { p.grad = try c.expected.floats("grad." + pname) }
            let opt = AdamW(parameters: c.model.parameters, hyper: c.hyper)
            opt.step()
            for (pname, p) in c.model.namedParameters {
                assertClose("\(name) adamw \(pname)", p.data, try c.expected.floats("adamw." + pname), absolute: 1e-6)
            }
        }
    }

    /// The whole step, our gradients into our AdamW. After one step the update is about
    /// lr · g / (|g| + eps), so where |g| is tiny a float32 rounding of g moves the update
    /// visibly; the fixture itself is 5e-5 off exact math here (Fixtures/README.md).
    /// Bound: 2e-4 absolute (2% of lr), far below the 1e-2 an error in the step would cause.
    func testOneTrainingStepMatchesTorch() throws {
        for name in ["tied", "untied"] {
            let c = try loadCase(name)
            c.model.loss(c.ids, labels: c.labels, batch: c.batch, length: c.length).loss.backward()
            AdamW(parameters: c.model.parameters, hyper: c.hyper).step()
            for (pname, p) in c.model.namedParameters {
                assertClose("\(name) step \(pname)", p.data, try c.expected.floats("adamw." + pname), absolute: 2e-4)
            }
        }
    }

    /// A model saved by us loads back with the same parameters and loss.
    func testSaveAndLoadRoundTrip() throws {
        let c = try loadCase("untied")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-roundtrip-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        try c.model.save(directory: dir)
        let back = try LlamaForCausalLM.load(directory: dir)
        for ((n1, p1), (n2, p2)) in zip(c.model.namedParameters, back.namedParameters) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(p1.data, p2.data, "\(n1) changed in the round trip")
        }
        XCTAssertEqual(back.config.vocabSize, c.model.config.vocabSize)
        XCTAssertEqual(back.config.headDim, c.model.config.headDim)
    }

    /// dtypes.safetensors: torch's own bf16/f16 roundings of x.f32 and torch's widening of them; our
    /// reader widens BF16 and F16 bit for bit as torch's `.float()` does.
    func testFixtureDTypesWidenLikeTorch() throws {
        guard let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
              FileManager.default.fileExists(atPath: fixtures.appendingPathComponent("dtypes.safetensors").path)
        else {
            return XCTFail("Fixtures/dtypes.safetensors is missing; generate it with scripts/make_fixtures.py")
        }
        let f = try SafeTensorsFile(contentsOf: fixtures.appendingPathComponent("dtypes.safetensors"))
        XCTAssertEqual(try f.info("x.bf16").dtype, .bf16)
        XCTAssertEqual(try f.info("x.f16").dtype, .f16)
        XCTAssertEqual(try f.info("x.f32").shape, try f.info("x.bf16").shape)
        XCTAssertEqual(try f.floats("x.f32").count, try f.info("x.f32").shape.reduce(1, *))
        for kind in ["bf16", "f16"] {
            let mine = try f.floats("x.\(kind)"), torch = try f.floats("x.\(kind).widened")
            XCTAssertEqual(try f.info("x.\(kind).widened").dtype, .f32)
            XCTAssertEqual(mine.count, torch.count)
            for (i, (a, b)) in zip(mine, torch).enumerated() where a.bitPattern != b.bitPattern {
                XCTAssertTrue(a.isNaN && b.isNaN, "x.\(kind)[\(i)]: widened to \(a) (\(a.bitPattern)), torch \(b)")
            }
        }
    }
}

/// Compares two float arrays and reports the tensor, the worst index and both values.
/// `relMax`: |Δ| ≤ relMax · max|expected|;  `absolute`: |Δ| ≤ absolute.
func assertClose(_ what: String, _ actual: [Float], _ expected: [Float], relMax: Float? = nil,
                 absolute: Float? = nil, file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst = 0, worstDiff: Float = -1, scale: Float = 0
    for i in expected.indices {
        let d = abs(actual[i] - expected[i])
        if d > worstDiff || d.isNaN { (worst, worstDiff) = (i, d.isNaN ? .infinity : d) }
        scale = max(scale, abs(expected[i]))
    }
    let bound = absolute ?? (relMax! * scale)
    if !(worstDiff <= bound) {
        XCTFail("\(what): max |Δ| = \(worstDiff) at index \(worst) (got \(actual[worst]), expected \(expected[worst])), "
                + "bound \(bound)", file: file, line: line)
    }
}
