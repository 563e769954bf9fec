// The training loop: determinism, exact resume, checkpoints that transformers can load and
// that are never overwritten, the schedule, clipping, and metrics.

import Formats
import Foundation
import XCTest
import Llama
import TensorCore
@testable import Training

final class TrainerTests: XCTestCase {
    static let config = LlamaConfig(vocabSize: 256, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                    numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 64)

    var tmp: URL!
    override func setUp() {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("picotron-trainer-\(UUID())")
    }
    override func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    func options(steps: Int = 6) -> TrainOptions {
        var o = TrainOptions()
        (o.steps, o.microBatchSize, o.gradientAccumulation, o.sequenceLength) = (steps, 4, 2, 16)
        (o.warmupSteps, o.minLearningRate, o.logFrequency) = (2, 1e-4, 1)
        o.hyper.lr = 3e-3
        o.saveDir = tmp.appendingPathComponent("ckpt")
        o.metricsFile = tmp.appendingPathComponent("metrics.jsonl")
        o.lossCurveFile = tmp.appendingPathComponent("loss.svg")
        return o
    }

    static let text = TokenDataset(text: String(repeating: "To be, or not to be, that is the question. ", count: 60))

    func train(_ o: TrainOptions) throws -> (Trainer, [Float]) {
        let model = LlamaForCausalLM(config: Self.config, seed: UInt64(o.seed))
        let t = try Trainer(model: model, dataset: Self.text, options: o)
        let metrics = try t.run { _ in }
        return (t, metrics.map(\.loss))
    }

    func testSameSeedGivesBitIdenticalLosses() throws {
        let (_, a) = try train(options())
        try FileManager.default.removeItem(at: tmp)
        let (_, b) = try train(options())
        XCTAssertEqual(a, b, "two runs with the same config and seed must print the same losses bit for bit")
        XCTAssertLessThan(a.last!, a.first!, "the loss should fall on repeated text")
    }

    func testResumedRunRepeatsTheUninterruptedLossesExactly() throws {
        var o = options()
        o.saveFrequency = 3
        let (_, full) = try train(o)
        let third = o.saveDir!.appendingPathComponent("step-000003")
        XCTAssertTrue(FileManager.default.fileExists(atPath: third.path))
        var resumed = options()
        resumed.loadPath = third
        resumed.saveDir = tmp.appendingPathComponent("ckpt-resumed")
        let (t, rest) = try train(resumed)
        XCTAssertEqual(rest, Array(full[3...]), "losses after resuming at step 3 differ from the uninterrupted run")
        XCTAssertEqual(t.state.losses, full, "the loss history continues across the resume")
    }

    func testCheckpointIsAHuggingFaceDirectoryAndIsNeverOverwritten() throws {
        let (t, _) = try train(options(steps: 2))
        let dir = options().saveDir!.appendingPathComponent("step-000002")
        let loaded = try LlamaForCausalLM.load(directory: dir)
        for ((n, p), (_, q)) in zip(t.model.namedParameters, loaded.namedParameters) {
            XCTAssertEqual(p.data, q.data, "\(n) differs after saving and loading")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: options().saveDir!.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "a finished save leaves no temporary folder")
        XCTAssertThrowsError(try train(options(steps: 2)), "a second run into the same save_dir must refuse") { error in
            XCTAssertTrue("\(error)".contains("already holds checkpoints"), "\(error)")
        }
        XCTAssertThrowsError(try Checkpoint.save(model: t.model, optimizer: t.optimizer, state: t.state,
                                                 to: options().saveDir!)) { error in
            XCTAssertTrue("\(error)".contains("already exists"), "\(error)")
        }
    }

    func testResumingIntoAFolderWithLaterCheckpointsIsRefusedBeforeTraining() throws {
        var o = options(steps: 4)
        o.saveFrequency = 2
        _ = try train(o)   // writes step-000002 and step-000004
        o.loadPath = o.saveDir!.appendingPathComponent("step-000002")
        XCTAssertThrowsError(try Trainer(model: LlamaForCausalLM(config: Self.config, seed: 42), dataset: Self.text,
                                         options: o)) { error in
            XCTAssertTrue("\(error)".contains("past the resume point"), "\(error)")
        }
    }

    func testCheckpointFromADifferentModelIsRefused() throws {
        _ = try train(options(steps: 2))
        var other = Self.config
        other.hiddenSize = 48
        let model = LlamaForCausalLM(config: other, seed: 1)
        var o = options(steps: 4)
        o.loadPath = o.saveDir
        o.saveDir = tmp.appendingPathComponent("other")
        XCTAssertThrowsError(try Trainer(model: model, dataset: Self.text, options: o)) { error in
            XCTAssertTrue("\(error)".contains("hidden_size 32 in the checkpoint, 48 now"), "\(error)")
        }
    }

    func testCheckpointWhoseWeightsDisagreeWithItsConfigIsAnErrorNotACrash() throws {
        let (t, _) = try train(options(steps: 2))
        let dir = options().saveDir!.appendingPathComponent("step-000002")
        var tensors = t.model.namedParameters.map { (name: $0.0, shape: $0.1.shape, values: $0.1.data) }
        tensors[0] = (tensors[0].name, [2, 2], [1, 2, 3, 4])   // the embedding, cut down
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent("model.safetensors"))
        let model = LlamaForCausalLM(config: Self.config, seed: 1)
        XCTAssertThrowsError(try Checkpoint.load(from: dir, into: model,
                                                 optimizer: AdamW(parameters: model.parameters, hyper: .init()))) { error in
            XCTAssertTrue("\(error)".contains("model.embed_tokens.weight"), "the message should name the tensor: \(error)")
        }
    }

    func testTooShortCorpusIsAClearError() {
        var o = options()
        o.sequenceLength = 64
        XCTAssertThrowsError(try Trainer(model: LlamaForCausalLM(config: Self.config, seed: 1),
                                         dataset: TokenDataset(text: "too short"), options: o)) { error in
            XCTAssertTrue("\(error)".contains("65"), "the message should say how many tokens are needed: \(error)")
        }
    }

    func testMetricsFileHasOneJSONLinePerStepAndTheCurveIsDrawn() throws {
        _ = try train(options(steps: 3))
        let lines = try String(contentsOf: tmp.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        for key in ["step", "loss", "tokens_per_second", "mfu", "lr"] { XCTAssertNotNil(first[key], "metrics lack \(key)") }
        let svg = try String(contentsOf: tmp.appendingPathComponent("loss.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("<polyline"))
    }

    func testScheduleWarmsUpThenDecaysToTheMinimum() {
        let s = LearningRateSchedule(peak: 1e-3, minimum: 1e-4, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(s.rate(at: 5), 5e-4, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 10), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 60), 5.5e-4, accuracy: 1e-12, "halfway through the decay: the mean of peak and minimum")
        XCTAssertEqual(s.rate(at: 110), 1e-4, accuracy: 1e-12)
    }

    func testClippingScalesToTheMaximumNormLikeTorch() {
        let p = Tensor(shape: [2], data: [3, 4], requiresGrad: true)
        p.grad = [3, 4]
        let norm = GradientClipping.clip([p], maxNorm: 1, globalSquaredNorm: GradientClipping.localSquaredNorm([p]))
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        XCTAssertEqual(p.grad![0], 3 / (5 + 1e-6), accuracy: 1e-6)
        XCTAssertEqual(p.grad![1], 4 / (5 + 1e-6), accuracy: 1e-6)
    }
}
