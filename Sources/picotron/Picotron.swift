import ArgumentParser
import TensorCore

/// The `picotron` command: one entry point for training, checking and measuring.
@main
struct Picotron: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "picotron",
        abstract: "Learn 4D-parallel pre-training of Llama-like models on a CPU.",
        subcommands: [Train.self, Plan.self, Generate.self, Reference.self, Bench.self, Selftest.self, CommBench.self, CreateConfig.self,
                      SubmitSlurm.self, ExtractMetrics.self])

    static func main() {
        OpenBLASSetup.restartIfUseful()   // before anything else: it may start the process again
        Self.main(nil)
    }
}

/// A failure found while running (a file, a size, a value in the data), as opposed to a flag the
/// user mistyped: printed as `Error: <message>` without the usage text a `ValidationError` adds.
struct RunError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
