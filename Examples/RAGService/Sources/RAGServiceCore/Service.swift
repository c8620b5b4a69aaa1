import CoreMetrics
import Foundation
import HTTPTypes
import HybridStore
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// How the service runs (see `rag-service --help`).
public struct ServiceOptions: Sendable {
    public var store: String
    public var keysFile: String
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 16 << 20
    /// Test hook: each search waits this long (cancellably) before it queries, so a test can disconnect
    /// mid-request. 0 in production.
    public var debugQueryDelayMs = 0
    /// A search still running after this long has its connection watched, and is cancelled if the client goes
    /// away. (Watching costs the connection: Hummingbird closes it after the response, so quick searches, the
    /// common case, are not watched and keep their connection alive. At 50 ms, under 64 busy connections on 2
    /// cores with p99 at 47–55 ms, wrk counted errors, most likely searches that crossed it and lost their
    /// connections.)
    public var watchDisconnectAfter: Duration = .milliseconds(250)
    /// Threads running HTTP (NIO event loops); nil: one per core (NIO's shared group).
    public var eventLoops: Int? = nil
    public init(store: String, keysFile: String) {
        self.store = store
        self.keysFile = keysFile
    }
}

/// `keys.json`: API keys and the tenant each one acts as; optional quotas per tenant.
///
/// ```json
/// {"keys": {"k-acme-1": "acme", "k-globex-1": "globex"}, "quotas": {"globex": {"maxRows": 10000}}}
/// ```
///
/// Unknown members are refused, here and in each quota: a misspelt `quotas` or `maxRows` would leave a tenant
/// without the limit its operator set.
public struct KeyFile: Codable, Sendable {
    public var keys: [String: String]
    public var quotas: [String: TenantQuota]?
    public init(keys: [String: String], quotas: [String: TenantQuota]? = nil) {
        self.keys = keys
        self.quotas = quotas
    }

    private enum CodingKeys: String, CodingKey, CaseIterable { case keys, quotas }

    public init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, known: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        keys = try c.decode([String: String].self, forKey: .keys)
        quotas = try c.decodeIfPresent([String: CheckedQuota].self, forKey: .quotas)?.mapValues(\.quota)
    }

    /// Reads and checks the keys file at `path`.
    public static func read(_ path: String) throws -> KeyFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KeyFileError(message: "cannot read the keys file \(path): \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(KeyFile.self, from: data)
        } catch let error as DecodingError {
            throw KeyFileError(message: "the keys file \(path) is not valid: \(describe(error))")
        }
    }
}

/// A keys file that cannot be read or is not valid.
public struct KeyFileError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A quota of the keys file, its members checked.
private struct CheckedQuota: Decodable {
    let quota: TenantQuota
    init(from decoder: any Decoder) throws {
        try refuseUnknownMembers(decoder, known: ["maxRows", "maxBytes", "maxQueries", "queryPeriodSeconds"])
        quota = try TenantQuota(from: decoder)
    }
}

/// Runs the service until SIGINT or SIGTERM, then stops taking requests, lets running ones finish, and
/// checkpoints and closes the store.
public func runService(_ options: ServiceOptions, logger: Logger) async throws {
    let registry = PrometheusCollectorRegistry()
    let metrics = PrometheusMetricsFactory(registry: registry)
    var configuration = Configuration()
    configuration.logger = logger
    configuration.metrics = metrics
    let keys = try KeyFile.read(options.keysFile)  // before the store opens: a bad file changes nothing
    let store = try HybridStore(directory: options.store, configuration: configuration)
    for (tenant, quota) in keys.quotas ?? [:] {
        if (try? store.quota(of: tenant)) == nil {
            try store.createTenant(tenant, quota: quota)
        } else {
            try store.setQuota(quota, for: tenant)
        }
    }
    let api = RetrievalAPI(store: store, keys: keys.keys, options: options, metrics: metrics, registry: registry)
    let router = Router()
    api.register(on: router)
    let group = options.eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
    let app = Application(
        router: router,
        configuration: .init(address: .hostname(options.host, port: options.port), serverName: "rag-service"),
        services: [StoreService(store: store, logger: logger)],
        onServerRunning: { channel in
            // The line a supervisor (or the end-to-end test) reads to learn the port when started with port 0.
            let line = "rag-service listening on \(options.host):\(channel.localAddress?.port ?? options.port)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        },
        eventLoopGroupProvider: group.map { .shared($0) } ?? .singleton,
        logger: logger)
    let ticker = Task { await api.deadlines.run(every: options.watchDisconnectAfter / 2) }
    defer { ticker.cancel() }
    try await app.runService()
    try await group?.shutdownGracefully()
}

/// Owns the store's lifetime in the service group: on graceful shutdown (after the HTTP server, which the
/// group stops first, has drained) it checkpoints, so the next start loads snapshots instead of replaying.
struct StoreService: Service {
    let store: HybridStore
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        do {
            try await store.checkpoint()
            logger.info("store checkpointed on shutdown")
        } catch {
            logger.error("checkpoint on shutdown failed", metadata: ["error": "\(error)"])
        }
        store.close()
    }
}

