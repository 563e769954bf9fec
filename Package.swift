// swift-tools-version: 6.1
// Picotron.swift: learn 4D-parallel pre-training of Llama-like models in Swift, on a CPU.
import PackageDescription

// The exercise track: `PICOTRON_TRACK=exercises` builds each Step module from exercises/ (the
// student's TODOs) instead of solutions/. Give that build its own scratch path
// (`--scratch-path .build-exercises`) so switching tracks never rebuilds the other.
// The mutant track (`PICOTRON_TRACK=mutants`, scratch path `.build-mutants`) builds them from
// mutants/, which `swift run generate-exercises --mutants` writes: the solutions with every
// plausible bug of Tests/Mutants/ compiled in behind a switch (scripts/mutation-test.sh).
let track: String = ["exercises", "mutants"].first { $0 == Context.environment["PICOTRON_TRACK"] } ?? "solutions"

/// A Step module: the algorithm of one parallel dimension, built from the chosen track. It sees
/// the core and the TODO marker only: never another Step, never the lesson harness.
func step(_ name: String) -> Target {
    .target(name: name, dependencies: ["TensorCore", "Distributed", "Llama", "Training", "ExerciseKit"],
            path: "\(track)/\(name)")
}

/// A lesson's harness (`Sources/StepNLesson`): what prints, measures and verifies the Step
/// module's algorithm. The lesson executable and the Step's tests use it; `picotron` does not.
func harness(_ name: String, _ step: Target.Dependency) -> Target {
    .target(name: name, dependencies: [step, "LessonKit", "ExerciseKit", "TensorCore", "Distributed", "Llama", "Training"])
}

/// A lesson's executable (`swift run lesson-dp`).
func lesson(_ name: String, _ harness: Target.Dependency, _ step: Target.Dependency) -> Target {
    .executableTarget(
        name: name,
        dependencies: [harness, step, "TensorCore", "Distributed",
                       .product(name: "ArgumentParser", package: "swift-argument-parser")],
        path: "Sources/\(name)")
}

/// A Step's tests: the algorithm against the single-process reference, in the shared vocabulary.
func stepTests(_ name: String, _ step: Target.Dependency, _ harness: Target.Dependency) -> Target {
    .testTarget(name: name, dependencies: [step, harness, "LessonTesting", "LessonKit", "ExerciseKit",
                                           "TensorCore", "Distributed", "Llama", "Training"])
}

let package = Package(
    name: "Picotron",
    products: [
        .executable(name: "picotron", targets: ["picotron"]),
        .executable(name: "lesson-dp", targets: ["lesson-dp"]),
        .executable(name: "lesson-tp", targets: ["lesson-tp"]),
        .executable(name: "lesson-pp", targets: ["lesson-pp"]),
        .executable(name: "lesson-cp", targets: ["lesson-cp"]),
        .executable(name: "lesson-4d", targets: ["lesson-4d"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries, found by pkg-config. Their headers add tiny shims where macros do not import.
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // The core, bottom to top.
        .target(name: "TensorCore", dependencies: ["COpenBLAS"]),
        .target(name: "Distributed", dependencies: ["CMPI", "COpenBLAS"]),
        // File formats (JSON, safetensors, writing a user-named file): Foundation only, no tensors.
        .target(name: "Formats"),
        .target(name: "Llama", dependencies: ["TensorCore", "Formats"]),
        // The default training corpus (data/shakespeare.txt, see data/README.md), shipped as a resource.
        .target(name: "EmbeddedCorpus", path: "data", exclude: ["README.md"], resources: [.copy("shakespeare.txt")]),
        .target(name: "Training", dependencies: ["TensorCore", "Formats", "Llama", "Distributed", "EmbeddedCorpus"]),

        // The exercise track's TODO marker: all a Step module needs from the lessons.
        .target(name: "ExerciseKit"),
        // What every lesson's harness shares: the reference problem, comparisons, tables, timelines.
        .target(name: "LessonKit", dependencies: ["ExerciseKit", "TensorCore", "Distributed", "Llama", "Training"]),
        // What every Step's tests share: ranks, comparisons with the reference, TODO failures.
        .target(name: "LessonTesting", dependencies: ["LessonKit", "ExerciseKit", "Distributed", "TensorCore"]),
        // Writes exercises/ from the task markers in solutions/ (`swift run generate-exercises`).
        .executableTarget(name: "generate-exercises"),

        // The lessons: one module per parallel dimension, its harness, its executable.
        step("Step1_DataParallel"),
        step("Step2_TensorParallel"),
        step("Step3_PipelineParallel"),
        step("Step4_ContextParallel"),
        harness("Step1Lesson", "Step1_DataParallel"),
        harness("Step2Lesson", "Step2_TensorParallel"),
        harness("Step3Lesson", "Step3_PipelineParallel"),
        harness("Step4Lesson", "Step4_ContextParallel"),
        lesson("lesson-dp", "Step1Lesson", "Step1_DataParallel"),
        lesson("lesson-tp", "Step2Lesson", "Step2_TensorParallel"),
        lesson("lesson-pp", "Step3Lesson", "Step3_PipelineParallel"),
        lesson("lesson-cp", "Step4Lesson", "Step4_ContextParallel"),

        // The four Step modules put together, in picotron's order: what `picotron train` runs on any
        // grid, and what lesson 5 measures (no new algorithm, so no Step5 module and no exercise).
        .target(name: "Parallelism4D",
                dependencies: ["TensorCore", "Distributed", "Llama", "Training", "Step1_DataParallel",
                               "Step2_TensorParallel", "Step3_PipelineParallel", "Step4_ContextParallel"]),
        .target(name: "Step5Lesson", dependencies: ["Parallelism4D", "Step2_TensorParallel", "Step3_PipelineParallel",
                                                    "LessonKit", "TensorCore", "Distributed", "Llama", "Training"]),
        lesson("lesson-4d", "Step5Lesson", "Parallelism4D"),

        .executableTarget(
            name: "picotron",
            dependencies: [
                "TensorCore", "Distributed", "Formats", "Llama", "Training", "Parallelism4D",
                "Step1_DataParallel", "Step2_TensorParallel", "Step3_PipelineParallel", "Step4_ContextParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        // Runs the built `picotron` as a user would (it depends on it so that it is built first).
        .testTarget(name: "CLITests", dependencies: ["picotron"]),
        stepTests("Step1_DataParallelTests", "Step1_DataParallel", "Step1Lesson"),
        stepTests("Step2_TensorParallelTests", "Step2_TensorParallel", "Step2Lesson"),
        .testTarget(name: "Step3_PipelineParallelTests",
                    dependencies: ["Step3_PipelineParallel", "Step3Lesson", "LessonTesting", "LessonKit",
                                   "ExerciseKit", "TensorCore", "Distributed", "Llama", "Training"]),
        .testTarget(name: "Step4_ContextParallelTests",
                    dependencies: ["Step4_ContextParallel", "Step4Lesson", "LessonTesting", "LessonKit", "ExerciseKit",
                                   "TensorCore", "Distributed", "Llama", "Training"]),
        // Lesson 5 composes the four Steps: its tests check the grid's layout and run its verification.
        .testTarget(name: "Step5LessonTests", dependencies: ["Step5Lesson", "Parallelism4D", "LessonTesting", "LessonKit",
                                                            "Distributed", "Training"]),
        .testTarget(
            name: "LlamaTests", dependencies: ["Llama", "Formats", "Training", "TensorCore"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Formats", "Llama", "TensorCore"]),
    ],
    swiftLanguageModes: [.v5]
)
