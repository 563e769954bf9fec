// swift-tools-version: 6.1
// Picotron.swift: learn 4D-parallel pre-training of Llama-like models in Swift, on a CPU.
import PackageDescription

let package = Package(
    name: "Picotron",
    products: [
        .executable(name: "picotron", targets: ["picotron"]),
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
        .target(name: "Llama", dependencies: ["TensorCore"]),
        // The default training corpus (data/shakespeare.txt, see data/README.md), shipped as a resource.
        .target(name: "EmbeddedCorpus", path: "data", exclude: ["README.md"], resources: [.copy("shakespeare.txt")]),
        .target(name: "Training", dependencies: ["TensorCore", "Llama", "EmbeddedCorpus"]),

        .executableTarget(
            name: "picotron",
            dependencies: [
                "TensorCore", "Distributed", "Llama", "Training",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        .testTarget(
            name: "LlamaTests", dependencies: ["Llama", "Training", "TensorCore"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Llama", "TensorCore"]),
    ],
    swiftLanguageModes: [.v5]
)