/// The HTTP API over one store.
struct RetrievalAPI: Sendable {
    let store: HybridStore
    let options: ServiceOptions
    let metrics: PrometheusMetricsFactory
    let registry: PrometheusCollectorRegistry
    let deadlines = Deadlines()
    /// Each API key's tenant scope, made once (a scope is a value naming the tenant; making it checks the name).
    let scopes: [String: Result<TenantScope, HybridStoreError>]
    let requests: RequestCounters

    init(
        store: HybridStore, keys: [String: String], options: ServiceOptions, metrics: PrometheusMetricsFactory,
        registry: PrometheusCollectorRegistry
    ) {
        self.store = store
        self.options = options
        self.metrics = metrics
        self.registry = registry
        scopes = keys.mapValues { tenant in Result { () throws(HybridStoreError) in try store.tenant(tenant) } }
        requests = RequestCounters(factory: metrics)
    }

    func register(on router: Router<BasicRequestContext>) {
        router.put("/v1/collections/:collection/rows") { request, context in
            await respond(route: "upsert") { () async throws(ServiceError) -> UpsertResponse in
                let scope = try tenant(request)
                let collection = try self.collection(context)
                let body: UpsertRequest = try await decode(request)
                return try await upsert(body, into: collection, scope: scope)
            }
        }
        router.post("/v1/collections/:collection/search") { request, context in
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: options.maxBodyBytes)
            } catch {
                return await respond(route: "search") { () async throws(ServiceError) -> SearchResponse in
                    throw bodyTooLarge
                }
            }
            let target: Result<(TenantScope, CollectionRef), ServiceError>
            do throws(ServiceError) {
                target = .success((try tenant(request), try self.collectionHandle(context)))
            } catch {
                target = .failure(error)
            }
            let first = FirstResult<Response?>()
            let work = Task { [self] in
                let response = await respond(route: "search") { () async throws(ServiceError) -> SearchResponse in
                    let (scope, collection) = try target.get()
                    let search = try decodeSearch(body)
                    return try await self.search(search, in: collection, scope: scope)
                }
                first.resume(response)
                return response
            }
            // Most searches answer within a few milliseconds and keep the connection for the client's next request.
            // One ticker wakes the slow ones (a timer per request would cost more than the HTTP work).
            let waiting = deadlines.add(first, at: .now + options.watchDisconnectAfter)
            let quick = await withCheckedContinuation { first.wait($0) }
            deadlines.remove(waiting)
            if let quick { return quick }
            // A slow one: watch the connection, and a client that goes away cancels the search (the store stops
            // between the query's steps). Hummingbird closes a connection it watched once the response is out,
            // which is why fast searches are not watched.
            do {
                return try await request.body.consumeWithCancellationOnInboundClose { _ in
                    await withTaskCancellationHandler {
                        await work.value
                    } onCancel: {
                        work.cancel()
                    }
                }
            } catch {
                work.cancel()
                Counter(label: "rag_searches_cancelled_total", factory: metrics).increment()
                throw error
            }
        }
        router.get("/v1/usage") { request, _ in
            await respond(route: "usage") { () async throws(ServiceError) -> TenantUsage in
                let scope = try tenant(request)
                do { return try await scope.usage() } catch { throw Self.serviceError(error) }
            }
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/health") { _, _ in HTTPResponse.Status.ok }
    }

    // MARK: - Handlers

    func upsert(
        _ body: UpsertRequest, into collection: (handle: CollectionRef, schema: Schema), scope: TenantScope
    )
        async throws(ServiceError) -> UpsertResponse
    {
        var rows: [(RowID, [Float]?, [String: Value])] = []
        for row in body.rows {
            var values: [String: Value] = [:]
            for (name, json) in row.values ?? [:] {
                guard let spec = collection.schema.columns.first(where: { $0.name == name }) else {
                    throw .store(HybridStoreError(.unknownColumn, "no column `\(name)`", context: ["column": name]))
                }
                values[name] = try json.value(for: spec.type, column: name)
            }
            rows.append((row.id.rowID, try decodeVector(array: row.vector, base64: row.vector_base64), values))
        }
        let batch = rows
        let handle = collection.handle
        do {
            try await scope.write { tx in
                for (id, vector, values) in batch { try tx.upsert(id, into: handle, vector: vector, values: values) }
            }
        } catch {
            throw Self.serviceError(error)
        }
        return UpsertResponse(upserted: batch.count)
    }

    func search(
        _ request: SearchRequest, in collection: CollectionRef, scope: TenantScope
    )
        async throws(ServiceError) -> SearchResponse
    {
        let vector = try decodeVector(array: request.vector, base64: request.vector_base64)
        guard vector != nil || request.text != nil else {
            throw .badRequest("a search needs a vector, a text, or both")
        }
        let k = request.k ?? 10
        let explain = request.explain ?? false
        let fusionRule = try fusion(request.fusion)
        if request.fusion != nil && (vector == nil || request.text == nil) {
            throw .badRequest("`fusion` applies to a hybrid search: give both a `text` and a vector")
        }
        do {
            let filter = try request.filter.map { text throws(HybridStoreError) in try store.parseFilter(text) }
            if options.debugQueryDelayMs > 0 { try await Task.sleep(for: .milliseconds(options.debugQueryDelayMs)) }
            if let text = request.text {
                let r = try await scope.retrieve(
                    collection, text: TextQuery(text), near: vector, k: k, where: filter,
                    fusion: fusionRule, returning: request.returning ?? [],
                    explain: explain)
                return SearchResponse(
                    hits: r.hits.map {
                        SearchResponse.Hit(
                            id: JSONRowID($0.id), distance: $0.distance, score: $0.score,
                            values: $0.values.mapValues(JSONValue.init))
                    },
                    explain: explain ? r.explanation.json : nil)
            }
            var options = QueryOptions()
            if let target = request.recall_target { options.recallTarget = target }
            let r = try await scope.query(
                collection, near: vector!, k: k, where: filter, options: options,
                returning: request.returning ?? [], explain: explain)
            return SearchResponse(
                hits: r.hits.map {
                    SearchResponse.Hit(
                        id: JSONRowID($0.id), distance: $0.distance, score: nil,
                        values: $0.values.mapValues(JSONValue.init))
                },
                explain: explain ? r.explanation.json : nil)
        } catch let error as ServiceError {
            throw error
        } catch {
            throw Self.serviceError(error)
        }
    }

    // MARK: - Helpers

    /// The tenant of the request's API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`).
    func tenant(_ request: Request) throws(ServiceError) -> TenantScope {
        var key = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
        if key == nil, let name = HTTPField.Name("X-API-Key") { key = request.headers[name] }
        guard let key else { throw .unauthorized("an API key is required (Authorization: Bearer KEY)") }
        guard let scope = scopes[key] else { throw .unauthorized("unknown API key") }
        do { return try scope.get() } catch { throw .store(error) }
    }

    func collectionHandle(_ context: BasicRequestContext) throws(ServiceError) -> CollectionRef {
        do { return try store.collection(context.parameters.get("collection") ?? "") } catch { throw .store(error) }
    }

    func collection(_ context: BasicRequestContext) throws(ServiceError) -> (handle: CollectionRef, schema: Schema) {
        let name = context.parameters.get("collection") ?? ""
        do throws(HybridStoreError) {
            let handle = try store.collection(name)
            return (handle, try store.schema(of: handle))
        } catch {
            throw .store(error)
        }
    }

    func decode<T: Decodable>(_ request: Request) async throws(ServiceError) -> T {
        try await decode(request.body)
    }

    func decode<T: Decodable>(_ body: RequestBody) async throws(ServiceError) -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: options.maxBodyBytes)
        } catch {
            throw bodyTooLarge
        }
        return try decode(buffer)
    }

    /// A search body, read by `SearchRequestReader` (not `JSONDecoder`: see there why).
    func decodeSearch(_ buffer: ByteBuffer) throws(ServiceError) -> SearchRequest {
        do {
            return try SearchRequestReader.read(Array(buffer.readableBytesView))
        } catch {
            throw .badRequest("the body is not valid JSON for this request: \(error)")
        }
    }

    var bodyTooLarge: ServiceError { .tooLarge("the request body is larger than \(options.maxBodyBytes) bytes") }

    func decode<T: Decodable>(_ buffer: ByteBuffer) throws(ServiceError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw .badRequest("the body is not valid JSON for this request: \(describe(error))")
        } catch {
            throw .badRequest("the body is not valid JSON for this request: \(error)")
        }
    }

    func fusion(_ text: String?) throws(ServiceError) -> Fusion {
        guard let text else { return .standard }
        if text == "rrf" { return .standard }
        if text.hasPrefix("rrf:"), let k = Int(text.dropFirst(4)) { return .reciprocalRank(k: k) }
        if text.hasPrefix("weighted:"), let w = Double(text.dropFirst(9)) { return .weighted(vector: w) }
        throw .badRequest("fusion is rrf, rrf:K or weighted:W")
    }

    static func serviceError(_ error: any Error) -> ServiceError {
        if let e = error as? ServiceError { return e }
        if let e = error as? HybridStoreError { return .store(e) }
        return .store(HybridStoreError(.io, "\(error)"))
    }

    /// Runs a handler, rendering its value or its error as JSON, and counts the request by route and status.
    func respond<T: Encodable>(route: String, _ body: () async throws(ServiceError) -> T) async -> Response {
        let status: HTTPResponse.Status
        let buffer: ByteBuffer
        do {
            let value = try await body()
            status = .ok
            if let writable = value as? any JSONWritable {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(1024)
                writable.writeJSON(into: &bytes)
                buffer = ByteBuffer(bytes: bytes)
            } else {
                buffer = ByteBuffer(bytes: (try? JSONEncoder().encode(value)) ?? Data("{}".utf8))
            }
        } catch {
            status = error.status
            buffer = ByteBuffer(bytes: (try? JSONEncoder().encode(error.body)) ?? Data("{}".utf8))
        }
        requests.increment(route: route, status: status.code)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: buffer))
    }
}

