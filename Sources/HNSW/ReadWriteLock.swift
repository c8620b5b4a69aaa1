import CKernels

/// A writer-preferring reader-writer lock for callers that guard side tables next to an index.
package final class ReadWriteLock: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): a pthread rwlock, made for sharing between threads.
    private let lock = hs_rwlock_create()

    package init() {}
    deinit { hs_rwlock_destroy(lock) }

    package func read<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        hs_rwlock_read_lock(lock)
        defer { hs_rwlock_read_unlock(lock) }
        return try body()
    }

    package func write<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        hs_rwlock_write_lock(lock)
        defer { hs_rwlock_write_unlock(lock) }
        return try body()
    }
}
