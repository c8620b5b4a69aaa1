import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Snapshot format, version 1, all integers little-endian:
//
//   offset  size  field
//   0       8     magic "HNSWSNAP"
//   8       4     format version (1)
//   12      4     dimensions
//   16      1     metric code (0 l2, 1 cosine, 2 ip), then 3 zero bytes
//   20      4     connectivity (M)
//   24      4     construction effort (efConstruction)
//   28      4     high water (slots written, n)
//   32      8     seed
//   40      8     insertion sequence
//   48      4     entry node
//   52      4     entry level + 1 (0 = empty graph)
//   56      8     stamp: a number the caller chooses (HybridStore: the change-log sequence covered)
//   64            labels n × u64, levels n × u8, states n × u8, vectors n × dim × f32,
//                 level-0 links n × (2M + 1) × u32, then for each node with level > 0 in id order
//                 level × (M + 1) × u32
//   end − 8 4     CRC-32C of every byte before it
//   end − 4 4     end marker "SNAP"
//
// Loading reads straight into the index's storage while computing the checksum, then checks the checksum
// and the structure (counts, ids in range, states, entry point) before the index is handed out.

private let snapshotMagic: [UInt8] = Array("HNSWSNAP".utf8)
private let endMarker: [UInt8] = Array("SNAP".utf8)
private let snapshotVersion: UInt32 = 1
private let headerSize = 64

extension HNSWIndex {
    /// Writes the index to `path` atomically: a temporary file beside it, fsync, then rename.
    /// Takes the exclusive lock for the duration (searches and inserts wait).
    /// - Throws: `io` when the file cannot be written; the previous file at `path` is then untouched.
    /// - Complexity: O(size of the index); one sequential write.
    public func save(to path: String, stamp: UInt64 = 0) throws(HNSWError) {
        try withWriteLock { () throws(HNSWError) in try saveLocked(to: path, stamp: stamp) }
    }

    private func saveLocked(to path: String, stamp: UInt64) throws(HNSWError) {
        let (highWater, sequence) = bookkeeping.withLock { (Int($0.highWater), $0.sequence) }
        let s = storage
        let temporary = path + ".tmp-\(getpid())"
        var writer = try SnapshotWriter(path: temporary)
        do throws(HNSWError) {
            var header = [UInt8](repeating: 0, count: headerSize)
            header.replaceSubrange(0..<8, with: snapshotMagic)
            header.put(snapshotVersion, at: 8)
            header.put(UInt32(parameters.dimensions), at: 12)
            header[16] = parameters.metric.code
            header.put(UInt32(parameters.connectivity), at: 20)
            header.put(UInt32(parameters.constructionEffort), at: 24)
            header.put(UInt32(highWater), at: 28)
            header.put(parameters.seed, at: 32)
            header.put(sequence, at: 40)
            let entryState = loadEntry()
            header.put(entryState?.node ?? 0, at: 48)
            header.put(UInt32((entryState?.level ?? -1) + 1), at: 52)
            header.put(stamp, at: 56)
            try writer.write(bytes: header)
            for block: NodeStorage.Block in [.labels, .levels, .states, .vectors, .links0] {
                unsafe try s.withBytes(of: block, slots: highWater) { bytes throws(HNSWError) in
                    unsafe try writer.write(bytes)
                }
            }
            for n in 0..<highWater where s.level(UInt32(n)) > 0 {
                unsafe try s.withUpperLinkBytes(of: n) { bytes throws(HNSWError) in unsafe try writer.write(bytes) }
            }
            var trailer = [UInt8](repeating: 0, count: 8)
            trailer.put(writer.crc, at: 0)
            trailer.replaceSubrange(4..<8, with: endMarker)
            try writer.write(bytes: trailer)
            try writer.finish()
        } catch {
            writer.abandon()
            unsafe unlink(temporary)
            throw error
        }
        guard unsafe rename(temporary, path) == 0 else {
            let reason = unsafe String(cString: strerror(errno))
            unsafe unlink(temporary)
            throw HNSWError(.io, "cannot rename snapshot into \(path): \(reason)")
        }
    }

    /// Reads an index written by `save(to:)`.
    /// - Throws: `foreignFile` (not a snapshot), `newerFormat` (written by a newer version), `corruptFile`
    ///   (truncated, checksum mismatch, or inconsistent contents), `io` (cannot open or read).
    /// - Complexity: O(file size); one sequential read, no per-node allocation but upper-level blocks.
    public static func load(
        from path: String, kernelLevel: KernelLevel = .best,
        traversal: TraversalPrecision = .int8
    ) throws(HNSWError) -> HNSWIndex {
        try loadStamped(from: path, kernelLevel: kernelLevel, traversal: traversal).index
    }

