import CLZ4
import HNSW

/// How a cold block stores its vectors.
public enum ColdCodec: UInt8, Sendable, Codable, CaseIterable {
    /// float32, bytes shuffled (all first bytes, then all second bytes, …) then LZ4: lossless.
    case shuffledLZ4 = 1
    /// float16 (lossy, ~3 significant digits), bytes shuffled, then LZ4.
    case float16ShuffledLZ4 = 2
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
/// are mostly close together, so the high planes are zeros), then the n × d components as float32 or
/// float16, byte-shuffled. (Float16 residuals from the block mean were tried: no smaller on synth-200k.)
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
        let elementSize = codec == .shuffledLZ4 ? 4 : 2
        var plain = [UInt8](repeating: 0, count: n * 8 + n * dimensions * elementSize)
        plain.withUnsafeMutableBytes { out in
            var previous: Int64 = 0
            for (i, row) in rows.enumerated() {
                let delta = UInt64(bitPattern: row &- previous)
                previous = row
                for b in 0..<8 { out[b * n + i] = UInt8(truncatingIfNeeded: delta >> (8 * b)) }
            }
            let base = n * 8, count = vectors.count
            // Byte shuffle: byte b of element i goes to base + b × count + i.
            for (i, x) in vectors.enumerated() {
                let bits: UInt32 = codec == .shuffledLZ4 ? x.bitPattern : UInt32(Float16(x).bitPattern)
                for b in 0..<elementSize { out[base + b * count + i] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
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
        func corrupt(_ why: String) -> HybridStoreError {
            HybridStoreError(.corruptFile, "collection `\(collection)`: cold block \(block) is corrupt (\(why))",
                             context: ["collection": collection, "block": "\(block)"])
        }
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic else { throw corrupt("no block header") }
        func get(at offset: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        let headerCRC = crc32c(UnsafeRawBufferPointer(rebasing: bytes[0..<24]))
        guard get(at: 24) == headerCRC else { throw corrupt("header checksum mismatch") }
        guard bytes[4] == 1, let codec = ColdCodec(rawValue: bytes[5]) else { throw corrupt("unknown version or codec") }
        let n = Int(get(at: 8)), dim = Int(get(at: 12))
        let compressedSize = Int(get(at: 16))
        guard compressedSize == bytes.count - headerSize else { throw corrupt("truncated or padded payload") }
        let payloadCRC = crc32c(UnsafeRawBufferPointer(rebasing: bytes[headerSize...]))
        guard get(at: 20) == payloadCRC else { throw corrupt("payload checksum mismatch") }
        let elementSize = codec == .shuffledLZ4 ? 4 : 2
        let (components, overflow) = n.multipliedReportingOverflow(by: dim)
        guard !overflow, dim >= 1, dim <= 4096, components <= 1 << 28 else { throw corrupt("impossible shape \(n) × \(dim)") }
        let plainSize = n * 8 + components * elementSize
        // Decompress into uninitialised memory, then unshuffle with pointer loops (this is the cold step's
        // inner loop: no zero-filling, no bounds checks per byte).
        let plain = UnsafeMutableRawBufferPointer.allocate(byteCount: max(plainSize, 1), alignment: 16)
        defer { plain.deallocate() }
        // SAFETY: LZ4_decompress_safe never reads past compressedSize nor writes past plainSize.
        let got = Int(LZ4_decompress_safe((bytes.baseAddress! + headerSize).assumingMemoryBound(to: CChar.self),
                                          plain.baseAddress!.assumingMemoryBound(to: CChar.self),
                                          Int32(compressedSize), Int32(plainSize)))
        guard got == plainSize else { throw corrupt("LZ4 payload does not decode to \(plainSize) bytes") }
        let rows = [Int64](unsafeUninitializedCapacity: n) { out, count in
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
        let vectors = [Float](unsafeUninitializedCapacity: components) { out, count in
            // SAFETY: plane b spans [base + b × components, base + (b + 1) × components) ⊂ plain.
            let base = plain.baseAddress!.assumingMemoryBound(to: UInt8.self) + n * 8
            if codec == .shuffledLZ4 {
                let b0 = base, b1 = base + components, b2 = base + 2 * components, b3 = base + 3 * components
                for i in 0..<components {
                    out[i] = Float(bitPattern: UInt32(b0[i]) | UInt32(b1[i]) << 8 | UInt32(b2[i]) << 16 | UInt32(b3[i]) << 24)
                }
            } else {
                let b0 = base, b1 = base + components
                for i in 0..<components { out[i] = Float(Float16(bitPattern: UInt16(b0[i]) | UInt16(b1[i]) << 8)) }
            }
            count = components
        }
        return ColdBlock(rows: rows, dimensions: dim, vectors: vectors)
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
