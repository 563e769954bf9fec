import Distributed
import Foundation
import Llama
import TensorCore
import Training

/// How one rank takes part in a run: its (possibly parallelised) model and the loop's hooks.
/// Each lesson's module supplies its piece; this is where they are put together.
struct ParallelPlan {
    let model: LlamaForCausalLM
    let hooks: ParallelHooks
    /// The whole model on world rank 0 (for sampling), or nil where it cannot be assembled.
    let fullModel: () -> LlamaForCausalLM?

    static func make(grid: ProcessGrid, modelConfig: LlamaConfig, seed: UInt64) throws -> ParallelPlan {
        for (name, size, lesson) in [("pp_size", grid.ppSize, "3 (pipeline)"), ("cp_size", grid.cpSize, "4 (context)")]
        where size > 1 {
            throw TrainingError.config("distributed.\(name) \(size): this dimension arrives with lesson \(lesson); "
                                  + "set \(name) to 1 for now")
        }
        guard grid.dpSize == 1, grid.tpSize == 1 else {
            throw TrainingError.config("distributed.dp_size \(grid.dpSize), tp_size \(grid.tpSize): data and tensor "
                                  + "parallel training arrive with lessons 1 and 2; set both to 1 for now")
        }
        let model = LlamaForCausalLM(config: modelConfig, seed: seed)
        var hooks = ParallelHooks()
        hooks.isMainRank = grid.worldRank == 0
        hooks.worldSize = grid.worldSize
        hooks.ranksPerMachine = ranksPerMachine(worldSize: grid.worldSize)
        return ParallelPlan(model: model, hooks: hooks, fullModel: { model })
    }

    /// Ranks sharing this machine's cores: all of them in-process; under MPI, OpenMPI says.
    static func ranksPerMachine(worldSize: Int) -> Int {
        guard Launcher.isUnderMPI else { return worldSize }
        let env = ProcessInfo.processInfo.environment
        return (env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["MPI_LOCALNRANKS"]).flatMap(Int.init) ?? 1
    }
}
