import CKernels

/// Flags of a node slot, stored as one byte per slot.
enum NodeState: UInt8 {
    /// In the graph and returned by searches.
    case live = 0
    /// Marked deleted: never returned, still traversed until the next repair unlinks it.
    case deleted = 1
    /// Unlinked by a repair; the slot waits on the free list for reuse.
    case free = 2
    /// Linked (or being linked) by `insert(…, pending: true)`: traversed, a neighbour for later inserts, never
    /// returned by a search and not known by its label until `activate` makes it live. A writer links a
    /// transaction's vectors so before it makes them visible, which keeps the visible step short.
    /// (Bit 2, so "live or pending" is `state & 0b11 == 0`.)
    case pending = 4

    /// Live or pending: a node of the graph that a repair keeps and links may lead to.
    var isInGraph: Bool { self == .live || self == .pending }
}

/// The raw memory of an index: vectors, links and per-node metadata in contiguous blocks, as in hnswlib.
///
/// Invariants (checked by `HNSWIndex.checkInvariants`):
/// 1. `vectors` holds `capacity × dimensions` floats; slot `n` starts at `n × dimensions`.
/// 2. `links0` holds `capacity × level0Stride` words; word 0 of a slot is its neighbour count (≤ `maxLinks0`).
/// 3. With codes, slot `n`'s int8 codes start at `n × codeStride` (a whole number of cache lines) and
///    `codeScales[n]` is their scale and `codeErrors[n]` the L2 norm of the vector minus its decoded codes
///    (a bound for exact scans), all written by `encode`.
/// 4. `upperLinks[n]` is nil when `levels[n] == 0`, else `levels[n] × upperStride` words, level `l` at
///    `(l - 1) × upperStride`.
///
/// Memory is lent only through the index, never stored outside it. Growth happens under the index's
/// write lock; every other access holds its read lock.
// @safe: owns its allocations; its accessors bound nodes by the capacity (checked in debug builds), and the
// pointers they return are used by the index under its lock.
@safe final class NodeStorage {
    let dimensions: Int
    let maxLinks0: Int
    let maxLinksUpper: Int
    var level0Stride: Int { maxLinks0 + 1 }
    var upperStride: Int { maxLinksUpper + 1 }
    private(set) var capacity: Int
    /// Bytes between two nodes' codes: `dimensions` rounded up to 64, or 0 when the storage keeps no codes.
    let codeStride: Int

    private var vectors: UnsafeMutablePointer<Float>
    private var links0: UnsafeMutablePointer<UInt32>
    private var upperLinks: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>
    private var labels: UnsafeMutablePointer<UInt64>
    private var levels: UnsafeMutablePointer<UInt8>
    private var states: UnsafeMutablePointer<UInt8>
    private var locks: UnsafeMutablePointer<UInt8>
    private var codes: UnsafeMutablePointer<Int8>
    private var codeScales: UnsafeMutablePointer<Float>
    private var codeErrors: UnsafeMutablePointer<Float>

    /// - Parameter codes: keep int8 codes beside the vectors.
    init(dimensions: Int, connectivity: Int, capacity: Int, codes: Bool = false) {
        self.dimensions = dimensions
        self.codeStride = codes ? (dimensions + 63) / 64 * 64 : 0
        self.maxLinks0 = connectivity * 2
        self.maxLinksUpper = connectivity
        let capacity = max(capacity, 16)
        self.capacity = capacity
        unsafe vectors = unsafe Self.allocate(Float.self, capacity * dimensions)
        unsafe links0 = unsafe Self.allocate(UInt32.self, capacity * (connectivity * 2 + 1))
        unsafe upperLinks = unsafe Self.allocate(UnsafeMutablePointer<UInt32>?.self, capacity)
        unsafe labels = unsafe Self.allocate(UInt64.self, capacity)
        unsafe levels = unsafe Self.allocate(UInt8.self, capacity)
        unsafe states = unsafe Self.allocate(UInt8.self, capacity)
        unsafe locks = unsafe Self.allocate(UInt8.self, capacity)
        unsafe self.codes = unsafe Self.allocate(Int8.self, capacity * codeStride)
        unsafe codeScales = unsafe Self.allocate(Float.self, codeStride == 0 ? 0 : capacity)
        unsafe codeErrors = unsafe Self.allocate(Float.self, codeStride == 0 ? 0 : capacity)
        unsafe upperLinks.initialize(repeating: nil, count: capacity)
        unsafe locks.initialize(repeating: 0, count: capacity)
        unsafe states.initialize(repeating: NodeState.free.rawValue, count: capacity)
        unsafe levels.initialize(repeating: 0, count: capacity)
        unsafe links0.initialize(repeating: 0, count: capacity * level0Stride)
    }

