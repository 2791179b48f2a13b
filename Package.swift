// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "herald",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "herald", targets: ["herald"]),
        .library(name: "HeraldProtocol", targets: ["HeraldProtocol"]),
        .library(name: "HeraldCore", targets: ["HeraldCore"]),
        .library(name: "HeraldServer", targets: ["HeraldServer"]),
        .library(name: "HeraldClient", targets: ["HeraldClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["JSON", "YAML"]),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        /// hiredis 0.14 (Debian libhiredis-dev): RESP encoding and reply parsing.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        /// Small pieces with no dependencies: the reconnect backoff, random ids.
        .target(name: "HeraldSupport"),
        /// The wire protocol, shared by the server and the client library: messages, error and
        /// close codes, channel names. Foundation only — a client app links nothing of the server.
        .target(name: "HeraldProtocol", dependencies: ["HeraldSupport"]),
        /// RESP over SwiftNIO with hiredis' encoder and reader; knows nothing of notifications.
        .target(
            name: "RedisBridge",
            dependencies: [
                "CHiredis", "HeraldSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// The Redis broker and the cluster registry.
        .target(
            name: "HeraldRedis",
            dependencies: [
                "HeraldCore", "HeraldProtocol", "HeraldSupport", "RedisBridge",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// The node's rules and state: session and connection state machines, RFC 6455 frame
        /// rules, the Hub, the Broker seam and the in-memory broker, JSON on the publish path. No sockets.
        .target(
            name: "HeraldCore",
            dependencies: [
                "HeraldProtocol", "HeraldSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// The node: Hummingbird REST, plain-NIO WebSocket handlers, configuration, services.
        .target(
            name: "HeraldServer",
            dependencies: [
                "HeraldCore", "HeraldProtocol", "HeraldSupport", "HeraldRedis", "RedisBridge",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        /// A typed, reconnecting WebSocket client for Herald (CLI, load generator, tests).
        .target(
            name: "HeraldClient",
            dependencies: [
                "HeraldProtocol", "HeraldSupport",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// `herald bench`: the load generator (Herald and Nchan protocols), HdrHistogram latencies.
        .target(
            name: "HeraldBench",
            dependencies: [
                "HeraldClient", "HeraldCore", "HeraldProtocol",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        /// Helpers for tests: run a node on port 0, a raw WebSocket test client, waits with timeouts.
        .target(
            name: "HeraldTesting",
            dependencies: [
                "HeraldServer", "HeraldClient", "HeraldCore", "HeraldProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// Fuzz targets (scripts/fuzz): a libFuzzer binary when built with -DFUZZING and
        /// sanitizer coverage; a corpus replayer in a normal build.
        .target(name: "CFuzzDriver"),
        .executableTarget(
            name: "HeraldFuzz",
            dependencies: [
                "CFuzzDriver", "HeraldCore", "HeraldProtocol", "RedisBridge", .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "herald",
            dependencies: [
                "HeraldServer", "HeraldClient", "HeraldBench", "HeraldCore", "HeraldProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "HeraldCoreTests",
            dependencies: [
                "HeraldCore", "HeraldProtocol", "HeraldSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "HeraldRedisTests",
            dependencies: ["HeraldRedis", "HeraldCore", "HeraldProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "HeraldClientTests",
            dependencies: ["HeraldClient", "HeraldTesting", "HeraldServer", "HeraldCore", "HeraldProtocol"]
        ),
        .testTarget(
            name: "HeraldBenchTests",
            dependencies: ["HeraldBench", "HeraldTesting", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "RedisBridgeTests",
            dependencies: [
                "RedisBridge", "HeraldTesting", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: [
                "HeraldServer", "HeraldTesting", "HeraldCore", "HeraldProtocol", "HeraldRedis", "RedisBridge", "HeraldClient",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "HeraldServerTests",
            dependencies: [
                "HeraldServer", "HeraldTesting", "HeraldCore", "HeraldProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