/// `rag_requests_total` by route and status: each pair's counter made once (making one looks it up in the
/// registry by label and dimensions, under its lock, which every request paid before).
final class RequestCounters: Sendable {
    private let factory: PrometheusMetricsFactory
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])

    init(factory: PrometheusMetricsFactory) { self.factory = factory }

    func increment(route: String, status: Int) {
        let key = "\(route) \(status)"
        let counter = counters.withLock { made in
            if let counter = made[key] { return counter }
            let counter = CoreMetrics.Counter(
                label: "rag_requests_total", dimensions: [("route", route), ("status", "\(status)")], factory: factory)
            made[key] = counter
            return counter
        }
        counter.increment()
    }
}

/// Resumes one continuation with the first of several results; later ones are dropped.
final class FirstResult<T: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<T, Never>)
        case early(T)
        case done
    }
    private let state = Mutex<State>(.empty)

    func wait(_ continuation: CheckedContinuation<T, Never>) {
        let early: T? = state.withLock { s in
            guard case .early(let value) = s else {
                s = .waiting(continuation)
                return nil
            }
            s = .done
            return value
        }
        if let early { continuation.resume(returning: early) }
    }

    func resume(_ value: T) {
        let continuation: CheckedContinuation<T, Never>? = state.withLock { s in
            switch s {
            case .empty: s = .early(value); return nil
            case .waiting(let c): s = .done; return c
            case .early, .done: return nil
            }
        }
        continuation?.resume(returning: value)
    }
}

/// Requests waiting for a result until a deadline: one ticker resumes every expired one with nil, so a request that
/// finishes in time pays a dictionary insert and removal instead of a timer.
final class Deadlines: Sendable {
    private struct State {
        var next: UInt64 = 0
        var entries: [UInt64: (deadline: ContinuousClock.Instant, waiter: FirstResult<Response?>)] = [:]
    }
    private let state = Mutex(State())

    func add(_ waiter: FirstResult<Response?>, at deadline: ContinuousClock.Instant) -> UInt64 {
        state.withLock { s in
            s.next += 1
            s.entries[s.next] = (deadline, waiter)
            return s.next
        }
    }

    func remove(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Resumes the waiters whose deadline has passed, every `interval`, until cancelled.
    func run(every interval: Duration) async {
        let interval = max(interval, .milliseconds(1))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = ContinuousClock.now
            let expired = state.withLock { s in
                let due = s.entries.filter { $0.value.deadline <= now }
                for id in due.keys { s.entries[id] = nil }
                return due.values.map(\.waiter)
            }
            for waiter in expired { waiter.resume(nil) }
        }
    }
}
