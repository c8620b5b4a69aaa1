/// A byte buffer a decoder keeps between calls: 16-byte aligned, grown (never shrunk) on request, its
/// contents lent only inside a closure. It replaces hand-held `allocate`/`deallocate` pairs in the cold
/// tier's decoder: the allocation, its size and its release live here, once.
// SAFETY: owns its allocation (freed in deinit); `withBytes` lends exactly `count` bytes, and the pointer does
// not outlive the closure. Not shared between threads (its owner is used by one thread at a time).
@safe final class ScratchBytes {
    private var storage: UnsafeMutableRawBufferPointer

    /// Bytes usable now (at least what the last `reserve` asked for).
    var count: Int { unsafe storage.count }

    init(count: Int = 64) {
        unsafe storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
    }

    deinit { unsafe storage.deallocate() }

    /// Makes at least `count` bytes usable. Growing discards the contents (callers reserve before writing).
    func reserve(_ count: Int) {
        guard count > self.count else { return }
        unsafe storage.deallocate()
        unsafe storage = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
    }

    /// Lends the bytes (all `count` of them) for the duration of `body`.
    func withBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try unsafe body(storage)
    }
}
