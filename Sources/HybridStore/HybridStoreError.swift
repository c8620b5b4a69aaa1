import HNSW
import QueryPlanner

/// The one public error type of HybridStore. Switch on `code`; never match on `message`.
public struct HybridStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure. A struct over a private enum, so codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case dimensionMismatch, nonFiniteVector, unknownColumn, typeMismatch, missingValue, duplicateID
            case unknownCollection, collectionExists, invalidSchema, invalidArgument, invalidFilter
            case corruptFile, newerFormat, storeLocked, sqlite, io, quotaExceeded, notFound
            case unknownTenant, tenantExists, wrongTenant, notAStore, readOnly, cancelled, aborted
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }
        /// A vector's length differs from the collection's dimensions.
        public static let dimensionMismatch = Code(.dimensionMismatch)
        /// A vector holds NaN or an infinity, has a norm whose distances could overflow Float (squared norm
        /// above a quarter of its range), or, under cosine, a zero or subnormal norm.
        public static let nonFiniteVector = Code(.nonFiniteVector)
        /// A column name the collection does not have.
        public static let unknownColumn = Code(.unknownColumn)
        /// A value of the wrong type for its column (or id).
        public static let typeMismatch = Code(.typeMismatch)
        /// A non-null column given no value (or null) on insert.
        public static let missingValue = Code(.missingValue)
        /// `insert` of an id the collection already holds, or the same id twice in one call.
        public static let duplicateID = Code(.duplicateID)
        /// A collection name the store does not have.
        public static let unknownCollection = Code(.unknownCollection)
        /// `createCollection` with a name already in use.
        public static let collectionExists = Code(.collectionExists)
        /// A schema that cannot be created (bad name, dimensions, duplicate columns, …).
        public static let invalidSchema = Code(.invalidSchema)
        /// An argument out of range (k < 1, …).
        public static let invalidArgument = Code(.invalidArgument)
        /// A filter that does not parse or does not fit the schema.
        public static let invalidFilter = Code(.invalidFilter)
        /// A database or sidecar file that is corrupt or not a HybridStore file.
        public static let corruptFile = Code(.corruptFile)
        /// A store written by a newer format version.
        public static let newerFormat = Code(.newerFormat)
        /// The store is open elsewhere (this or another process).
        public static let storeLocked = Code(.storeLocked)
        /// Any other SQLite failure (see `underlying`).
        public static let sqlite = Code(.sqlite)
        /// A file-system failure.
        public static let io = Code(.io)
        /// `update` of an id the collection does not hold.
        public static let notFound = Code(.notFound)
        /// A write that would exceed a tenant's quota (rows or bytes), or a query beyond its query quota.
        public static let quotaExceeded = Code(.quotaExceeded)
        /// A tenant name the store does not have, or a name that cannot be a tenant's.
        public static let unknownTenant = Code(.unknownTenant)
        /// `createTenant` with a name already in use.
        public static let tenantExists = Code(.tenantExists)
        /// A tenant-scoped call that would write another tenant's value, or on a collection without tenants.
        public static let wrongTenant = Code(.wrongTenant)
        /// A directory that holds no store (opened without `create: true`), or a store missing its database.
        public static let notAStore = Code(.notAStore)
        /// A write (or anything that writes a file) on a store opened with `mode: .readOnly`.
        public static let readOnly = Code(.readOnly)
        /// The call's task was cancelled and it stopped between two of its steps (the async API throws
        /// `CancellationError` instead; nothing was written).
        public static let cancelled = Code(.cancelled)
        /// The body given to `write`, `read` or `forEachRow` threw an error of its own, which `underlying`
        /// holds (`write` rolled its transaction back: nothing was written).
        public static let aborted = Code(.aborted)
        public var description: String { value.rawValue }
    }

    public var code: Code
    /// What happened and what to do about it.
    public var message: String
    /// Structured details: collection, column, item, expected, actual, offset, …
    public var context: [String: String]
    public var underlying: (any Error & Sendable)?

    public init(
        _ code: Code, _ message: String, context: [String: String] = [:],
        underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.context = context
        self.underlying = underlying
    }

    public var description: String { message }

    /// What a call that runs a caller's closure throws when the closure threw `error`: the store's own errors
    /// unchanged, any other wrapped as `aborted` with the error in `underlying`.
    init(thrownBy error: any Error, in call: String) {
        if let own = error as? HybridStoreError {
            self = own
        } else {
            self.init(.aborted, "the body of \(call) threw: \(error)", underlying: error)
        }
    }

    init(_ error: SQLiteError, while doing: String) {
        let code: Code = error.isCorrupt ? .corruptFile : .sqlite
        self.init(code, "\(doing): \(error.description)", underlying: error)
    }

    init(_ error: HNSWError, collection: String, item: String? = nil) {
        let code: Code =
            switch error.code {
            case .dimensionMismatch: .dimensionMismatch
            case .nonFiniteVector: .nonFiniteVector
            case .corruptFile, .foreignFile: .corruptFile
            case .newerFormat: .newerFormat
            case .io: .io
            default: .invalidArgument
            }
        var context = ["collection": collection]
        if let item { context["id"] = item }
        self.init(
            code, "collection `\(collection)`" + (item.map { ", id \($0)" } ?? "") + ": \(error.message)",
            context: context, underlying: error)
    }
}

/// Runs SQLite work, turning `SQLiteError` into `HybridStoreError` with a description of the work.
func sqliteWork<R>(_ doing: @autoclosure () -> String, _ body: () throws -> R) throws(HybridStoreError) -> R {
    do {
        return try body()
    } catch let error as HybridStoreError {
        throw error
    } catch let error as SQLiteError {
        throw HybridStoreError(error, while: doing())
    } catch {
        throw HybridStoreError(.sqlite, "\(doing()): \(error)", underlying: nil)
    }
}
