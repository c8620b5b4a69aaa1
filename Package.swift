// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "HybridStore",
    products: [
        .library(name: "HybridStore", targets: ["HybridStore"]),
        .library(name: "HNSW", targets: ["HNSW"]),
        .executable(name: "hybridctl", targets: ["hybridctl"]),
        .executable(name: "hybrid-bench", targets: ["hybrid-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
    ],
    targets: [
        // C kernels compiled with per-function target attributes (AVX2+FMA, AVX-512F) and a CPU check, so a
        // plain `swift build -c release` gets the fast path without any CPU flags. Also CRC32C and the
        // acquire/release helpers the graph uses for lock-free reads.
        .target(name: "CKernels"),
        .target(name: "HNSW", dependencies: ["CKernels"], swiftSettings: [.strictMemorySafety()]),
        // FTS5 auxiliary functions: BM25 under a scope's own corpus statistics (a tenant's scores say nothing of
        // other tenants' rows), and a row's token count from FTS5's size records.
        .target(name: "CTextRank", dependencies: ["CSQLite"]),
        .target(name: "QueryPlanner"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .target(
            name: "HybridStore",
            dependencies: [
                "HNSW", "QueryPlanner", "CSQLite", "CLZ4", "CKernels", "CTextRank",
                .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: [.strictMemorySafety()]),
        .executableTarget(
            name: "hybridctl",
            dependencies: ["HybridStore", "HNSW", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "hybrid-bench",
            dependencies: [
                "HNSW", "QueryPlanner", "HybridStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/hybrid-bench"),
        // What the test targets share (one generator, temporary paths and stores, random vectors and filters).
        .target(name: "TestSupport", dependencies: ["HybridStore", "HNSW", "QueryPlanner"], path: "Tests/Support"),
        .testTarget(name: "HNSWTests", dependencies: ["HNSW", "CKernels", "TestSupport"]),
        .testTarget(name: "QueryPlannerTests", dependencies: ["QueryPlanner", "HNSW", "TestSupport"]),
        .testTarget(name: "hybridctlTests", dependencies: ["hybridctl", "hybridstore-fuzz", "TestSupport"]),
        .testTarget(
            name: "HybridStoreTests",
            dependencies: [
                "HybridStore", "HNSW", "CKernels", "hybridstore-crash-writer", "TestSupport",
                .product(name: "Logging", package: "swift-log"), .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]),
        // Fuzz targets for every reader of outside bytes (Tests/Fuzz/run.sh builds them with libFuzzer; a plain
        // build replays inputs, and the tests replay the committed corpus with it).
        .executableTarget(
            name: "hybridstore-fuzz", dependencies: ["HybridStore", "HNSW", "QueryPlanner"], path: "Tests/Fuzz",
            exclude: ["Corpus", "run.sh"]),
        // A child process for the crash tests: writes acknowledged batches until it is killed.
        .executableTarget(name: "hybridstore-crash-writer", dependencies: ["HybridStore", "HNSW"], path: "Tests/CrashWriter"),
    ],
    swiftLanguageModes: [.v6]
)
