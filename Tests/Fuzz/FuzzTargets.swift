import Foundation
import HNSW
import HybridStore
import QueryPlanner

// Fuzz targets for every reader of outside bytes: the filter parser (text and JSON), the import readers
// (JSONL, CSV, .npy, .fvecs), the index snapshot loader, the cold block decoder, keyword queries and schema files.
//
// One binary, the target named first:
//   built with -DFUZZING and libFuzzer (Tests/Fuzz/run.sh): `hybridstore-fuzz TARGET [libFuzzer flags] [CORPUS…]`
//   built plainly (swift build):       `hybridstore-fuzz TARGET FILE…` runs each file once (a crash
//                                       reproducer, or the committed corpus as a regression run)
//                                      `hybridstore-fuzz seed DIR` writes the seed corpus
// A target must never crash and never trap: every input is either accepted or a typed error.

/// The schema the import targets read against: every column type, integer ids.
let importSchema = Schema(
    vector: VectorSpec(dimensions: 3), id: .integer,
    columns: [.integer("year"), .real("score"), .text("body"), .boolean("flag"), .blob("raw")])
let filterColumns: [String: FilterColumnType] = ["year": .integer, "score": .real, "body": .text, "flag": .boolean]

let targets: [String: @Sendable (Data) -> Void] = [
    "filter-text": { data in
        guard let text = String(data: data, encoding: .utf8) else { return }
        guard let filter = try? Filter(parsing: text) else { return }
        // What parses prints as text that parses to the same filter, and compiles to SQL or a typed error.
        let printed = filter.description
        guard let again = try? Filter(parsing: printed), again.normalized == filter.normalized else {
            fatalError("print/parse round trip changed \(text.debugDescription) → \(printed.debugDescription)")
        }
        _ = try? filter.validate { filterColumns[$0] }
        _ = try? filter.sql(identifier: { filterColumns[$0] == nil ? nil : "c_" + $0 }, isBoolean: { $0 == "flag" })
    },
    "filter-json": { data in
        guard let json = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return }
        guard let filter = try? Filter(json: json) else { return }
        _ = filter.description
        _ = try? filter.sql(identifier: { filterColumns[$0] == nil ? nil : "c_" + $0 })
    },
    "jsonl": { data in
        try? ImportSources.jsonLines(data: data, builder: RowBuilder(schema: importSchema)) { _ in }
    },
    "csv": { data in
        try? ImportSources.csv(data: data, builder: RowBuilder(schema: importSchema), dimensions: 3) { _ in }
    },
    "npy": { data in
        if let (values, dim) = try? ImportSources.npy(data), dim > 0 { precondition(values.count % dim == 0) }
    },
    "fvecs": { data in
        if let (values, dim) = try? ImportSources.fvecs(data), dim > 0 { precondition(values.count % dim == 0) }
    },
    "snapshot": { data in
        // First byte odd: the CRC trailer is recomputed over the rest, so inputs reach the structure checks
        // behind the checksum (a forged snapshot) instead of stopping at it.
        guard var bytes = data.first.map({ _ in [UInt8](data.dropFirst()) }) else { return }
        if data.first! & 1 == 1, bytes.count >= 72 {
            let crc = bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<bytes.count - 8])) }
            withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(bytes.count - 8..<bytes.count - 4, with: $0) }
        }
        let path = scratchFile
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            fatalError("cannot write \(path)")
        }
        if let index = try? HNSWIndex.load(from: path) {
            // A snapshot that loads is searchable.
            let query = [Float](repeating: 0.5, count: index.parameters.dimensions)
            _ = try? index.search(query, k: 3)
        }
    },
    "text-query": { data in
        // First byte even: FTS5 syntax, odd: words. What compiles must be accepted by FTS5 itself: a query the
        // parser lets through and SQLite then refuses would reach the user as an SQLite error, not an offset.
        guard let mode = data.first, let text = String(data: data.dropFirst(), encoding: .utf8) else { return }
        let query = TextQuery(text, syntax: mode & 1 == 0 ? .fts5 : .words)
        guard let compiled = try? query.compiled(column: { ["body": "c2", "title": "c3"][$0] }) else { return }
        for expression in [compiled.match] + compiled.phrases {
            do {
                _ = try fts5Check.statement("SELECT count(*) FROM t WHERE t MATCH ?1").scalar([.text(expression)])
            } catch {
                fatalError(
                    "FTS5 refused \(expression.debugDescription) compiled from \(text.debugDescription): \(error)")
            }
        }
    },
    "schema-json": { data in
        // A schema file (`hybridctl create --schema`): accepted only with known members, and what is accepted reads
        // back the same from its own encoding; anything else is an `invalidSchema` error.
        guard let schema = try? Schema.checked(json: data) else { return }
        guard let encoded = try? JSONEncoder().encode(schema), let again = try? Schema.checked(json: encoded),
            again == schema
        else { fatalError("schema round trip changed \(schema)") }
    },
    "cold-block": { data in
        let bytes = [UInt8](data)
        if let block = try? ColdBlock.decode(bytes, block: 1, collection: "fuzz") {
            precondition(block.vectors.count == block.rows.count * block.dimensions)
        }
        // Partial loads (the cold step reads only the frames holding the rows it wants).
        bytes.withUnsafeBytes { raw in
            let reader = ColdBlockReader()
            guard (try? reader.load(raw, block: 1, collection: "fuzz", positions: [0, 17])) != nil else { return }
            if reader.dimensions > 0 && reader.dimensions < 1 << 16 {
                var out = [Float](repeating: 0, count: reader.dimensions)
                out.withUnsafeMutableBufferPointer { o in
                    for p in [0, 17] where p < reader.rows.count { reader.vector(at: p, into: o) }
                }
            }
        }
    },
]

