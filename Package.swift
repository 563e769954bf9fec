// swift-tools-version: 6.1
// Picotron.swift: learn 4D-parallel pre-training of Llama-like models in Swift, on a CPU.
import PackageDescription

// The exercise track: `PICOTRON_TRACK=exercises` builds each Step module from exercises/ (the
// student's TODOs) instead of solutions/. Give that build its own scratch path
// (`--scratch-path .build-exercises`) so switching tracks never rebuilds the other.
let track = Context.environment["PICOTRON_TRACK"] == "exercises" ? "exercises" : "solutions"

/// A lesson's module, built from the chosen track.
func step(_ name: String, _ extra: [Target.Dependency] = []) -> Target {
    .target(name: name, dependencies: ["TensorCore", "Distributed", "Llama", "Training", "LessonKit"] + extra,
            path: "\(track)/\(name)")
}

/// A lesson's executable (`swift run lesson-dp`).
func lesson(_ name: String, _ steps: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: steps + ["TensorCore", "Distributed", "Llama", "Training", "LessonKit",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
        path: "Sources/\(name)")
}

let package = Package(
    name: "Picotron",
    products: [
        .executable(name: "picotron", targets: ["picotron"]),
        .executable(name: "lesson-dp", targets: ["lesson-dp"]),
        .executable(name: "lesson-tp", targets: ["lesson-tp"]),
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

        // What every lesson shares: the reference problem, comparisons, the TODO marker.
        .target(name: "LessonKit", dependencies: ["TensorCore", "Distributed", "Llama", "Training"]),

        // The lessons, one module per parallel dimension.
        step("Step1_DataParallel"),
        step("Step2_TensorParallel"),
        lesson("lesson-dp", ["Step1_DataParallel"]),
        lesson("lesson-tp", ["Step2_TensorParallel", "Step1_DataParallel"]),

        .executableTarget(
            name: "picotron",
            dependencies: [
                "TensorCore", "Distributed", "Formats", "Llama", "Training",
                "Step1_DataParallel", "Step2_TensorParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        // Runs the built `picotron` as a user would (it depends on it so that it is built first).
        .testTarget(name: "CLITests", dependencies: ["picotron"]),
        .testTarget(name: "Step1_DataParallelTests",
                    dependencies: ["Step1_DataParallel", "LessonKit", "TensorCore", "Distributed", "Llama", "Training"]),
        .testTarget(name: "Step2_TensorParallelTests",
                    dependencies: ["Step2_TensorParallel", "LessonKit", "TensorCore", "Distributed", "Llama", "Training"]),
        .testTarget(
            name: "LlamaTests", dependencies: ["Llama", "Formats", "Training", "TensorCore"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Formats", "Llama", "TensorCore"]),
    ],
    swiftLanguageModes: [.v5]
)
