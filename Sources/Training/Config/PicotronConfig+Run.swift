// From a picotron config to what the training loop needs: options, the dataset, the run folder.

import Foundation
import Llama

extension PicotronConfig {
    /// The settings `picotron train` uses when it is given no config file: the `micro` preset on
    /// the embedded corpus, sized to learn visibly in a few minutes on 2 cores.
    public static var quickStart: PicotronConfig {
        var c = PicotronConfig()
        c.model.name = "micro"
        c.training.totalTrainSteps = 1000
        c.training.seqLength = 128
        c.training.microBatchSize = 16
        c.training.learningRate = 2e-3
        c.training.warmupSteps = 20
        c.training.lrSchedule = "cosine"
        c.training.minLR = 2e-4
        c.training.weightDecay = 0.1
        c.training.adamBeta2 = 0.95
        c.training.maxGradNorm = 1.0
        c.logging.logFrequency = 50
        return c
    }

    /// The loop's options; checkpoints, metrics and the loss curve go under `runDir` unless the
    /// config names their places.
    public func trainOptions(runDir: URL) -> TrainOptions {
        var o = TrainOptions()
        o.steps = training.totalTrainSteps
        o.microBatchSize = training.microBatchSize
        o.gradientAccumulation = training.gradientAccumulationSteps
        o.sequenceLength = training.seqLength
        o.seed = training.seed
        o.hyper = training.adamW
        o.warmupSteps = training.warmupSteps
        // "constant" keeps the peak after warmup; "cosine" decays to min_lr (default: a tenth).
        o.minLearningRate = training.lrSchedule == "cosine" ? (training.minLR ?? training.learningRate / 10)
                                                            : training.learningRate
        o.maxGradNorm = training.maxGradNorm ?? 0
        let saveDir = checkpoint.saveDir.isEmpty ? "checkpoints" : checkpoint.saveDir
        o.saveDir = saveDir.hasPrefix("/") ? URL(fileURLWithPath: saveDir) : runDir.appendingPathComponent(saveDir)
        o.saveFrequency = checkpoint.saveFrequency
        o.loadPath = checkpoint.loadPath.isEmpty ? nil : URL(fileURLWithPath: checkpoint.loadPath)
        o.metricsFile = URL(fileURLWithPath: logging.metricsFile ?? runDir.appendingPathComponent("metrics.jsonl").path)
        o.lossCurveFile = runDir.appendingPathComponent("loss.svg")
        o.logFrequency = logging.logFrequency
        o.tokenizer = dataset.tokenFile == nil ? "byte" : "external"
        return o
    }

    /// The tokens to train on: `dataset.token_file`, else `dataset.text_file`, else the embedded corpus.
    public func loadDataset() throws -> TokenDataset {
        if let file = dataset.tokenFile {
            var dtype: TokenDType?
            if let name = dataset.tokenDType {
                guard let d = TokenDType(rawValue: name) else {
                    throw TrainingError.config("dataset.token_dtype \"\(name)\": use uint16 or uint32")
                }
                dtype = d
            }
            return try TokenDataset.tokenFile(URL(fileURLWithPath: file), dtype: dtype)
        }
        if let file = dataset.textFile { return try TokenDataset.textFile(URL(fileURLWithPath: file)) }
        return try TokenDataset.embedded()
    }
}
