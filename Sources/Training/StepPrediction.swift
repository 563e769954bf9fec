// StepPrediction.swift: a step's time predicted before running it, from the machine's measured
// sgemm peak and copy bandwidth and the traffic formulas of each parallel dimension (the same the
// lessons check against the ledger). `picotron plan` prints it beside the memory estimate.
//
// Legend: A = micro-batches per step (grad acc), B = micro-batch, T = sequence length, N = B·T/cp
// tokens a rank holds per micro-batch, L_s = layers of stage s, C = hidden, kvd = kv heads·head_dim,
// P_s = parameters of a stage-s rank, F(t) = training FLOPs per token (Throughput), R = ranks on
// this machine, peak = this machine's sgemm GFLOP/s with all its cores, bw = its copy bandwidth.
// A prediction of the matrix work only: see docs/memory.md for how it compares with measured steps.
//
//   compute   a rank of stage s does A·N·F_s FLOPs (F_s: its layers, its tp shard; attention over
//             all T keys) at peak / R (the ranks share the machine); the busiest rank paces the step.
//   bubble    the pipeline stretches that by (A·v + pp − 1)/(A·v) (1F1B and AFAB: v = 1), unless the
//             ranks of the other stages are enough to keep every core busy meanwhile (R / pp ≥ cores)
//   tp        4 all-reduces per layer and micro-batch (2 forward, 2 backward) and 2 for the embedding
//             of N·C floats; a ring all-reduce moves 2(tp − 1)/tp of them per rank
//   cp        ring attention: A·L_s·(2(cp − 1) + 4cp)·N·kvd floats sent per rank
//   pp        A·2·N·C floats (activations forward, gradients backward) per stage boundary
//   dp        one all-reduce of P_s floats over the cp·dp group per step, 2(g − 1)/g of them moved;
//             overlapped with the backward (2/3 of the compute), so only what is longer shows
//   time      compute + (tp + cp + pp traffic + exposed dp) · 4 bytes / bw
// Not modelled: element-wise work and per-op overhead (they make small models slower than this),
// contention between transfers and compute on shared cores, latency per call.

import Foundation
import Llama

public struct StepPrediction: Sendable {
    /// Seconds per step, by part.
    public var compute: Double, bubble: Double, tensorParallel: Double, contextParallel: Double
    public var pipelineParallel: Double, dataParallelExposed: Double
    /// Floats each rank sends per step, by group (the busiest stage's rank).
    public var floats: [(group: String, count: Double)]
    /// FLOPs of the whole step, all ranks.
    public var totalFLOPs: Double
    public var tokensPerStep: Double

    public var seconds: Double {
        compute + bubble + tensorParallel + contextParallel + pipelineParallel + dataParallelExposed
    }
    public var tokensPerSecond: Double { tokensPerStep / seconds }

    /// - Parameters:
    ///   - peakGFLOPS: this machine's sgemm peak with all `cores` busy.
    ///   - bandwidthGBps: memory copy bandwidth (a shared-memory transfer copies once or twice).
    ///   - ranksHere: ranks sharing this machine's cores.
    public init(config: PicotronConfig, model c: LlamaConfig, stages: [MemoryEstimate], peakGFLOPS: Double,
                cores: Int, bandwidthGBps: Double, ranksHere: Int) {
        let d = config.distributed, t = config.training
        let (dp, tp, pp, cp) = (Double(d.dpSize), Double(d.tpSize), max(1, d.ppSize), Double(d.cpSize))
        let a = Double(t.gradientAccumulationSteps)
        let v = d.ppEngine == "interleaved" ? Double(max(1, d.ppVirtualStages)) : 1
        let n = Double(t.microBatchSize * t.seqLength) / cp                          // tokens a rank holds
        let C = Double(c.hiddenSize), kvd = Double(c.numKeyValueHeads * c.headDim)
        let full = Throughput.trainingFlopsPerToken(c, sequenceLength: t.seqLength)  // whole model, one token
        let perLayer = (full - 6 * Double(c.vocabSize) * C) / Double(c.numHiddenLayers)
        // FLOPs per token of a stage-s rank: its layers and, on the last stage, the head; its tp shard.
        func flops(_ s: Int) -> Double {
            let layers = Double(MemoryEstimate.layers(c.numHiddenLayers, pp: pp, virtualStages: Int(v), stage: s))
            return (layers * perLayer + (s == pp - 1 ? 6 * Double(c.vocabSize) * C : 0)) / tp
        }
        let perRank = (0 ..< pp).map { a * n * flops($0) }
        let busiest = perRank.indices.max { perRank[$0] < perRank[$1] }!
        totalFLOPs = perRank.reduce(0, +) * dp * cp * tp
        tokensPerStep = Double(config.tokensPerStep)
        let ranksHere = Double(max(1, ranksHere)), cores = Double(max(1, cores))
        compute = perRank[busiest] / (peakGFLOPS * 1e9 / ranksHere)                // each rank its share of the machine
        // A stage in its bubble idles; its cores go to the other stages' ranks when they are enough to fill them.
        // zb fills part of 1F1B's bubble with weight gradients (W is a third of the work, but nothing
        // fills the start): a third less, as measured on tiny pp 2. Tensor-parallel layers keep theirs.
        let idle = Double(pp - 1) * (d.ppEngine == "zb" && d.tpSize == 1 ? 2.0 / 3 : 1)
        let stretch = pp > 1 ? (a * v + idle) / (a * v) : 1
        bubble = ranksHere / Double(pp) >= cores ? 0 : compute * (stretch - 1)
        let layers = Double(MemoryEstimate.layers(c.numHiddenLayers, pp: pp, virtualStages: Int(v), stage: busiest))
        let ring = { (g: Double) in g > 1 ? 2 * (g - 1) / g : 0 }
        let tpFloats = a * (4 * layers + 2) * n * C * ring(tp)
        let cpFloats = cp > 1 ? a * layers * (2 * (cp - 1) + 4 * cp) * n * kvd : 0
        let ppFloats = pp > 1 ? a * 2 * n * C : 0
        let dpFloats = stages[busiest].parametersPerRank * ring(dp * cp)
        floats = [("tp", tpFloats), ("cp", cpFloats), ("pp", ppFloats), ("cp+dp", dpFloats)].filter { $0.1 > 0 }
        let seconds = { (floats: Double) in floats * 4 / (bandwidthGBps * 1e9) }
        tensorParallel = seconds(tpFloats)
        contextParallel = seconds(cpFloats)
        pipelineParallel = seconds(ppFloats)
        dataParallelExposed = max(0, seconds(dpFloats) - compute * 2 / 3)
    }
}

extension Throughput {
    /// The best memory-copy rate in GB/s over a few copies of 64 MiB (what a shared-memory
    /// transfer between ranks of one machine is made of).
    public static func measureCopyBandwidth() -> Double {
        let n = 16 << 20
        let source = [Float](repeating: 1, count: n)
        var target = [Float](repeating: 0, count: n)
        var best = 0.0
        for _ in 0 ..< 5 {
            let start = DispatchTime.now().uptimeNanoseconds
            source.withUnsafeBufferPointer { s in target.withUnsafeMutableBufferPointer { t in
                t.baseAddress!.update(from: s.baseAddress!, count: n)
            } }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(n * 4) / seconds / 1e9)
        }
        return best
    }
}