/// An in-memory FTS5 table with the index's column names, to check compiled keyword queries against.
let fts5Check: Connection = {
    let c = try! Connection(path: ":memory:", create: true)
    try! c.execute("CREATE VIRTUAL TABLE t USING fts5(c2, c3); INSERT INTO t VALUES ('a disk error', 'title words')")
    return c
}()

let scratchFile = FileManager.default.temporaryDirectory.path + "/hybridstore-fuzz-\(getpid()).hsnap"

/// Writes the seed corpus: small valid inputs of every format, so fuzzing starts from the real structure.
func writeSeeds(to root: String) throws {
    func put(_ target: String, _ name: String, _ data: Data) throws {
        let dir = root + "/" + target
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: dir + "/" + name))
    }
    for (i, f) in [
        "year >= 2020 AND body = 'acme'", "NOT (score < 1.5 OR flag = TRUE)", "year IN (1, 2, 3)",
        "body IS NOT NULL AND year NOT BETWEEN 1 AND 9", "\"year\" <> -3 OR score >= 1e10",
    ].enumerated() {
        try put("filter-text", "seed\(i)", Data(f.utf8))
    }
    for (i, f) in [
        #"{"and": [{"gte": ["year", 2020]}, {"eq": ["body", "acme"]}]}"#,
        #"{"or": [{"in": ["year", [1, 2]]}, {"not": {"is_null": "body"}}]}"#,
        #"{"between": ["score", 0.5, 2]}"#,
    ].enumerated() {
        try put("filter-json", "seed\(i)", Data(f.utf8))
    }
    for (i, q) in [
        "error 0x80070005", "\"quoted phrase\" AND disk*", "body:error NOT title:(a OR b)",
        "NEAR(disk error, 5) OR ^start + next", "-{body title}: x", "e-mail \"half",
    ].enumerated() {
        try put("text-query", "seed\(i)", Data([UInt8(i % 2 == 0 ? 0 : 1)] + Array(q.utf8)))
    }
    try put(
        "jsonl", "seed0",
        Data(
            """
            {"id": 1, "vector": [1, 2, 3], "year": 2020, "score": 0.5, "body": "a", "flag": true, "raw": "AAE="}
            {"id": 2, "vector": [0, -0.0, 1e-3], "year": null}

            """.utf8))
    let schemaSeed =
        #"{"vector": {"dimensions": 4, "metric": "cosine", "connectivity": 16, "constructionEffort": 200}, "#
        + #""id": "string", "columns": [{"name": "tenant", "type": "text", "nullable": false, "filterable": true}, "#
        + #"{"name": "body", "type": "text", "nullable": true, "filterable": false, "searchable": true}], "#
        + #""tenantColumn": "tenant", "tokenizer": "porter"}"#
    try put("schema-json", "seed0", Data(schemaSeed.utf8))
    try put("csv", "seed0", Data("id,vector,year,score,body,flag\n1,\"[1, 2, 3]\",2020,0.5,\"a, b\",true\n".utf8))
    try put("csv", "seed1", Data("\u{FEFF}id,v0,v1,v2,year\n7,1,2,3,1999\n".utf8))
    func floats(_ v: [Float]) -> [UInt8] { v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
    var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".utf8)
    while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
    header.append(0x0A)
    try put(
        "npy", "seed0",
        Data(
            [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count), 0] + header
                + floats([1, 2, 3, 4, 5, 6])))
    try put("fvecs", "seed0", Data([3, 0, 0, 0] + floats([1, 2, 3]) + [3, 0, 0, 0] + floats([4, 5, 6])))
    let index = try HNSWIndex(parameters: HNSWParameters(dimensions: 4, connectivity: 4, constructionEffort: 16))
    for i in 0..<24 { try index.insert((0..<4).map { Float(sin(Double(i * 4 + $0))) }, label: UInt64(i)) }
    try index.remove(label: 3)
    try index.save(to: scratchFile, stamp: 9)
    let snapshot = try Data(contentsOf: URL(fileURLWithPath: scratchFile))
    try put("snapshot", "seed0", Data([0]) + snapshot)
    try put("snapshot", "seed1", Data([1]) + snapshot)
    unlink(scratchFile)
    for codec in ColdCodec.allCases {
        let rows = (0..<40).map { Int64($0 * 3 + 5) }
        let block = ColdBlock(rows: rows, dimensions: 5, vectors: (0..<200).map { Float(cos(Double($0))) })
        try put("cold-block", "seed-\(codec)", Data(block.encoded(codec: codec)))
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The target libFuzzer calls (a C callback cannot capture, so it is chosen before the driver starts).
nonisolated(unsafe) var selected: (@Sendable (Data) -> Void)? = nil

@main struct Fuzz {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, let target = targets[arguments[1]] else {
            FileHandle.standardError.write(
                Data(
                    "usage: hybridstore-fuzz TARGET [libFuzzer flags] [corpus…]; targets: \(targets.keys.sorted().joined(separator: ", "))\n"
                        .utf8))
            exit(64)
        }
        selected = target
        // libFuzzer ends the process itself when its time is up (exit, not a return from the driver): the
        // snapshot target's scratch file goes with it.
        atexit { unlink(scratchFile) }
        // libFuzzer sees the program name and everything after the target.
        var argc = CommandLine.argc - 1
        var argv = CommandLine.unsafeArgv
        argv[1] = argv[0]
        var shifted = argv + 1
        let rc = withUnsafeMutablePointer(to: &shifted) { pointer in
            LLVMFuzzerRunDriver(&argc, pointer) { data, size in
                selected!(data.map { Data(bytes: $0, count: size) } ?? Data())
                return 0
            }
        }
        exit(rc)
    }
}
#else
@main struct Replay {
    static func main() throws {
        let arguments = CommandLine.arguments
        if arguments.count == 3 && arguments[1] == "seed" {
            try writeSeeds(to: arguments[2])
            return
        }
        guard arguments.count >= 2, let target = targets[arguments[1]] else {
            FileHandle.standardError.write(
                Data(
                    "usage: hybridstore-fuzz TARGET FILE… | seed DIR; targets: \(targets.keys.sorted().joined(separator: ", "))\n"
                        .utf8))
            exit(64)
        }
        var count = 0
        for path in arguments.dropFirst(2) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            let files =
                isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 } : [path]
            for file in files {
                target(try Data(contentsOf: URL(fileURLWithPath: file)))
                count += 1
            }
        }
        unlink(scratchFile)
        print("\(arguments[1]): \(count) inputs ran clean")
    }
}
#endif
