import Foundation
import Logging
import RAGServiceCore

let usage = """
    usage: rag-service --store DIR --keys FILE [--host 127.0.0.1] [--port 8080] [--max-body-bytes N]
                   [--watch-disconnect-after-ms 250] [--event-loops N] [--log-level info]

    Serves a HybridStore over HTTP: API keys in FILE map to tenants (see Examples/RAGService/README).
    """

/// The options from the command line, or an exit with status 64 and the usage.
func parseOptions(_ arguments: [String]) -> (ServiceOptions, Logger.Level) {
    var arguments = arguments
    func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("rag-service: \(message)\n\(usage)\n".utf8))
        exit(64)
    }
    func value(_ flag: String) -> String {
        guard !arguments.isEmpty else { fail("\(flag) needs a value") }
        return arguments.removeFirst()
    }
    var store: String?
    var keys: String?
    var host = "127.0.0.1"
    var port = 8080
    var maxBody = 16 << 20
    var delay = 0
    var watch = 250
    var eventLoops: Int? = nil
    var level = Logger.Level.info
    while !arguments.isEmpty {
        let flag = arguments.removeFirst()
        switch flag {
        case "--store": store = value(flag)
        case "--keys": keys = value(flag)
        case "--host": host = value(flag)
        case "--port": port = Int(value(flag)) ?? -1
        case "--max-body-bytes": maxBody = Int(value(flag)) ?? -1
        case "--debug-query-delay-ms": delay = Int(value(flag)) ?? -1
        case "--watch-disconnect-after-ms": watch = Int(value(flag)) ?? -1
        case "--event-loops": eventLoops = Int(value(flag)) ?? -1
        case "--log-level": level = Logger.Level(rawValue: value(flag)) ?? .info
        case "-h", "--help": print(usage); exit(0)
        default: fail("unknown argument \(flag)")
        }
    }
    guard let store, let keys else { fail("--store and --keys are required") }
    guard (0...65535).contains(port), maxBody > 0, delay >= 0, watch >= 0, (eventLoops ?? 1) >= 1 else {
        fail("a port, size, delay or thread count out of range")
    }
    var options = ServiceOptions(store: store, keysFile: keys)
    options.host = host
    options.port = port
    options.maxBodyBytes = maxBody
    options.debugQueryDelayMs = delay
    options.watchDisconnectAfter = .milliseconds(watch)
    options.eventLoops = eventLoops
    return (options, level)
}

let (options, level) = parseOptions(Array(CommandLine.arguments.dropFirst()))
var logger = Logger(label: "rag-service") { ServiceLogHandler(label: $0) }
logger.logLevel = level
do {
    try await runService(options, logger: logger)
} catch {
    FileHandle.standardError.write(Data("rag-service: \(error)\n".utf8))
    exit(1)
}
