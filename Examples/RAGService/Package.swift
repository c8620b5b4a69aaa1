// swift-tools-version:6.2
import PackageDescription

// A small RAG retrieval service on Hummingbird that links HybridStore as a library: API keys mapped to tenants,
// batch upserts and filtered (hybrid) search over HTTP, per-tenant usage, Prometheus metrics, and a graceful
// shutdown that checkpoints the store.
let package = Package(
    name: "RAGService",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "rag-service", targets: ["rag-service"])],
    dependencies: [
        .package(name: "HybridStore", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        .target(
            name: "RAGServiceCore",
            dependencies: [
                .product(name: "HybridStore", package: "HybridStore"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(name: "rag-service", dependencies: ["RAGServiceCore"]),
        // End to end: starts the built `rag-service` on a loopback port and drives it over HTTP (URLSession).
        .testTarget(name: "RAGServiceTests", dependencies: ["rag-service", "RAGServiceCore", .product(name: "HybridStore", package: "HybridStore")]),
    ],
    swiftLanguageModes: [.v6]
)