    deinit {
        for n in 0..<capacity { unsafe upperLinks[n]?.deallocate() }
        unsafe vectors.deallocate(); unsafe links0.deallocate(); unsafe upperLinks.deallocate();
        unsafe labels.deallocate()
        unsafe levels.deallocate(); unsafe states.deallocate(); unsafe locks.deallocate(); unsafe codes.deallocate();
        unsafe codeScales.deallocate()
        unsafe codeErrors.deallocate()
    }

    /// 64-byte aligned, uninitialised (trivial types only).
    private static func allocate<T>(_ type: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<T>.stride, alignment: 64)
        return unsafe raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// Grows every block to `newCapacity` slots, keeping contents. Caller holds the index's write lock.
    /// - Complexity: O(capacity × (dimensions + links)).
    func grow(to newCapacity: Int) {
        guard newCapacity > capacity else { return }
        func moved<T>(_ old: UnsafeMutablePointer<T>, _ oldCount: Int, _ newCount: Int) -> UnsafeMutablePointer<T> {
            let fresh = unsafe Self.allocate(T.self, newCount)
            // SAFETY: both blocks hold at least oldCount elements of a trivial type.
            unsafe fresh.update(from: old, count: oldCount)
            unsafe old.deallocate()
            return unsafe fresh
        }
        let old = capacity
        unsafe vectors = unsafe moved(vectors, old * dimensions, newCapacity * dimensions)
        unsafe links0 = unsafe moved(links0, old * level0Stride, newCapacity * level0Stride)
        unsafe upperLinks = unsafe moved(upperLinks, old, newCapacity)
        unsafe labels = unsafe moved(labels, old, newCapacity)
        unsafe levels = unsafe moved(levels, old, newCapacity)
        unsafe states = unsafe moved(states, old, newCapacity)
        unsafe locks = unsafe moved(locks, old, newCapacity)
        if codeStride > 0 {
            unsafe codes = unsafe moved(codes, old * codeStride, newCapacity * codeStride)
            unsafe codeScales = unsafe moved(codeScales, old, newCapacity)
            unsafe codeErrors = unsafe moved(codeErrors, old, newCapacity)
        }
        unsafe (upperLinks + old).initialize(repeating: nil, count: newCapacity - old)
        unsafe (locks + old).initialize(repeating: 0, count: newCapacity - old)
        unsafe (states + old).initialize(repeating: NodeState.free.rawValue, count: newCapacity - old)
        unsafe (levels + old).initialize(repeating: 0, count: newCapacity - old)
        unsafe (links0 + old * level0Stride).initialize(repeating: 0, count: (newCapacity - old) * level0Stride)
        capacity = newCapacity
    }

    // MARK: - Accessors (the blocks themselves are private; every read and write goes through these)

    /// The start of the vector block, for distance types that index it per node inside one locked search.
    /// Valid until the next `grow`, which needs the write lock the caller's read lock excludes.
    @unsafe @inline(__always) var vectorBlock: UnsafeMutablePointer<Float> { unsafe vectors }

    /// The start of the code block (`codeStride` bytes a node); valid as `vectorBlock` is.
    @unsafe @inline(__always) var codeBlock: UnsafeMutablePointer<Int8> { unsafe codes }

