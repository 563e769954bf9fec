// The plan `picotron train` makes from a config: the pipeline's engine and micro-batch shape, the
// context layout and attention, read from `distributed` and the run's options. The lessons call the
// same function, so what they measure is what a training run does.

import Distributed
import Llama
import Step3_PipelineParallel
import Step4_ContextParallel
import Training

extension ParallelPlan {
    /// One rank's plan for a run of `cfg` (sizes already validated) on `grid`.
    public static func make(grid: ProcessGrid, config cfg: PicotronConfig, modelConfig: LlamaConfig,
                            options: TrainOptions, bucketMB: Double) throws -> ParallelPlan {
        let d = cfg.distributed
        let engine = PipelineEngine(rawValue: d.ppEngine) ?? .oneFOneB   // validated with the config
        let pipeline = PipelinePlan(engine: engine, virtualStages: d.ppVirtualStages,
                                    microBatches: options.gradientAccumulation, microBatchSize: options.microBatchSize,
                                    sequenceLength: options.sequenceLength / d.cpSize)   // a stage sends its cp share
        let context = ContextPlan(layout: ContextLayout(rawValue: d.cpLayout) ?? .zigzag,
                                  attention: ContextAttention(rawValue: d.cpAttention) ?? .ring,
                                  sequenceLength: options.sequenceLength)
        return try make(grid: grid, modelConfig: modelConfig, seed: UInt64(options.seed), bucketMB: bucketMB,
                        pipeline: pipeline, context: context, sequenceParallel: d.sequenceParallel,
                        zeroStage: d.zeroStage)
    }
}
