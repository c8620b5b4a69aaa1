import CKernels
import Synchronization

/// Build parameters of an index. Names follow their meaning; the paper's names are in the docs.
public struct HNSWParameters: Sendable, Equatable, Codable {
    /// Vector length, 1…4096.
    public var dimensions: Int
    public var metric: Metric
    /// Links per node on upper levels ("M" in the paper); level 0 keeps up to twice as many. 2…128.
    public var connectivity: Int
    /// Candidate list size while inserting ("efConstruction"). ≥ 1.
    public var constructionEffort: Int
    /// Seeds the level of each inserted node; with one thread a build is then deterministic.
    public var seed: UInt64

    public init(
        dimensions: Int, metric: Metric = .l2, connectivity: Int = 16, constructionEffort: Int = 200,
        seed: UInt64 = 0x5EED
    ) {
        self.dimensions = dimensions
        self.metric = metric
        self.connectivity = connectivity
        self.constructionEffort = constructionEffort
        self.seed = seed
    }

    package func validate() throws(HNSWError) {
        guard (1...4096).contains(dimensions) else {
            throw HNSWError(.invalidParameter, "dimensions must be 1…4096, got \(dimensions)")
        }
        guard (2...128).contains(connectivity) else {
            throw HNSWError(.invalidParameter, "connectivity (M) must be 2…128, got \(connectivity)")
        }
        guard constructionEffort >= 1 else {
            throw HNSWError(
                .invalidParameter, "constructionEffort (efConstruction) must be ≥ 1, got \(constructionEffort)")
        }
    }
}

/// One search result: the caller's label, the reported distance (see `Metric`), and the internal node id.
public struct IndexHit: Sendable, Equatable {
    public var label: UInt64
    public var distance: Float
    public var node: UInt32
}

/// What a search cost.
public struct SearchStats: Sendable, Equatable {
    /// Distance kernel calls.
    public var distanceComputations = 0
    /// Nodes marked visited (each at most once per search).
    public var visitedNodes = 0
    /// The search stopped at its distance budget before converging (its hits are incomplete).
    public var exhausted = false
    public init() {}
}

/// Hits nearest first, plus the search's cost.
public struct IndexSearchResult: Sendable {
    public var hits: [IndexHit]
    public var stats: SearchStats
    public init(hits: [IndexHit], stats: SearchStats) {
        self.hits = hits
        self.stats = stats
    }
}