    /// As `load(from:)`, also returning the stamp given to `save(to:stamp:)`.
    /// Codes for int8 traversal are not stored: they are computed again from the vectors.
    public static func loadStamped(
        from path: String, kernelLevel: KernelLevel = .best,
        traversal: TraversalPrecision = .int8
    ) throws(HNSWError)
        -> (index: HNSWIndex, stamp: UInt64)
    {
        var reader = try SnapshotReader(path: path)
        defer { reader.close() }
        var header = [UInt8](repeating: 0, count: headerSize)
        let got = try reader.readUpTo(&header)
        guard got >= 8, Array(header[0..<8]) == snapshotMagic else {
            throw HNSWError(.foreignFile, "\(path) is not an HNSW snapshot (bad magic number)")
        }
        guard got == headerSize else { throw HNSWError(.corruptFile, "\(path): snapshot header truncated") }
        reader.crc = unsafe header.withUnsafeBytes { unsafe hs_crc32c(0, $0.baseAddress, $0.count) }
        let version: UInt32 = header.get(at: 8)
        guard version <= snapshotVersion else {
            throw HNSWError(
                .newerFormat, "\(path) has snapshot format \(version); this build reads up to \(snapshotVersion)")
        }
        guard version >= 1, let metric = Metric(code: header[16]) else {
            throw HNSWError(.corruptFile, "\(path): bad version or metric in header")
        }
        let dimensions = Int(header.get(at: 12) as UInt32)
        let connectivity = Int(header.get(at: 20) as UInt32)
        let effort = Int(header.get(at: 24) as UInt32)
        let highWater = Int(header.get(at: 28) as UInt32)
        let parameters = HNSWParameters(
            dimensions: dimensions, metric: metric, connectivity: connectivity,
            constructionEffort: effort, seed: header.get(at: 32))
        let sequence: UInt64 = header.get(at: 40)
        let entryNode: UInt32 = header.get(at: 48)
        let entryLevel = Int(header.get(at: 52) as UInt32) - 1
        let stamp: UInt64 = header.get(at: 56)
        do throws(HNSWError) {
            try parameters.validate()
        } catch {
            throw HNSWError(.corruptFile, "\(path): header parameters out of range (\(error.message))")
        }
        let vectorBytes = highWater.multipliedReportingOverflow(by: dimensions * 4)
        guard !vectorBytes.overflow, vectorBytes.partialValue <= reader.size else {
            throw HNSWError(.corruptFile, "\(path): \(highWater) nodes do not fit a file of \(reader.size) bytes")
        }
        let index = try HNSWIndex(
            parameters: parameters, capacity: max(highWater, 16), kernelLevel: kernelLevel,
            traversal: traversal)
        let s = index.storage
        for block: NodeStorage.Block in [.labels, .levels, .states, .vectors, .links0] {
            unsafe try s.withMutableBytes(of: block, slots: highWater) { bytes throws(HNSWError) in
                unsafe try reader.read(into: bytes)
            }
        }
        for n in 0..<highWater where s.level(UInt32(n)) > 0 {
            guard s.level(UInt32(n)) <= 31 else {
                throw HNSWError(.corruptFile, "\(path): node \(n) has level \(s.level(UInt32(n)))")
            }
            unsafe try s.withFreshUpperLinkBytes(of: n) { bytes throws(HNSWError) in unsafe try reader.read(into: bytes)
            }
        }
        let computed = reader.crc
        var trailer = [UInt8](repeating: 0, count: 8)
        let trailerBytes = try reader.readUpTo(&trailer)
        guard trailerBytes == 8, Array(trailer[4..<8]) == endMarker, reader.atEnd else {
            throw HNSWError(.corruptFile, "\(path): snapshot truncated or has trailing bytes")
        }
        guard trailer.get(at: 0) as UInt32 == computed else {
            throw HNSWError(.corruptFile, "\(path): checksum mismatch")
        }
        try index.adoptLoadedState(
            highWater: highWater, sequence: sequence, entryNode: entryNode,
            entryLevel: entryLevel, path: path)
        for n in 0..<highWater where s.rawState(n) != NodeState.free.rawValue {
            // A forged file can carry a valid checksum: no stored vector may hold NaN or an infinity (norms are
            // not checked here, so snapshots of rows written before the norm check still load).
            let v = unsafe UnsafeBufferPointer(start: s.vector(UInt32(n)), count: dimensions)
            if let bad = unsafe v.firstIndex(where: { !$0.isFinite }) {
                throw HNSWError(.corruptFile, unsafe "\(path): node \(n)'s vector component \(bad) is \(v[bad])")
            }
            s.encode(UInt32(n))
        }
        return (index, stamp)
    }

