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
        let y = transpose8x8(UnsafeRawPointer(source + 8 * g).loadUnaligned(as: UInt64.self).littleEndian)
        for j in 0..<8 { target[j * groups + g] = UInt8(truncatingIfNeeded: y >> (8 * j)) }
    }
}

/// Undoes `bitShuffle` for groups `groups` only (of a plane whose bit planes are `stride` bytes long),
/// writing their 8 bytes each to `target`, group after group. (The SIMD kernel `hs_bitunshuffle`; tests
/// compare it with `bitUnshuffleReference`.)
@inline(__always) package func bitUnshuffle(_ source: UnsafePointer<UInt8>, stride: Int, groups: Range<Int>,
                                            _ target: UnsafeMutablePointer<UInt8>) {
    hs_bitunshuffle(source, stride, groups.lowerBound, groups.upperBound, target)
}

/// The scalar reference of `bitUnshuffle`.
package func bitUnshuffleReference(_ source: UnsafePointer<UInt8>, stride: Int, groups: Range<Int>,
                                   _ target: UnsafeMutablePointer<UInt8>) {
    for (n, g) in groups.enumerated() {
        var x: UInt64 = 0
        // SAFETY: callers pass groups < stride, and source spans 8 × stride bytes.
        for j in 0..<8 { x |= UInt64(source[j * stride + g]) << (8 * j) }
        UnsafeMutableRawPointer(target + 8 * n).storeBytes(of: transpose8x8(x).littleEndian, as: UInt64.self)
    }
}

extension UInt32 {
    /// Rotated left by one bit.
    fileprivate var rotatedLeft: UInt32 { self << 1 | self >> 31 }
}

/// A block of cold vectors: row numbers and their vectors, compressed, with a checksummed header.
///
/// Layout (little-endian):
///
///   offset  size  field
///   0       4     magic "HSCB"
///   4       1     format version (1)
///   5       1     codec (`ColdCodec`)
///   6       2     zero
///   8       4     rows (n)
///   12      4     dimensions (d)
///   16      4     compressed payload bytes
///   20      4     CRC-32C of the compressed payload
///   24      4     CRC-32C of bytes 0..<24
///   28            compressed payload
///
/// The payload, before LZ4: the n row numbers as deltas from the previous one (Int64, byte-shuffled: rows
/// are ascending and close together, so the high planes are zeros), then the n × d components as float32
/// or float16, byte-shuffled (plane b: byte b of every component). The bit-shuffled codecs pad each plane to
/// a multiple of 8 bytes and store their high plane as 8 bit planes in groups of 8 components (see
/// `bitShuffle`); codec 3 first rotates each float32 left one bit, so that plane is the exponent. A
/// reader decodes the whole payload but puts together only the vectors it is asked for.
/// (Float16 residuals from the block mean were tried: no smaller on synth-200k.)
/// Decoding checks both checksums and every length before it trusts anything, so a truncated or
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
    static let headerSize = 28

    /// - Precondition: `vectors.count == rows.count * dimensions`.
    package func encoded(codec: ColdCodec) -> [UInt8] {
        precondition(vectors.count == rows.count * dimensions)
        let n = rows.count
        let elementSize = codec.elementSize
        let count = vectors.count
        let plane = Self.planeLength(codec, components: count)
        var plain = [UInt8](repeating: 0, count: n * 8 + plane * elementSize)
        plain.withUnsafeMutableBytes { out in
            var previous: Int64 = 0
            for (i, row) in rows.enumerated() {
                let delta = UInt64(bitPattern: row &- previous)
                previous = row
                for b in 0..<8 { out[b * n + i] = UInt8(truncatingIfNeeded: delta >> (8 * b)) }
            }
            let base = n * 8
            // Byte shuffle: byte b of element i goes to base + b × plane + i.
            for (i, x) in vectors.enumerated() {
                let bits: UInt32 = switch codec {
                case .shuffledLZ4: x.bitPattern
                case .bitShuffledLZ4: x.bitPattern.rotatedLeft
                case .float16ShuffledLZ4, .float16BitShuffledLZ4: UInt32(Float16(x).bitPattern)
                }
                for b in 0..<elementSize { out[base + b * plane + i] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
            }
            // Then the high planes bit by bit.
            if !codec.bitPlanes.isEmpty {
                let bytes = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                let shuffled = UnsafeMutablePointer<UInt8>.allocate(capacity: plane)
                defer { shuffled.deallocate() }
                for b in codec.bitPlanes {
                    // SAFETY: plane b spans [base + b × plane, base + (b + 1) × plane) ⊂ out.
                    bitShuffle(bytes + base + b * plane, shuffled, count: plane)
                    (bytes + base + b * plane).update(from: shuffled, count: plane)
                }
            }
        }
        let bound = Int(LZ4_compressBound(Int32(plain.count)))
        var output = [UInt8](repeating: 0, count: Self.headerSize + bound)
        let compressedSize = plain.withUnsafeBytes { src in
            output.withUnsafeMutableBytes { dst in
                // SAFETY: src holds plain.count bytes; dst has `bound` bytes after the header.
                Int(LZ4_compress_default(src.baseAddress!.assumingMemoryBound(to: CChar.self),
                                         (dst.baseAddress! + Self.headerSize).assumingMemoryBound(to: CChar.self),
                                         Int32(plain.count), Int32(bound)))
            }
        }
        output.removeLast(bound - compressedSize)
        output.replaceSubrange(0..<4, with: Self.magic)
        output[4] = 1
        output[5] = codec.rawValue
        output.put(UInt32(n), at: 8)
        output.put(UInt32(dimensions), at: 12)
        output.put(UInt32(compressedSize), at: 16)
        output.put(output.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[Self.headerSize...])) }, at: 20)
        output.put(output.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<24])) }, at: 24)
        return output
    }

    /// Bytes of one byte plane: the component count, rounded up to whole 8-byte groups when bit-shuffled.
    static func planeLength(_ codec: ColdCodec, components: Int) -> Int {
        codec.bitPlanes.isEmpty ? components : (components + 7) / 8 * 8
    }

    /// Decodes and checks a block.
    /// - Throws: `corruptFile` naming `block` for a wrong magic, version, codec, length or checksum, or a
    ///   payload LZ4 rejects.
    package static func decode(_ bytes: [UInt8], block: Int64, collection: String) throws(HybridStoreError) -> ColdBlock {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(HybridStoreError) in try decode(raw, block: block, collection: collection) }
        }
        return try result.get()
    }

    /// As `decode(_:block:collection:)`, reading the bytes in place (e.g. a blob SQLite lends).
    package static func decode(_ bytes: UnsafeRawBufferPointer, block: Int64, collection: String) throws(HybridStoreError)
        -> ColdBlock
    {
        let reader = ColdBlockReader()
        try reader.load(bytes, block: block, collection: collection)
        let dim = reader.dimensions
        let vectors = [Float](unsafeUninitializedCapacity: reader.rows.count * dim) { out, count in
            if let base = out.baseAddress { reader.vectors(into: base) }
            count = reader.rows.count * dim
        }
        return ColdBlock(rows: reader.rows, dimensions: dim, vectors: vectors)
    }
}

