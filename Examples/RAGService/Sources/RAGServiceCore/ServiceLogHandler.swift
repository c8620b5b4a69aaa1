import Foundation
import Logging

/// The service's log lines, on standard error: `2026-12-06T01:02:03Z warning rag-service: key=value [module] message`.
///
/// Not swift-log's `StreamLogHandler`: that one renders its metadata to text each time the metadata changes, and
/// Hummingbird gives every request's logger a request id, so it rendered once a request (~1.5 % of a search's CPU
/// under load, in a profile of `hybrid-bench service`) whether or not anything was logged. This one renders at
/// log time only.
public struct ServiceLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit { all.merge(explicit) { _, new in new } }
        let rendered = all.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        let time = Date().formatted(.iso8601)
        FileHandle.standardError.write(Data("\(time) \(level) \(label):\(rendered) [\(source)] \(message)\n".utf8))
    }
}