    /// The start of the code scales (one float a node); valid as `vectorBlock` is.
    @unsafe @inline(__always) var codeScaleBlock: UnsafeMutablePointer<Float> { unsafe codeScales }

    /// The label stored in a slot.
    @inline(__always) func label(_ node: UInt32) -> UInt64 { unsafe labels[Int(node)] }

    /// Sets the label of a slot being placed. Caller holds the node's lock; the node is not yet live.
    @inline(__always) func setLabel(_ node: UInt32, _ label: UInt64) { unsafe labels[Int(node)] = label }

    /// The top level of a slot's node.
    @inline(__always) func level(_ node: UInt32) -> Int { unsafe Int(levels[Int(node)]) }

    /// The L2 norm of a node's vector minus its decoded codes (an error bound for exact scans).
    /// - Precondition: the storage keeps codes.
    @inline(__always) func codeError(_ node: UInt32) -> Float { unsafe codeErrors[Int(node)] }

    /// Requests a node's code error into cache (a hint; no effect on results).
    @inline(__always) func prefetchCodeError(_ node: UInt32) { unsafe hs_prefetch(codeErrors + Int(node)) }

    /// The state mask under which a search admits a node as a result (`state & mask == 0`): live nodes only, or,
    /// for linking, pending nodes too.
    @inline(__always) static func admissionMask(pending: Bool) -> UInt8 { pending ? 0b011 : 0xFF }

    /// The start of the state bytes (one a node, read with acquire loads: a writer's release store of `.live`
    /// publishes the node); valid as `vectorBlock` is.
    @unsafe @inline(__always) var stateBlock: UnsafeMutablePointer<UInt8> { unsafe states }

    /// A slot's state byte as stored, for checking a loaded snapshot (which may hold bytes no `NodeState` has).
    func rawState(_ node: Int) -> UInt8 { unsafe states[node] }

    /// The per-slot blocks a snapshot writes and reads whole, slot 0 first.
    enum Block { case labels, levels, states, vectors, links0 }

