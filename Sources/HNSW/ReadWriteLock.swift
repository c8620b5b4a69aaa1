import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// A writer-preferring reader-writer lock for callers that guard side tables next to an index.
// @safe: owns its lock word (allocated in init, freed in deinit) and lends it to nobody.
@safe package final class ReadWriteLock: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): a pthread rwlock, made for sharing between threads.
    private let lock = unsafe hs_rwlock_create()

    package init() {}
    deinit { unsafe hs_rwlock_destroy(lock) }

    package func read<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        unsafe hs_rwlock_read_lock(lock)
        defer { unsafe hs_rwlock_read_unlock(lock) }
        return try body()
    }

    package func write<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        unsafe hs_rwlock_write_lock(lock)
        defer { unsafe hs_rwlock_write_unlock(lock) }
        return try body()
    }
}

/// A value guarded by a pthread mutex. Used instead of `Synchronization.Mutex` inside the index because
/// ThreadSanitizer intercepts pthread mutexes but does not see the prebuilt Mutex's futex handoff, and
/// reported its hand-over of the search-context pool as a race (a false positive, but it hid real ones).
// @safe: owns its lock word and value; the value is reached only under the lock.
@safe package final class Locked<Value>: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): `value` is only touched between lock and unlock.
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init(_ value: Value) {
        self.value = value
        unsafe mutex = .allocate(capacity: 1)
        unsafe pthread_mutex_init(mutex, nil)
    }

    deinit {
        unsafe pthread_mutex_destroy(mutex)
        unsafe mutex.deallocate()
    }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        unsafe pthread_mutex_lock(mutex)
        defer { unsafe pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
