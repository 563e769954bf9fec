// The memory of a rank, measured beside `MemoryEstimate` (the formula `picotron train` checks before
// it allocates anything). Measured: the floats of the weights the rank allocated, of its gradients
// when the loop clips them, of AdamW's two moments after a step, and the bytes the autograd graphs
// keep at the peak (`Tensor.graphBytes`: the pipeline schedule's held micro-batches, or one
// micro-batch's forward without a pipeline).

import Distributed
import LessonKit
import Training

enum FourDMemory {
    static func report(_ r: GridResult, grid g: GridLayout, setup s: FourDSetup, world: Communicator,
                       out: (String) -> Void) throws {
        let mine = [r.weights, r.gradients, r.moments, r.activations].map(Float.init)
        let all = try world.allGather(mine)                    // [ranks, 4]
        let ranks = Set([0, world.size - 1]).sorted()
        var table = Table([""] + ranks.flatMap { ["rank \($0): estimate", "measured"] })
        let estimates = ranks.map { r.estimates[g.coordinates(of: $0).pp] }     // its stage's
        let rows: [(String, (MemoryEstimate) -> Double)] = [("weights", \.weights), ("gradients", \.gradients),
                                                            ("AdamW moments", \.optimizer), ("activations", \.activations)]
        for (i, (name, part)) in rows.enumerated() {
            table.add([name] + zip(ranks, estimates).flatMap { rank, e in
                [MemoryEstimate.format(part(e)), MemoryEstimate.format(Double(all[rank * mine.count + i]))]
            })
        }
        table.add(["communication buffers"] + estimates.flatMap { [MemoryEstimate.format($0.communication), "not measured"] })
        out("""

            Memory per rank, \(FourDLayout.name(g)): MemoryEstimate beside what ranks 0 and \(world.size - 1) allocated
            \(table.render(indent: 2))
            """)
    }
}
