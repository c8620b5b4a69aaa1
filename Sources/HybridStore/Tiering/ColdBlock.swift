import CKernels
import CLZ4
import HNSW

/// How a cold block stores its vectors.
public enum ColdCodec: UInt8, Sendable, Codable, CaseIterable {
    /// float32, bytes shuffled (all first bytes, then all second bytes, …) then LZ4: lossless.
    case shuffledLZ4 = 1
    /// float16 (lossy, ~3 significant digits), bytes shuffled, then LZ4.
    case float16ShuffledLZ4 = 2
    /// float32 rotated left one bit (so the exponent fills the high byte and the sign joins the mantissa's
    /// low byte), bytes shuffled, the high byte plane also bit-shuffled, then LZ4: lossless. The exponent's
    /// low bits vary from value to value, which hides its constant high bits from LZ4 at byte granularity;
    /// as bit planes they are long runs. The default.
    case bitShuffledLZ4 = 3
    /// float16 (lossy), bytes shuffled, the high byte plane also bit-shuffled, then LZ4.
    case float16BitShuffledLZ4 = 4

    /// Bytes a component takes before compression.
    var elementSize: Int { self == .shuffledLZ4 || self == .bitShuffledLZ4 ? 4 : 2 }
    /// Byte planes that are bit-shuffled (the high ones).
    var bitPlanes: Range<Int> {
        switch self {
        case .shuffledLZ4, .float16ShuffledLZ4: 0..<0
        case .bitShuffledLZ4: 3..<4
        case .float16BitShuffledLZ4: 1..<2
        }
    }
    /// Whether it keeps float32 exactly.
    public var isLossless: Bool { elementSize == 4 }
}

/// Transposes an 8 × 8 bit matrix held in a UInt64 (byte i is row i, bit j of it column j): afterwards
/// byte j holds bit j of every input byte (bit i from byte i). Its own inverse. (Hacker's Delight, 7-3.)
@inline(__always) package func transpose8x8(_ x: UInt64) -> UInt64 {
    var x = x
    var t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA
    x = x ^ t ^ (t << 7)
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC
    x = x ^ t ^ (t << 14)
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0
    x = x ^ t ^ (t << 28)
    return x
}

/// Bit-shuffles a byte plane of `count` bytes (a multiple of 8) from `source` into `target`: bit j of byte
/// 8g + i goes to bit i of byte j × count/8 + g. So each of the 8 bit planes is contiguous.
package func bitShuffle(_ source: UnsafePointer<UInt8>, _ target: UnsafeMutablePointer<UInt8>, count: Int) {
    let groups = count / 8
    for g in 0..<groups {
        // SAFETY: bytes 8g..<8g+8 are inside `source`; byte j·groups + g inside `target` (j < 8, g < groups).
        let y = unsafe transpose8x8(UnsafeRawPointer(source + 8 * g).loadUnaligned(as: UInt64.self).littleEndian)
        for j in 0..<8 { unsafe target[j * groups + g] = UInt8(truncatingIfNeeded: y >> (8 * j)) }
    }
}

/// Undoes `bitShuffle` for groups `groups` only (of a plane whose bit planes are `stride` bytes long),
/// writing their 8 bytes each to `target`, group after group. (The SIMD kernel `hs_bitunshuffle`; tests
/// compare it with `bitUnshuffleReference`.)
@inline(__always) package func bitUnshuffle(
    _ source: UnsafePointer<UInt8>, stride: Int, groups: Range<Int>,
    _ target: UnsafeMutablePointer<UInt8>
) {
    unsafe hs_bitunshuffle(source, stride, groups.lowerBound, groups.upperBound, target)
}