    private func bytes(of block: Block, slots: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slots <= capacity, "\(slots) slots of \(capacity)")
        switch block {
        case .labels: return unsafe UnsafeMutableRawBufferPointer(start: labels, count: slots * 8)
        case .levels: return unsafe UnsafeMutableRawBufferPointer(start: levels, count: slots)
        case .states: return unsafe UnsafeMutableRawBufferPointer(start: states, count: slots)
        case .vectors: return unsafe UnsafeMutableRawBufferPointer(start: vectors, count: slots * dimensions * 4)
        case .links0: return unsafe UnsafeMutableRawBufferPointer(start: links0, count: slots * level0Stride * 4)
        }
    }

    /// Lends the first `slots` slots of a block as bytes, for writing a snapshot. Caller holds the read lock.
    func withBytes<R, E: Error>(
        of block: Block, slots: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try unsafe body(UnsafeRawBufferPointer(bytes(of: block, slots: slots)))
    }

    /// Lends the first `slots` slots of a block as writable bytes, for loading a snapshot into a storage no other
    /// thread sees yet.
    func withMutableBytes<R, E: Error>(
        of block: Block, slots: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try unsafe body(bytes(of: block, slots: slots))
    }

    /// Lends a node's upper-level links (`level(node) × upperStride` words) as bytes; empty at level 0.
    func withUpperLinkBytes<R, E: Error>(
        of node: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let words = level(UInt32(node)) * upperStride
        return try unsafe body(UnsafeRawBufferPointer(start: words == 0 ? nil : upperLinks[node], count: words * 4))
    }

    /// Allocates a loaded node's upper-level block for its stored level and lends it as writable bytes. The
    /// storage is not yet seen by any other thread.
    func withFreshUpperLinkBytes<R, E: Error>(
        of node: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let words = level(UInt32(node)) * upperStride
        unsafe upperLinks[node]?.deallocate()
        unsafe upperLinks[node] = nil
        guard words > 0 else { return try unsafe body(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
        let block = UnsafeMutablePointer<UInt32>.allocate(capacity: words)
        unsafe block.initialize(repeating: 0, count: words)
        unsafe upperLinks[node] = unsafe block
        return try unsafe body(UnsafeMutableRawBufferPointer(start: block, count: words * 4))
    }

    @inline(__always) func vector(_ node: UInt32) -> UnsafeMutablePointer<Float> {
        unsafe vectors + Int(node) &* dimensions
    }

    /// Whether this storage keeps int8 codes.
    @inline(__always) var hasCodes: Bool { codeStride > 0 }

    @inline(__always) func code(_ node: UInt32) -> UnsafeMutablePointer<Int8> {
        unsafe codes + Int(node) &* codeStride
    }

    /// Writes `node`'s codes and scale from its (already stored) vector. No-op without codes.
    /// Caller holds the index's read lock and `node` is not yet published (or the index is being loaded).
    func encode(_ node: UInt32) {
        guard hasCodes else { return }
        let target = unsafe code(node)
        let v = unsafe vector(node)
        let scale = unsafe encodeInt8(v, count: dimensions, into: target)
        unsafe (target + dimensions).update(repeating: 0, count: codeStride - dimensions)
        var squared: Double = 0
        for i in 0..<dimensions {
            let e = unsafe Double(v[i]) - Double(scale) * Double(target[i])
            squared += e * e
        }
        unsafe codeScales[Int(node)] = scale
        unsafe codeErrors[Int(node)] = Float(squared.squareRoot())
    }

    /// The link list of `node` at `level`: word 0 is the count, then the neighbour ids.
    /// - Precondition: `level <= levels[node]`.
    @inline(__always) func linkList(_ node: UInt32, level: Int) -> UnsafeMutablePointer<UInt32> {
        if level == 0 { return unsafe links0 + Int(node) &* level0Stride }
        // SAFETY: a node with level ≥ 1 has its upper block allocated before it is published.
        return unsafe upperLinks[Int(node)].unsafelyUnwrapped + (level &- 1) &* upperStride
    }

    @inline(__always) func maxLinks(level: Int) -> Int { level == 0 ? maxLinks0 : maxLinksUpper }

    @inline(__always) func state(_ node: UInt32) -> NodeState {
        unsafe NodeState(rawValue: hs_load_acquire_u8(states + Int(node))) ?? .free
    }

    @inline(__always) func setState(_ node: UInt32, _ state: NodeState) {
        unsafe hs_store_release_u8(states + Int(node), state.rawValue)
    }

    /// Prepares `node` for a fresh insert at `level`: clears links and allocates the upper block.
    func resetSlot(_ node: UInt32, level: Int) {
        let n = Int(node)
        unsafe upperLinks[n]?.deallocate()
        unsafe upperLinks[n] = nil
        if level > 0 {
            let block = UnsafeMutablePointer<UInt32>.allocate(capacity: level * upperStride)
            unsafe block.initialize(repeating: 0, count: level * upperStride)
            unsafe upperLinks[n] = unsafe block
        }
        unsafe levels[n] = UInt8(level)
        for i in 0..<level0Stride { unsafe hs_store_release_u32(links0 + n &* level0Stride + i, 0) }
    }

    /// Writes a link list (count last, with release stores so readers see whole ids).
    /// - Precondition: caller holds the node's lock; `neighbours.count <= maxLinks(level)`.
    func writeLinks(_ node: UInt32, level: Int, _ neighbours: UnsafeBufferPointer<UInt32>) {
        let list = unsafe linkList(node, level: level)
        for unsafe(i, id) in unsafe neighbours.enumerated() { unsafe hs_store_release_u32(list + 1 + i, id) }
        unsafe hs_store_release_u32(list, UInt32(neighbours.count))
    }

    @inline(__always) func lock(_ node: UInt32) { unsafe hs_spin_lock(locks + Int(node)) }
    @inline(__always) func unlock(_ node: UInt32) { unsafe hs_spin_unlock(locks + Int(node)) }
}
