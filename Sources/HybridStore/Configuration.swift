import CoreMetrics
import Logging

/// How a store opens and behaves. The defaults suit a service; tests lower the checkpoint interval.
public struct Configuration: Sendable {
    /// `PRAGMA synchronous = FULL` (an fsync per commit: committed data survives power loss). With false,
    /// NORMAL: a commit survives a process crash but the last ones may be lost on power loss.
    public var synchronousCommits = true
    /// Start a background checkpoint once this many changes were committed since the last one; 0 = never.
    public var checkpointEveryChanges = 100_000
    /// Threads for building the index from large batches and rebuilds; nil = all cores.
    public var buildThreads: Int? = nil
    /// Threads that read one query's cold blocks (a plan of 8 blocks or more is split between them; each
    /// has its own reader connection and its own k-th best, so each stops later than one reader would);
    /// nil or 1 (or less) keeps a query on its calling thread. Since blocks are opened in order of their
    /// rows' code bounds, one reader does less work and answers sooner (Benchmarks/README.md, "Measurements
    /// behind constants").
    public var coldReadThreads: Int? = nil
    /// Tenant usage flows (rows written and deleted, queries, vectors scored) are kept per bucket of this
    /// many seconds (aligned to the Unix epoch), so `usage(since:)` resolves to a bucket.
    public var usageBucketSeconds: Int64 = 3600
    /// Query counters are accumulated in memory and flushed to the database at most this many seconds
    /// apart (and on `checkpoint()` and `close()`); a crash loses at most that interval's query counts.
    public var usageFlushSeconds: Double = 1
    /// One graph query in this many is checked against an exact scan on the background queue, and the
    /// recall measured calibrates the planner's effort for the collection's data (`RecallCalibration`); 0
    /// turns calibration off.
    public var recallSampleEvery = 32
    /// At a checkpoint, measure the recall curves of each collection whose index has none, or whose rows
    /// changed by a fifth since (`BuildCalibration`; ~100 queries a bucket, exact answers by scan), so the
    /// planner meets the recall target from the first query of a fresh process. False: the static effort
    /// model until online checks have learned the collection.
    public var calibrateAtCheckpoint = true
    /// At most this many such checks per second (one at a time).
    public var recallChecksPerSecond = 20.0
    /// And at most this share of one core for them: a check is an exact scan of its matches (all rows when
    /// unfiltered) and the graph search again at seven efforts, ~20 ms at 200,000 × 128 and ten times that at
    /// 2,000,000, so after one that took t the next waits t × (1 / share − 1). (At 20 a second alone they took a
    /// third of a core under load at 200,000 rows.) 1: only one at a time and the rate above.
    public var recallCheckCPUShare = 0.05
    /// Threads that run the async API's reads (`search`, `query`, `get`, `count` with `await`); nil = the
    /// machine's cores, at least 2. Writes, `tier` and `checkpoint` run on one writer thread of their own.
    public var readerThreads: Int? = nil
    /// Where the store logs (swift-log): slow queries with their plan, recoveries and rebuilds, checkpoints.
    /// nil (the default) logs nothing and costs nothing.
    public var logger: Logger? = nil
    /// A query that takes at least this long is logged at `warning` with its plan (when `logger` is set).
    public var slowQueryMilliseconds: Double = 250
    /// Where the store reports metrics (swift-metrics): queries by plan and their latency, cancelled calls,
    /// and at open and each checkpoint rows, RAM by tier and the calibrated effort (see `StoreObserver` for the
    /// names). `MetricsSystem.factory` for the process's bootstrapped backend. nil (the default): no metric
    /// object is made or touched.
    public var metrics: (any MetricsFactory)? = nil
    /// Called while opening, as each collection's index is loaded, replayed or rebuilt.
    public var recoveryProgress: (@Sendable (RecoveryProgress) -> Void)? = nil

    public init() {}
}

/// How a store is opened.
public enum AccessMode: Sendable, Equatable {
    /// One writer process: an exclusive lock on `LOCK`; reads and writes.
    case readWrite
    /// Any number of reader processes and no writer: a shared lock on `LOCK` (none when the directory has no
    /// `LOCK` and cannot be written, as on a read-only mount). Every write throws `readOnly`; no file is
    /// created, changed or removed (the index is built in memory when no snapshot is usable, and tenant
    /// query counts are not persisted).
    case readOnly
}

/// Progress of opening a collection.
public struct RecoveryProgress: Sendable, Equatable {
    public enum Phase: String, Sendable {
        /// Loaded the snapshot; `done`/`total` count the log entries replayed after it.
        case replaying
        /// No usable snapshot; `done`/`total` count rows inserted into a fresh index.
        case rebuilding
        /// The collection is ready.
        case ready
    }
    public var collection: String
    public var phase: Phase
    public var done: Int
    public var total: Int
    /// Why the snapshot was not used, when rebuilding.
    public var reason: String?
}