/// Decodes cold blocks into memory it keeps between blocks (the cold step's inner loop: no allocation per
/// block, and only the vectors asked for are put together).
// SAFETY: `plain` and `scratch` are owned, sized before every write, freed in deinit; one thread at a time.
package final class ColdBlockReader {
    private var plain = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
    private var scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
    private var scratchCapacity = 64
    private var planeScratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
    private var planeScratchCapacity = 64
    private var codec = ColdCodec.shuffledLZ4
    private var plane = 0
    /// The loaded block's row numbers, in position order, and its dimensions.
    package private(set) var rows: [Int64] = []
    package private(set) var dimensions = 0

    package init() {}
    deinit {
        plain.deallocate()
        scratch.deallocate()
        planeScratch.deallocate()
    }

    /// Checks and decompresses a block; its row numbers are in `rows` afterwards.
    /// - Throws: `corruptFile` naming `block` for a wrong magic, version, codec, length or checksum, or a
    ///   payload LZ4 rejects. Nothing of a block that fails is served.
    package func load(_ bytes: UnsafeRawBufferPointer, block: Int64, collection: String) throws(HybridStoreError) {
        rows = []
        dimensions = 0
        func corrupt(_ why: String) -> HybridStoreError {
            HybridStoreError(.corruptFile, "collection `\(collection)`: cold block \(block) is corrupt (\(why))",
                             context: ["collection": collection, "block": "\(block)"])
        }
        let headerSize = ColdBlock.headerSize
        guard bytes.count >= headerSize, bytes[0] == 0x48, bytes[1] == 0x53, bytes[2] == 0x43, bytes[3] == 0x42 else {
            throw corrupt("no block header")
        }
        func get(at offset: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        let headerCRC = crc32c(UnsafeRawBufferPointer(rebasing: bytes[0..<24]))
        guard get(at: 24) == headerCRC else { throw corrupt("header checksum mismatch") }
        guard bytes[4] == 1, let codec = ColdCodec(rawValue: bytes[5]) else { throw corrupt("unknown version or codec") }
        let n = Int(get(at: 8)), dim = Int(get(at: 12))
        let compressedSize = Int(get(at: 16))
        guard compressedSize == bytes.count - headerSize else { throw corrupt("truncated or padded payload") }
        let payloadCRC = crc32c(UnsafeRawBufferPointer(rebasing: bytes[headerSize...]))
        guard get(at: 20) == payloadCRC else { throw corrupt("payload checksum mismatch") }
        let (components, overflow) = n.multipliedReportingOverflow(by: dim)
        guard !overflow, dim >= 1, dim <= 4096, components <= 1 << 28 else { throw corrupt("impossible shape \(n) × \(dim)") }
        let plane = ColdBlock.planeLength(codec, components: components)
        let plainSize = n * 8 + plane * codec.elementSize
        if plain.count < plainSize {
            plain.deallocate()
            plain = UnsafeMutableRawBufferPointer.allocate(byteCount: plainSize, alignment: 16)
        }
        // SAFETY: LZ4_decompress_safe never reads past compressedSize nor writes past plainSize ≤ plain.count.
        let got = Int(LZ4_decompress_safe((bytes.baseAddress! + headerSize).assumingMemoryBound(to: CChar.self),
                                          plain.baseAddress!.assumingMemoryBound(to: CChar.self),
                                          Int32(compressedSize), Int32(plainSize)))
        guard got == plainSize else { throw corrupt("LZ4 payload does not decode to \(plainSize) bytes") }
        let needed = 2 * (dim + 16)
        if scratchCapacity < needed {
            scratch.deallocate()
            scratch = .allocate(capacity: needed)
            scratchCapacity = needed
        }
        self.codec = codec
        self.plane = plane
        rows = [Int64](unsafeUninitializedCapacity: n) { out, count in
            let planes = plain.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var previous: Int64 = 0
            for i in 0..<n {
                var delta: UInt64 = 0
                for b in 0..<8 { delta |= UInt64(planes[b * n + i]) << (8 * b) }
                previous = previous &+ Int64(bitPattern: delta)
                out[i] = previous
            }
            count = n
        }
        dimensions = dim
    }

    /// Writes every vector of the loaded block to `out` (`rows.count × dimensions` floats, row-major): each
    /// plane is unshuffled once for the whole block, cheaper than `vector(at:into:)` per row when most rows
    /// are wanted.
    /// - Precondition: a block is loaded; `out` is valid for `rows.count × dimensions` writes.
    package func vectors(into out: UnsafeMutablePointer<Float>) {
        let components = rows.count * dimensions
        guard components > 0 else { return }
        let base = plain.baseAddress!.assumingMemoryBound(to: UInt8.self) + rows.count * 8
        let bitPlanes = codec.bitPlanes
        let needed = self.plane * bitPlanes.count
        if planeScratchCapacity < needed {
            planeScratch.deallocate()
            planeScratch = .allocate(capacity: needed)
            planeScratchCapacity = needed
        }
        // SAFETY: plane b spans [base + b × plane, base + (b + 1) × plane) ⊂ plain; an unshuffled plane takes
        // `plane` bytes of planeScratch (sized above); components ≤ plane.
        func plane(_ b: Int) -> UnsafePointer<UInt8> {
            guard bitPlanes.contains(b) else { return UnsafePointer(base + b * self.plane) }
            let target = planeScratch + (b - bitPlanes.lowerBound) * self.plane
            bitUnshuffle(base + b * self.plane, stride: self.plane / 8, groups: 0 ..< self.plane / 8, target)
            return UnsafePointer(target)
        }
        if codec.elementSize == 4 {
            hs_unshuffle_f32(plane(0), plane(1), plane(2), plane(3), components, codec == .bitShuffledLZ4 ? 1 : 0, out)
        } else {
            hs_unshuffle_f16(plane(0), plane(1), components, out)
        }
    }

    /// Writes the vector at `position` of the loaded block to `out` (`dimensions` floats).
    /// - Precondition: a block is loaded and `position < rows.count`.
    package func vector(at position: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(position >= 0 && position < rows.count)
        let dim = dimensions
        let first = position * dim
        // SAFETY: plane b spans [base + b × plane, base + (b + 1) × plane) ⊂ plain, and
        // first + dim ≤ components ≤ plane; scratch holds 2 × (dim + 16) bytes (checked in `load`).
        let base = plain.baseAddress!.assumingMemoryBound(to: UInt8.self) + rows.count * 8
        let bitPlanes = codec.bitPlanes
        let groups = first / 8 ..< (first + dim + 7) / 8
        // Byte b of element first + i is plane(b)[i].
        func plane(_ b: Int) -> UnsafePointer<UInt8> {
            guard bitPlanes.contains(b) else { return UnsafePointer(base + b * self.plane + first) }
            let target = scratch + (b - bitPlanes.lowerBound) * (dim + 16)
            bitUnshuffle(base + b * self.plane, stride: self.plane / 8, groups: groups, target)
            return UnsafePointer(target + (first - groups.lowerBound * 8))
        }
        if codec.elementSize == 4 {
            hs_unshuffle_f32(plane(0), plane(1), plane(2), plane(3), dim, codec == .bitShuffledLZ4 ? 1 : 0, out)
        } else {
            hs_unshuffle_f16(plane(0), plane(1), dim, out)
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
