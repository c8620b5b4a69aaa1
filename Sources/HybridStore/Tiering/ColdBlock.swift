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
/// The payload, before LZ4: n row numbers (Int64), then the n × d components as float32 or float16, byte-
/// shuffled. Decoding checks both checksums and every length before it trusts anything, so a truncated or
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
            for (i, row) in rows.enumerated() { out.storeBytes(of: row.littleEndian, toByteOffset: i * 8, as: Int64.self) }
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
        func corrupt(_ why: String) -> HybridStoreError {
            HybridStoreError(.corruptFile, "collection `\(collection)`: cold block \(block) is corrupt (\(why))",
                             context: ["collection": collection, "block": "\(block)"])
        }
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic else { throw corrupt("no block header") }
        let headerCRC = bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<24])) }
        guard bytes.get(at: 24) as UInt32 == headerCRC else { throw corrupt("header checksum mismatch") }
        guard bytes[4] == 1, let codec = ColdCodec(rawValue: bytes[5]) else { throw corrupt("unknown version or codec") }
        let n = Int(bytes.get(at: 8) as UInt32), dim = Int(bytes.get(at: 12) as UInt32)
        let compressedSize = Int(bytes.get(at: 16) as UInt32)
        guard compressedSize == bytes.count - headerSize else { throw corrupt("truncated or padded payload") }
        let payloadCRC = bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[headerSize...])) }
        guard bytes.get(at: 20) as UInt32 == payloadCRC else { throw corrupt("payload checksum mismatch") }
        let elementSize = codec == .shuffledLZ4 ? 4 : 2
        let (components, overflow) = n.multipliedReportingOverflow(by: dim)
        guard !overflow, dim >= 1, dim <= 4096, components <= 1 << 28 else { throw corrupt("impossible shape \(n) × \(dim)") }
        let plainSize = n * 8 + components * elementSize
        var plain = [UInt8](repeating: 0, count: plainSize)
        let got = bytes.withUnsafeBytes { src in
            plain.withUnsafeMutableBytes { dst in
                // SAFETY: LZ4_decompress_safe never reads past compressedSize nor writes past plainSize.
                Int(LZ4_decompress_safe((src.baseAddress! + headerSize).assumingMemoryBound(to: CChar.self),
                                        dst.baseAddress?.assumingMemoryBound(to: CChar.self),
                                        Int32(compressedSize), Int32(plainSize)))
            }
        }
        guard got == plainSize else { throw corrupt("LZ4 payload does not decode to \(plainSize) bytes") }
        var rows = [Int64](repeating: 0, count: n)
        var vectors = [Float](repeating: 0, count: components)
        plain.withUnsafeBytes { raw in
            for i in 0..<n { rows[i] = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            let base = n * 8
            for i in 0..<components {
                var bits: UInt32 = 0
                for b in 0..<elementSize { bits |= UInt32(raw[base + b * components + i]) << (8 * b) }
                vectors[i] = codec == .shuffledLZ4 ? Float(bitPattern: bits) : Float(Float16(bitPattern: UInt16(bits)))
            }
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
