// The mutation suite's switch. The mutant track (`PICOTRON_TRACK=mutants`, generated from the
// solutions and the plausible student bugs in Tests/Mutants/) compiles every bug in beside the
// solution's line, each behind `Mutant.on("Step2.8#1")`; one build then serves every mutant, and
// `PICOTRON_MUTANT=Step2.8#1 swift test …` runs the tests against that one bug. The solutions
// and exercises never call it.

import Foundation

public enum Mutant {
    /// The mutant switched on for this process, from `PICOTRON_MUTANT` (nil: the solution).
    public static let active: String? = ProcessInfo.processInfo.environment["PICOTRON_MUTANT"]

    /// Whether the bug `id` is the one switched on.
    @inline(__always)
    public static func on(_ id: String) -> Bool { active == id }
}