/// A hierarchical navigable small world graph (Malkov & Yashunin, 2018) over float32 vectors.
///
/// Threading: every method may be called from any thread at any time. Searches run concurrently with each
/// other and with inserts and deletes; inserts run concurrently with each other (per-node spin locks, as
/// in hnswlib). Growing the storage, `repair()` and `save(to:)` take an exclusive lock for their duration.
///
/// Ids: callers name vectors by a `UInt64` label; the index keeps dense internal `UInt32` node ids, reported
/// in `IndexHit.node` and used by filters, so that per-node side tables (e.g. a store's filter columns)
/// can be plain arrays.
// @safe: the node storage is reached only through the index's methods, which bound every access by the
// node count and hold the index's lock.
@safe public final class HNSWIndex: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): all mutable state is guarded. `storage` contents: structural changes under
    // `rw` write lock; link lists under per-node spin locks with release stores, read with acquire loads;
    // vectors are written before the node is published through a release store. `bookkeeping`,
    // `contexts` and `entryUpdate` are pthread-mutex protected (`Locked`); `entry` is an Atomic.
    public let parameters: HNSWParameters
    package let kernel: DistanceKernel
    package let codeKernel: CodeKernel
    /// How searches walk the graph (builds always use float32).
    public let traversal: TraversalPrecision
    let storage: NodeStorage
    let rw: OpaquePointer
    let levelMultiplier: Double

    /// Entry point node (low 32 bits) and top level + 1 (high 32 bits); 0 when the graph is empty.
    let entry = Atomic<UInt64>(0)
    // A byte, not Void: a zero-sized value shares its address with the `Locked`'s mutex pointer, and
    // ThreadSanitizer took one thread's inout access of it and another's read of the pointer for a race.
    let entryUpdate = Locked<UInt8>(0)
    /// Shared by inserts while they link, exclusive for `repair`: a repair rewrites link lists beside searches
    /// (which only read them) but not beside inserts (which could put back a link to a node it is about to free).
    let linking = ReadWriteLock()

    struct Bookkeeping {
        var nodeByLabel: [UInt64: UInt32] = [:]
        var freeSlots: [UInt32] = []
        var highWater: UInt32 = 0
        var deletedPending = 0
        var sequence: UInt64 = 0
    }
    let bookkeeping = Locked(Bookkeeping())
    let contexts = Locked<[SearchContext]>([])

    /// Creates an empty index. `capacity` is a hint; the index grows as needed.
    /// - Parameter traversal: `.int8` (default) keeps int8 codes beside the vectors (+¼ of the vector bytes)
    ///   and walks the graph on them, re-scoring the final candidates in float32.
    /// - Throws: `invalidParameter` when a parameter is out of range.
    public init(
        parameters: HNSWParameters, capacity: Int = 1024, kernelLevel: KernelLevel = .best,
        traversal: TraversalPrecision = .int8
    ) throws(HNSWError) {
        try parameters.validate()
        self.parameters = parameters
        self.kernel = DistanceKernel(metric: parameters.metric, level: kernelLevel)
        self.codeKernel = CodeKernel(level: kernelLevel)
        self.traversal = traversal
        self.storage = NodeStorage(
            dimensions: parameters.dimensions, connectivity: parameters.connectivity,
            capacity: capacity, codes: traversal == .int8)
        unsafe self.rw = unsafe hs_rwlock_create()
        self.levelMultiplier = 1 / log(Double(parameters.connectivity))
    }

    deinit { unsafe hs_rwlock_destroy(rw) }

    /// The kernel this index uses for distances.
    public var kernelLevel: KernelLevel { kernel.level }

    /// Live (searchable) vectors. - Complexity: O(1).
    public var count: Int { bookkeeping.withLock { $0.nodeByLabel.count } }

    /// Whether a label is present and live.
    public func contains(label: UInt64) -> Bool { bookkeeping.withLock { $0.nodeByLabel[label] != nil } }

    /// The internal node id of a live label.
    public func node(forLabel label: UInt64) -> UInt32? { bookkeeping.withLock { $0.nodeByLabel[label] } }

    /// One past the largest node id ever handed out: the size a `NodeBitset` over nodes needs.
    public var nodeCapacity: Int { bookkeeping.withLock { Int($0.highWater) } }

    /// Every live label, ascending. - Complexity: O(n log n).
    public func labels() -> [UInt64] { bookkeeping.withLock { Array($0.nodeByLabel.keys) }.sorted() }

    /// The label of a node id, if that node is live.
    public func label(ofNode node: UInt32) -> UInt64? {
        withReadLock {
            guard Int(node) < storage.capacity, storage.state(node) == .live else { return nil }
            return storage.label(node)
        }
    }

    /// A copy of the stored vector of a label (normalised for cosine).
    public func vector(forLabel label: UInt64) -> [Float]? {
        guard let node = node(forLabel: label) else { return nil }
        return withReadLock {
            unsafe Array(UnsafeBufferPointer(start: storage.vector(node), count: parameters.dimensions))
        }
    }

    /// Bytes held in RAM by vectors, int8 codes (with `traversal: .int8`), links and per-node metadata (not the
    /// label dictionary).
    public var memoryBytes: Int {
        withReadLock {
            let s = storage
            var bytes = s.capacity * (s.dimensions * 4 + s.level0Stride * 4 + 8 + 8 + 3)
            if s.hasCodes { bytes += s.capacity * (s.codeStride + 8) }
            for n in 0..<UInt32(s.capacity) { bytes += s.level(n) * s.upperStride * 4 }
            return bytes
        }
    }

    // MARK: - Locks and helpers

    @inline(__always) func withReadLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        unsafe hs_rwlock_read_lock(rw)
        defer { unsafe hs_rwlock_read_unlock(rw) }
        return try body()
    }

    func withWriteLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        unsafe hs_rwlock_write_lock(rw)
        defer { unsafe hs_rwlock_write_unlock(rw) }
        return try body()
    }

    /// Whether `node` is where every search starts (tests hide it to check a walk can start elsewhere).
    package func isEntryPoint(_ node: UInt32) -> Bool { withReadLock { loadEntry()?.node == node } }

    @inline(__always) func loadEntry() -> (node: UInt32, level: Int)? {
        let packed = entry.load(ordering: .acquiring)
        guard packed != 0 else { return nil }
        return (UInt32(truncatingIfNeeded: packed), Int(packed >> 32) - 1)
    }

    func storeEntry(node: UInt32, level: Int) {
        entry.store(UInt64(level + 1) << 32 | UInt64(node), ordering: .releasing)
    }

    func clearEntry() { entry.store(0, ordering: .releasing) }

    func borrowContext() -> SearchContext {
        contexts.withLock { $0.popLast() } ?? SearchContext(capacity: storage.capacity)
    }

    func returnContext(_ context: SearchContext) {
        contexts.withLock { if $0.count < 64 { $0.append(context) } }
    }

    /// Checks a vector's length and `vectorProblem` (finite components, a norm whose distances stay finite).
    func validate(_ vector: UnsafeBufferPointer<Float>, label: UInt64?) throws(HNSWError) {
        guard vector.count == parameters.dimensions else {
            throw HNSWError(
                .dimensionMismatch,
                "expected \(parameters.dimensions) dimensions, got \(vector.count)"
                    + (label.map { " (label \($0))" } ?? ""))
        }
        if let problem = unsafe vectorProblem(vector, metric: parameters.metric) {
            throw HNSWError(.nonFiniteVector, problem.message + (label.map { " (label \($0))" } ?? ""))
        }
    }
}

import Foundation  // log()
