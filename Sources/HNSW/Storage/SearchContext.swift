/// A candidate node with its (internal) distance to the query.
package struct Neighbor: Sendable, Equatable {
    package var distance: Float
    package var node: UInt32
    @inline(__always) package init(distance: Float, node: UInt32) {
        self.distance = distance
        self.node = node
    }
}

/// A binary heap of neighbours over a growable buffer it owns. `nearestFirst` decides the order once.
/// Used only inside one search, by one thread.
// @safe: owns its buffer; every access is bounded by its count.
@safe package struct NeighborHeap {
    package private(set) var base: UnsafeMutablePointer<Neighbor>
    package private(set) var count = 0
    private var capacity: Int
    private let nearestFirst: Bool

    package init(nearestFirst: Bool, capacity: Int = 256) {
        self.nearestFirst = nearestFirst
        self.capacity = capacity
        unsafe base = .allocate(capacity: capacity)
    }

    package func release() { unsafe base.deallocate() }

    @inline(__always) package var isEmpty: Bool { count == 0 }
    @inline(__always) package var top: Neighbor { unsafe base[0] }
    @inline(__always) package mutating func removeAll() { count = 0 }

    @inline(__always) private func before(_ a: Neighbor, _ b: Neighbor) -> Bool {
        nearestFirst ? a.distance < b.distance : a.distance > b.distance
    }

    /// - Complexity: O(log count), amortised.
    @inline(__always) package mutating func push(_ element: Neighbor) {
        if count == capacity { growStorage() }
        var i = count
        count &+= 1
        while i > 0 {
            let parent = (i &- 1) >> 1
            let p = unsafe base[parent]
            if !before(element, p) { break }
            unsafe base[i] = p
            i = parent
        }
        unsafe base[i] = element
    }

    /// - Complexity: O(log count).
    @inline(__always) @discardableResult package mutating func pop() -> Neighbor {
        let result = unsafe base[0]
        count &-= 1
        if count > 0 {
            let last = unsafe base[count]
            var i = 0
            while true {
                let left = 2 &* i &+ 1
                if left >= count { break }
                var child = left
                let right = left &+ 1
                if unsafe right < count && before(base[right], base[left]) { child = right }
                if unsafe !before(base[child], last) { break }
                unsafe base[i] = unsafe base[child]
                i = child
            }
            unsafe base[i] = last
        }
        return result
    }

    private mutating func growStorage() {
        let fresh = UnsafeMutablePointer<Neighbor>.allocate(capacity: capacity * 2)
        unsafe fresh.update(from: base, count: count)
        unsafe base.deallocate()
        unsafe base = unsafe fresh
        capacity *= 2
    }
}

/// Per-search scratch memory: a visited list tagged by epoch (never cleared between searches, as in
/// hnswlib) and the two heaps. Borrowed from the index's pool by one thread at a time.
// @safe: owns its buffers (allocated in init, freed in deinit); indexes are bounded by the capacity.
@safe package final class SearchContext: @unchecked Sendable {
    // SAFETY(@unchecked Sendable): a context is used by one thread at a time: the pool (a Mutex) hands it
    // out and takes it back; it is never shared while borrowed.
    package private(set) var visited: UnsafeMutablePointer<UInt16>
    package private(set) var visitedCapacity: Int
    private var tag: UInt16 = 0
    package var candidates = NeighborHeap(nearestFirst: true)
    package var results = NeighborHeap(nearestFirst: false)
    package var scratch: [Neighbor] = []
    package var scratchIDs: [UInt32] = []
    /// Room for one link list's unvisited nodes (a level-0 list holds at most 2 × 128 + 1 words).
    package let batch = UnsafeMutablePointer<UInt32>.allocate(capacity: 512)
    /// Whether the filter admits `batch[i]` (evaluated while the batch is gathered).
    package let admits = UnsafeMutablePointer<Bool>.allocate(capacity: 512)

    package init(capacity: Int) {
        visitedCapacity = capacity
        unsafe visited = .allocate(capacity: capacity)
        unsafe visited.initialize(repeating: 0, count: capacity)
    }

    deinit {
        unsafe batch.deallocate()
        unsafe admits.deallocate()
        unsafe visited.deallocate()
        candidates.release()
        results.release()
    }

    /// A tag no slot holds yet; clears the list only when the 16-bit epoch wraps.
    package func nextTag(capacity: Int) -> UInt16 {
        if capacity > visitedCapacity {
            unsafe visited.deallocate()
            unsafe visited = .allocate(capacity: capacity)
            unsafe visited.initialize(repeating: 0, count: capacity)
            visitedCapacity = capacity
            tag = 0
        }
        if tag == UInt16.max {
            unsafe visited.update(repeating: 0, count: visitedCapacity)
            tag = 0
        }
        tag &+= 1
        return tag
    }
}