/// The scalar reference of `bitUnshuffle`.
package func bitUnshuffleReference(
    _ source: UnsafePointer<UInt8>, stride: Int, groups: Range<Int>,
    _ target: UnsafeMutablePointer<UInt8>
) {
    for (n, g) in groups.enumerated() {
        var x: UInt64 = 0
        // SAFETY: callers pass groups < stride, and source spans 8 × stride bytes.
        for j in 0..<8 { unsafe x |= UInt64(source[j * stride + g]) << (8 * j) }
        unsafe UnsafeMutableRawPointer(target + 8 * n).storeBytes(of: transpose8x8(x).littleEndian, as: UInt64.self)
    }
}

extension UInt32 {
    /// Rotated left by one bit.
    fileprivate var rotatedLeft: UInt32 { self << 1 | self >> 31 }
}

/// A block of cold vectors: row numbers and their vectors, compressed in frames of a few rows, each frame
/// checked and decompressed on its own, so a reader that wants one row touches only its frame.
///
/// Layout, format version 2 (little-endian; F frames):
///
///   offset     size  field
///   0          4     magic "HSCB"
///   4          1     format version (2)
///   5          1     codec (`ColdCodec`)
///   6          2     zero
///   8          4     rows (n)
///   12         4     dimensions (d)
///   16         4     rows per frame (r ≥ 1; F = ⌈n / r⌉)
///   20         4     F
///   24         4     compressed bytes of the row section
///   28         4     CRC-32C of the compressed row section
///   32         8F    per frame: compressed bytes, CRC-32C of them
///   32 + 8F    4     CRC-32C of bytes 0..<32 + 8F
///   36 + 8F          the row section, then the frames in order
///
/// The row section, before LZ4: the n row numbers as deltas from the previous one (Int64, byte-shuffled:
/// rows are ascending and close together, so the high planes are zeros). Frame f, before LZ4: rows
/// f·r ..< min(n, (f + 1)·r), their components as float32 or float16, byte-shuffled (plane b: byte b of
/// every component). The bit-shuffled codecs pad each plane to a multiple of 8 bytes and store their high
/// plane as 8 bit planes in groups of 8 components (see `bitShuffle`); codec 3 first rotates each float32
/// left one bit, so that plane is the exponent. r is chosen so a frame holds ≥ 2,048 components (16 rows at
/// 128-d): fewer compress worse. Version 1 (one LZ4 payload holding the row planes and all components, a
/// 28-byte header) is still read.
/// (Float16 residuals from the block mean were tried: no smaller; Benchmarks/README.md, "Measurements behind
/// constants".)
/// Decoding checks the checksums and every length before it trusts anything, so a truncated or
/// bit-flipped block is a `corruptFile` error naming the block, never a crash or a wrong row.
package struct ColdBlock: Equatable {
    package var rows: [Int64]
    package var dimensions: Int
    /// `rows.count × dimensions` components, row-major.
    package var vectors: [Float]

    package init(rows: [Int64], dimensions: Int, vectors: [Float]) {
        self.rows = rows
        self.dimensions = dimensions
        self.vectors = vectors
    }

    static let magic: [UInt8] = Array("HSCB".utf8)
    static let version1HeaderSize = 28

    /// Rows per frame for vectors of `dimensions` components: enough for 2,048 components.
    package static func frameRows(dimensions: Int) -> Int { max(1, (2048 + dimensions - 1) / max(dimensions, 1)) }

    /// - Precondition: `vectors.count == rows.count * dimensions`.
    package func encoded(codec: ColdCodec) -> [UInt8] {
        precondition(vectors.count == rows.count * dimensions)
        let n = rows.count, dim = dimensions
        let r = Self.frameRows(dimensions: dim)
        let frameCount = (n + r - 1) / r
        var rowPlanes = [UInt8](repeating: 0, count: n * 8)
        var previous: Int64 = 0
        for (i, row) in rows.enumerated() {
            let delta = UInt64(bitPattern: row &- previous)
            previous = row
            for b in 0..<8 { rowPlanes[b * n + i] = UInt8(truncatingIfNeeded: delta >> (8 * b)) }
        }
        let sections =
            [Self.compressed(rowPlanes)]
            + (0..<frameCount).map { f in
                Self.compressed(Self.planes(vectors[f * r * dim..<min(n, (f + 1) * r) * dim], codec: codec))
            }
        let headerSize = 36 + 8 * frameCount
        var output = [UInt8](repeating: 0, count: headerSize)
        output.replaceSubrange(0..<4, with: Self.magic)
        output[4] = 2
        output[5] = codec.rawValue
        output.put(UInt32(n), at: 8)
        output.put(UInt32(dim), at: 12)
        output.put(UInt32(r), at: 16)
        output.put(UInt32(frameCount), at: 20)
        for (i, section) in sections.enumerated() {
            let at = i == 0 ? 24 : 32 + 8 * (i - 1)
            output.put(UInt32(section.count), at: at)
            unsafe output.put(section.withUnsafeBytes { unsafe crc32c($0) }, at: at + 4)
        }
        unsafe output.put(
            output.withUnsafeBytes { unsafe crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<headerSize - 4])) },
            at: headerSize - 4)
        for section in sections { output += section }
        return output
    }

    /// `values` before LZ4: byte planes, the codec's high planes bit-shuffled.
    static func planes(_ values: ArraySlice<Float>, codec: ColdCodec) -> [UInt8] {
        let elementSize = codec.elementSize
        let plane = planeLength(codec, components: values.count)
        var plain = [UInt8](repeating: 0, count: plane * elementSize)
        unsafe plain.withUnsafeMutableBytes { out in
            // Byte shuffle: byte b of element i goes to b × plane + i.
            for (i, x) in values.enumerated() {
                let bits: UInt32 =
                    switch codec {
                    case .shuffledLZ4: x.bitPattern
                    case .bitShuffledLZ4: x.bitPattern.rotatedLeft
                    case .float16ShuffledLZ4, .float16BitShuffledLZ4: UInt32(Float16(x).bitPattern)
                    }
                for b in 0..<elementSize { unsafe out[b * plane + i] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
            }
            // Then the high planes bit by bit.
            guard !codec.bitPlanes.isEmpty, plane > 0 else { return }
            let bytes = unsafe out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let shuffled = UnsafeMutablePointer<UInt8>.allocate(capacity: plane)
            defer { unsafe shuffled.deallocate() }
            for b in codec.bitPlanes {
                // SAFETY: plane b spans [b × plane, (b + 1) × plane) ⊂ out.
                unsafe bitShuffle(bytes + b * plane, shuffled, count: plane)
                unsafe (bytes + b * plane).update(from: shuffled, count: plane)
            }
        }
        return plain
    }

    /// LZ4 of `plain`.
    static func compressed(_ plain: [UInt8]) -> [UInt8] {
        let bound = Int(LZ4_compressBound(Int32(plain.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let size = unsafe plain.withUnsafeBytes { src in
            unsafe output.withUnsafeMutableBytes { dst in
                // SAFETY: src holds plain.count bytes; dst `bound`.
                unsafe Int(
                    LZ4_compress_default(
                        src.baseAddress?.assumingMemoryBound(to: CChar.self),
                        dst.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(plain.count), Int32(bound)))
            }
        }
        output.removeLast(bound - size)
        return output
    }

    /// Bytes of one byte plane: the component count, rounded up to whole 8-byte groups when bit-shuffled.
    static func planeLength(_ codec: ColdCodec, components: Int) -> Int {
        codec.bitPlanes.isEmpty ? components : (components + 7) / 8 * 8
    }

    /// Decodes and checks a block.
    /// - Throws: `corruptFile` naming `block` for a wrong magic, version, codec, length or checksum, or a
    ///   payload LZ4 rejects.
    package static func decode(_ bytes: [UInt8], block: Int64, collection: String) throws(HybridStoreError) -> ColdBlock
    {
        let result = unsafe bytes.withUnsafeBytes { raw in
            Result { () throws(HybridStoreError) in unsafe try decode(raw, block: block, collection: collection) }
        }
        return try result.get()
    }

    /// As `decode(_:block:collection:)`, reading the bytes in place (e.g. a blob SQLite lends).
    package static func decode(
        _ bytes: UnsafeRawBufferPointer, block: Int64, collection: String
    ) throws(HybridStoreError)
        -> ColdBlock
    {
        let reader = ColdBlockReader()
        unsafe try reader.load(bytes, block: block, collection: collection)
        let dim = reader.dimensions
        let vectors = unsafe [Float](unsafeUninitializedCapacity: reader.rows.count * dim) { out, count in
            unsafe reader.vectors(into: UnsafeMutableBufferPointer(rebasing: out[0..<reader.rows.count * dim]))
            count = reader.rows.count * dim
        }
        return ColdBlock(rows: reader.rows, dimensions: dim, vectors: vectors)
    }
}

/// Decodes cold blocks into memory it keeps between blocks (the cold step's inner loop: no allocation per
/// block; only the frames holding the rows asked for are checked and decompressed, and only the vectors
/// asked for are put together).
// SAFETY: its buffers (`ScratchBytes`) are reserved before every write and lent only inside `withBytes`; one
// thread at a time.
@safe package final class ColdBlockReader {
    /// The decompressed row planes, then each frame's planes.
    private let plain = ScratchBytes()
    /// One vector's unshuffled bit planes (`vector(at:into:)`).
    private let scratch = ScratchBytes()
    /// A whole frame's unshuffled bit planes (`vectors(into:)`).
    private let planeScratch = ScratchBytes()
    private var codec = ColdCodec.shuffledLZ4
    /// A frame: its first row, rows, plane length, where its planes start in `plain`, and whether they are there.
    private struct Frame {
        var first: Int
        var count: Int
        var plane: Int
        var offset: Int
        var decoded: Bool
    }
    private var frames: [Frame] = []
    private var frameRows = 1
    private var sections: [Range<Int>] = []  // version 2: the row section, then the frames
    private var frameCRCs: [UInt32] = []
    private var wanted: [Bool] = []  // per frame: holds a position asked for
    /// The loaded block's row numbers, in position order, and its dimensions.
    package private(set) var rows: [Int64] = []
    package private(set) var dimensions = 0
    /// Frames, and bytes, the last `load` decompressed (for tests and `explain`).
    package private(set) var framesDecoded = 0
    package private(set) var bytesInflated = 0

    package init() {}

    /// The bytes of a version-2 block that `load(_:positions:)` reads for `positions`: its header, row section
    /// and the frames holding them, in order (adjacent ranges joined), given the block's first bytes (`prefix`,
    /// at least 36) and its size. `.needHeader(n)` when the header is longer than `prefix`; nil when `prefix`
    /// does not start a well-formed version-2 block (read it all: `load` names what is wrong).
    package enum Parts: Equatable {
        case needHeader(Int)
        case ranges([Range<Int>])
    }
    package static func parts(prefix: UnsafeRawBufferPointer, size: Int, positions: [Int]) -> Parts? {
        guard prefix.count >= 36, unsafe prefix[0] == 0x48, unsafe prefix[1] == 0x53, unsafe prefix[2] == 0x43,
            unsafe prefix[3] == 0x42,
            unsafe prefix[4] == 2
        else { return nil }
        func get(_ offset: Int) -> Int {
            unsafe Int(UInt32(littleEndian: prefix.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        }
        let n = get(8), frameRows = get(16), frameCount = get(20)
        guard frameCount <= (size - 36) / 8, frameRows >= 1, frameCount == (n + frameRows - 1) / frameRows else {
            return nil
        }
        let headerSize = 36 + 8 * frameCount
        guard prefix.count >= headerSize else { return .needHeader(headerSize) }
        var ranges = [0..<headerSize + get(24)]
        var at = ranges[0].upperBound
        guard at <= size else { return nil }
        var wanted = [Bool](repeating: false, count: frameCount)
        for p in positions where p >= 0 && p < n { wanted[p / frameRows] = true }
        for f in 0..<frameCount {
            let length = get(32 + 8 * f)
            guard length <= size - at else { return nil }
            if wanted[f] {
                if ranges[ranges.count - 1].upperBound == at {
                    ranges[ranges.count - 1] = ranges[ranges.count - 1].lowerBound..<at + length
                } else {
                    ranges.append(at..<at + length)
                }
            }
            at += length
        }
        return at == size ? .ranges(ranges) : nil
    }

    /// Checks a block's header and row numbers and decompresses the frames holding `positions` (every frame
    /// when nil); the row numbers are in `rows` afterwards.
    /// - Throws: `corruptFile` naming `block` for a wrong magic, version, codec, length or checksum, or a
    ///   payload LZ4 rejects. Nothing of a block that fails is served.
    package func load(
        _ bytes: UnsafeRawBufferPointer, block: Int64, collection: String,
        positions: [Int]? = nil
    ) throws(HybridStoreError) {
        // Every per-block list keeps its capacity: no allocation per block once the reader has seen one.
        rows.removeAll(keepingCapacity: true)
        dimensions = 0
        frames.removeAll(keepingCapacity: true)
        sections.removeAll(keepingCapacity: true)
        frameCRCs.removeAll(keepingCapacity: true)
        framesDecoded = 0
        bytesInflated = 0
        func corrupt(_ why: String) -> HybridStoreError {
            HybridStoreError(
                .corruptFile, "collection `\(collection)`: cold block \(block) is corrupt (\(why))",
                context: ["collection": collection, "block": "\(block)"])
        }
        guard bytes.count >= ColdBlock.version1HeaderSize, unsafe bytes[0] == 0x48, unsafe bytes[1] == 0x53,
            unsafe bytes[2] == 0x43,
            unsafe bytes[3] == 0x42
        else { throw corrupt("no block header") }
        func get(at offset: Int) -> UInt32 {
            unsafe UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        func crc(_ range: Range<Int>) -> UInt32 { unsafe crc32c(UnsafeRawBufferPointer(rebasing: bytes[range])) }
        /// LZ4 of `source` into `plain` at `offset`, exactly `size` bytes. SAFETY: LZ4_decompress_safe never reads
        /// past the source range nor writes past `size`; callers size `plain` to hold offset + size.
        func inflate(_ source: Range<Int>, to offset: Int, size: Int) throws(HybridStoreError) {
            guard size > 0 || source.count > 1 else {
                guard size == 0 else { throw corrupt("empty payload") }
                return
            }
            precondition(offset + size <= plain.count && source.upperBound <= bytes.count)
            let got = unsafe plain.withBytes { target in
                unsafe Int(
                    LZ4_decompress_safe(
                        (bytes.baseAddress! + source.lowerBound).assumingMemoryBound(to: CChar.self),
                        (target.baseAddress! + offset).assumingMemoryBound(to: CChar.self),
                        Int32(source.count), Int32(size)))
            }
            guard got == size else { throw corrupt("LZ4 payload does not decode to \(size) bytes") }
            bytesInflated += size
        }
        let version = unsafe bytes[4]
        guard version == 1 || version == 2, let codec = unsafe ColdCodec(rawValue: bytes[5]) else {
            throw corrupt("unknown version or codec")
        }
        let n: Int, dim: Int
        if version == 1 {
            let headerSize = ColdBlock.version1HeaderSize
            guard get(at: 24) == crc(0..<24) else { throw corrupt("header checksum mismatch") }
            (n, dim) = (Int(get(at: 8)), Int(get(at: 12)))
            guard Int(get(at: 16)) == bytes.count - headerSize else { throw corrupt("truncated or padded payload") }
            guard get(at: 20) == crc(headerSize..<bytes.count) else { throw corrupt("payload checksum mismatch") }
            frameRows = max(n, 1)
        } else {
            guard bytes.count >= 36 else { throw corrupt("truncated header") }
            let frameCount = Int(get(at: 20))
            guard frameCount <= (bytes.count - 36) / 8 else { throw corrupt("impossible frame count \(frameCount)") }
            let headerSize = 36 + 8 * frameCount
            guard get(at: headerSize - 4) == crc(0..<headerSize - 4) else { throw corrupt("header checksum mismatch") }
            (n, dim) = (Int(get(at: 8)), Int(get(at: 12)))
            frameRows = Int(get(at: 16))
            guard frameRows >= 1, frameCount == (n + frameRows - 1) / frameRows else {
                throw corrupt("\(frameCount) frames of \(frameRows) rows cannot hold \(n) rows")
            }
            var at = headerSize
            for i in 0...frameCount {
                let size = Int(get(at: i == 0 ? 24 : 32 + 8 * (i - 1)))
                guard size <= bytes.count - at else { throw corrupt("truncated payload") }
                sections.append(at..<at + size)
                at += size
                if i > 0 { frameCRCs.append(get(at: 32 + 8 * (i - 1) + 4)) }
            }
            guard at == bytes.count else { throw corrupt("padded payload") }
            guard get(at: 28) == crc(sections[0]) else { throw corrupt("row section checksum mismatch") }
        }
        let (components, overflow) = n.multipliedReportingOverflow(by: dim)
        guard !overflow, dim >= 1, dim <= 4096, components <= 1 << 28 else {
            throw corrupt("impossible shape \(n) × \(dim)")
        }
        // Where each frame's planes go in `plain`, after the n × 8 bytes of row planes.
        var offset = n * 8
        var largestPlane = 0
        for first in stride(from: 0, to: n, by: frameRows) {
            let count = min(frameRows, n - first)
            let plane = ColdBlock.planeLength(codec, components: count * dim)
            frames.append(Frame(first: first, count: count, plane: plane, offset: offset, decoded: false))
            offset += plane * codec.elementSize
            largestPlane = max(largestPlane, plane)
        }
        plain.reserve(offset)
        if version == 1 {
            try inflate(ColdBlock.version1HeaderSize..<bytes.count, to: 0, size: offset)
            for f in frames.indices { frames[f].decoded = true }
            framesDecoded = frames.count
        } else {
            try inflate(sections[0], to: 0, size: n * 8)
            wanted.removeAll(keepingCapacity: true)
            wanted.append(contentsOf: repeatElement(positions == nil, count: frames.count))
            for p in positions ?? [] where p >= 0 && p < n { wanted[p / frameRows] = true }
            for f in frames.indices where wanted[f] {
                guard frameCRCs[f] == crc(sections[f + 1]) else { throw corrupt("frame \(f) checksum mismatch") }
                try inflate(sections[f + 1], to: frames[f].offset, size: frames[f].plane * codec.elementSize)
                frames[f].decoded = true
                framesDecoded += 1
            }
        }
        scratch.reserve(2 * (dim + 16))
        planeScratch.reserve(largestPlane * codec.bitPlanes.count)
        self.codec = codec
        var previous: Int64 = 0
        rows.reserveCapacity(n)
        unsafe plain.withBytes { planes in
            for i in 0..<n {
                var delta: UInt64 = 0
                for b in 0..<8 { unsafe delta |= UInt64(planes[b * n + i]) << (8 * b) }
                previous = previous &+ Int64(bitPattern: delta)
                rows.append(previous)
            }
        }
        dimensions = dim
    }

    /// Writes every vector of the loaded block to `out` (`rows.count × dimensions` floats, row-major): each
    /// plane of each frame is unshuffled once, cheaper than `vector(at:into:)` per row when most rows are
    /// wanted.
    /// - Precondition: a block is loaded with every frame (`positions: nil`); `out` holds at least
    ///   `rows.count × dimensions` floats.
    package func vectors(into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count >= rows.count * dimensions, "\(out.count) floats for \(rows.count) vectors")
        let bitPlanes = codec.bitPlanes
        let (dimensions, codec, frames) = (dimensions, codec, frames)
        unsafe plain.withBytes { plainBytes in
            unsafe planeScratch.withBytes { planeBytes in
                let planes = unsafe plainBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                let unshuffled = unsafe planeBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for frame in frames {
                    precondition(frame.decoded, "frame not loaded")
                    let components = frame.count * dimensions
                    let base = unsafe planes + frame.offset
                    // SAFETY: plane b spans [base + b × plane, base + (b + 1) × plane) ⊂ plain; an unshuffled plane
                    // takes `plane` bytes of planeScratch (reserved in `load` for the largest frame); components ≤
                    // plane; the frame's vectors end within `out` (checked above).
                    func plane(_ b: Int) -> UnsafePointer<UInt8> {
                        guard bitPlanes.contains(b) else { return unsafe UnsafePointer(base + b * frame.plane) }
                        let target = unsafe unshuffled + (b - bitPlanes.lowerBound) * frame.plane
                        unsafe bitUnshuffle(
                            base + b * frame.plane, stride: frame.plane / 8, groups: 0..<frame.plane / 8, target)
                        return unsafe UnsafePointer(target)
                    }
                    let target = unsafe out.baseAddress! + frame.first * dimensions
                    if codec.elementSize == 4 {
                        unsafe hs_unshuffle_f32(
                            plane(0), plane(1), plane(2), plane(3), components, codec == .bitShuffledLZ4 ? 1 : 0,
                            target)
                    } else {
                        unsafe hs_unshuffle_f16(plane(0), plane(1), components, target)
                    }
                }
            }
        }
    }

    /// Writes the vector at `position` of the loaded block to `out` (`dimensions` floats).
    /// - Precondition: a block is loaded with `position`'s frame, `position < rows.count`, and `out` holds at
    ///   least `dimensions` floats.
    package func vector(at position: Int, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(position >= 0 && position < rows.count && out.count >= dimensions)
        let frame = frames[position / frameRows]
        precondition(frame.decoded, "frame not loaded")
        let (dim, codec) = (dimensions, codec)
        let first = (position - frame.first) * dim
        let bitPlanes = codec.bitPlanes
        let groups = first / 8..<(first + dim + 7) / 8
        unsafe plain.withBytes { plainBytes in
            unsafe scratch.withBytes { scratchBytes in
                // SAFETY: plane b spans [base + b × plane, base + (b + 1) × plane) ⊂ plain, and
                // first + dim ≤ components ≤ plane; scratch holds 2 × (dim + 16) bytes (reserved in `load`).
                let base = unsafe plainBytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + frame.offset
                let unshuffled = unsafe scratchBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                // Byte b of element first + i is plane(b)[i].
                func plane(_ b: Int) -> UnsafePointer<UInt8> {
                    guard bitPlanes.contains(b) else { return unsafe UnsafePointer(base + b * frame.plane + first) }
                    let target = unsafe unshuffled + (b - bitPlanes.lowerBound) * (dim + 16)
                    unsafe bitUnshuffle(base + b * frame.plane, stride: frame.plane / 8, groups: groups, target)
                    return unsafe UnsafePointer(target + (first - groups.lowerBound * 8))
                }
                let target = out.baseAddress!
                if codec.elementSize == 4 {
                    unsafe hs_unshuffle_f32(
                        plane(0), plane(1), plane(2), plane(3), dim, codec == .bitShuffledLZ4 ? 1 : 0, target)
                } else {
                    unsafe hs_unshuffle_f16(plane(0), plane(1), dim, target)
                }
            }
        }
    }
}

extension [UInt8] {
    fileprivate mutating func put(_ value: UInt32, at offset: Int) {
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    fileprivate func get(at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(self[offset + $1]) << (8 * $1) }
    }
}