    /// Checks a freshly read storage and rebuilds the bookkeeping from it. The checksum already matched, so a
    /// failure here means a file written wrongly or forged: still a typed error, never a crash later.
    private func adoptLoadedState(
        highWater: Int, sequence: UInt64, entryNode: UInt32, entryLevel: Int,
        path: String
    ) throws(HNSWError) {
        let s = storage
        var book = Bookkeeping()
        book.highWater = UInt32(highWater)
        book.sequence = sequence
        for n in 0..<highWater {
            guard let state = NodeState(rawValue: s.rawState(n)) else {
                throw HNSWError(.corruptFile, "\(path): node \(n) has state \(s.rawState(n))")
            }
            if state == .free {
                book.freeSlots.append(UInt32(n))
                continue
            }
            if state == .deleted { book.deletedPending += 1 }
            if state == .pending {
                // Saved under the writer's lock, a snapshot never holds one (activation ends each write); should a
                // file hold one, it is a node never made visible: dropped at the next repair.
                s.setState(UInt32(n), .deleted)
                book.deletedPending += 1
            }
            for level in 0...s.level(UInt32(n)) {
                let list = unsafe s.linkList(UInt32(n), level: level)
                let count = unsafe Int(list[0])
                guard count <= s.maxLinks(level: level) else {
                    throw HNSWError(.corruptFile, "\(path): node \(n) has \(count) links at level \(level)")
                }
                for j in 1...max(count, 1) where j <= count {
                    let target = unsafe Int(list[j])
                    guard target < highWater else {
                        throw HNSWError(.corruptFile, "\(path): node \(n) links to node \(target) ≥ \(highWater)")
                    }
                    // A search follows the link and reads the target's list at this level: it must have one.
                    guard s.rawState(target) != NodeState.free.rawValue, s.level(UInt32(target)) >= level
                    else {
                        throw HNSWError(
                            .corruptFile,
                            "\(path): node \(n) links at level \(level) to node \(target), which has no list there")
                    }
                }
            }
            if state == .live {
                let label = s.label(UInt32(n))
                guard book.nodeByLabel.updateValue(UInt32(n), forKey: label) == nil else {
                    throw HNSWError(.corruptFile, "\(path): label \(label) appears twice")
                }
            }
        }
        book.freeSlots.reverse()
        if entryLevel >= 0 {
            guard Int(entryNode) < highWater, s.rawState(Int(entryNode)) != NodeState.free.rawValue,
                s.level(entryNode) == entryLevel
            else {
                throw HNSWError(.corruptFile, "\(path): entry point \(entryNode) is not a node of level \(entryLevel)")
            }
            storeEntry(node: entryNode, level: entryLevel)
        } else if book.nodeByLabel.count > 0 {
            throw HNSWError(.corruptFile, "\(path): nodes without an entry point")
        }
        bookkeeping.withLock { $0 = book }
    }
}

extension [UInt8] {
    fileprivate mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    fileprivate func get<T: FixedWidthInteger>(at offset: Int) -> T {
        var value = T.zero
        for i in 0..<MemoryLayout<T>.size { value |= T(self[offset + i]) << (8 * i) }
        return value
    }
}

/// Sequential writer over a file descriptor that keeps a running CRC-32C.
private struct SnapshotWriter {
    let fd: Int32
    let path: String
    var crc: UInt32 = 0

    init(path: String) throws(HNSWError) {
        self.path = path
        fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HNSWError(.io, unsafe "cannot create \(path): \(String(cString: strerror(errno)))") }
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(HNSWError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        crc = unsafe hs_crc32c(crc, base, bytes.count)
        var offset = 0
        while offset < bytes.count {
            let n = unsafe Glibc.write(fd, base + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw HNSWError(.io, unsafe "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    mutating func write(bytes: [UInt8]) throws(HNSWError) {
        let result = unsafe bytes.withUnsafeBytes { raw in Result { () throws(HNSWError) in unsafe try write(raw) } }
        try result.get()
    }

    func finish() throws(HNSWError) {
        guard fsync(fd) == 0 else {
            throw HNSWError(.io, unsafe "cannot fsync \(path): \(String(cString: strerror(errno)))")
        }
        guard close(fd) == 0 else {
            throw HNSWError(.io, unsafe "cannot close \(path): \(String(cString: strerror(errno)))")
        }
    }

    func abandon() { close(fd) }
}

/// Sequential reader that keeps a running CRC-32C and knows the file size.
private struct SnapshotReader {
    let fd: Int32
    let path: String
    let size: Int
    var position = 0
    var crc: UInt32 = 0

    init(path: String) throws(HNSWError) {
        self.path = path
        fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HNSWError(.io, unsafe "cannot open \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        guard unsafe fstat(fd, &info) == 0 else {
            Glibc.close(fd)
            throw HNSWError(.io, unsafe "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        size = Int(info.st_size)
    }

    var atEnd: Bool { position == size }

    /// Reads as many bytes as are left, up to the buffer's size, without touching the checksum.
    mutating func readUpTo(_ buffer: UnsafeMutableRawBufferPointer) throws(HNSWError) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var offset = 0
        while offset < buffer.count {
            let n = unsafe Glibc.read(fd, base + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else {
                throw HNSWError(.io, unsafe "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            offset += n
        }
        position += offset
        return offset
    }

    mutating func readUpTo(_ bytes: inout [UInt8]) throws(HNSWError) -> Int {
        let result = unsafe bytes.withUnsafeMutableBytes { raw in
            Result { () throws(HNSWError) in unsafe try readUpTo(raw) }
        }
        return try result.get()
    }

    /// Reads exactly the buffer's size and folds it into the checksum.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(HNSWError) {
        guard buffer.count > 0 else { return }
        let got = unsafe try readUpTo(buffer)
        guard got == buffer.count else { throw HNSWError(.corruptFile, "\(path): snapshot truncated") }
        crc = unsafe hs_crc32c(crc, buffer.baseAddress, buffer.count)
    }

    func close() { Glibc.close(fd) }
}
