import Foundation
import Testing

/// The CLI side of the defects a hostile user found (issue 17): each test fails without its fix.
@Suite(.serialized) struct HostileCLITests {
    /// The same scratch directory and helpers as `CLITests`.
    let base: CLITests
    var dir: String { base.dir }
    var store: String { base.store }

    init() throws { base = try CLITests() }

    func write(_ name: String, _ text: String) throws -> String { try base.write(name, text) }

    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func ctl(_ arguments: String...) throws -> CLI.Output { try CLI.run(arguments) }

    /// A .npy file: version 1 header with `shape` spelled as given, then `body`.
    func npy(
        _ name: String, shape: String, descr: String = "<f4", body: [UInt8], headerLength: Int? = nil
    ) throws -> String {
        var header = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }".utf8)
        while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        let n = headerLength ?? header.count
        return try write(
            name, bytes: [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + header + body)
    }

    func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
    }

    // Item 1: export is a backup once rows are cold: re-import gives every id, vector bit and value back.
    @Test func exportOfHotColdDeletedAndTenantRowsRoundTrips() throws {
        _ = try ctl(
            "create", "--store", store, "docs", "--dim", "4", "--column", "tenant:text:filterable:notnull",
            "--column", "year:integer:filterable", "--column", "score:real", "--tenant-column", "tenant")
        var lines: [String] = []
        for i in 0..<60 {
            let v = (0..<4).map { j -> String in
                if i == 5 && j == 1 { return "-0.0" }
                if i == 45 && j == 2 { return "-0.0" }
                return "\(Float(sin(Double(i * 4 + j))) * 3)"
            }
            lines.append(
                "{\"id\": \"d\(i)\", \"vector\": [\(v.joined(separator: ", "))], \"tenant\": \"\(i % 2 == 0 ? "acme" : "globex")\", \"year\": \(2000 + i), \"score\": \(Double(i) / 7)}"
            )
        }
        let input = try write("in.jsonl", lines.joined(separator: "\n") + "\n")
        #expect(try ctl("import", "--store", store, "docs", input).status == 0)
        #expect(try ctl("tier", "--store", store, "docs", "--where", "year < 2020", "--to", "cold").status == 0)
        #expect(
            try ctl("tier", "--store", store, "docs", "--where", "year >= 2040", "--to", "cold", "--float16").status
                == 0)
        #expect(try ctl("delete", "--store", store, "docs", "d7", "d50").status == 0)

        let exported = try ctl("export", "--store", store, "docs")
        #expect(exported.status == 0)
        #expect(!exported.stdout.contains("\"vector\":[]"))
        #expect(exported.stdout.contains("-0.0"))
        let copy = try write("copy.jsonl", exported.stdout)
        let other = dir + "/other"
        _ = try ctl(
            "create", "--store", other, "docs", "--dim", "4", "--column", "tenant:text:filterable:notnull",
            "--column", "year:integer:filterable", "--column", "score:real", "--tenant-column", "tenant")
        let imported = try ctl("import", "--store", other, "docs", copy)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try ctl("export", "--store", other, "docs").stdout == exported.stdout)
        // A cold row is a query vector too (`--like`), and `get --vector` shows its vector.
        let like = try ctl("query", "--store", store, "docs", "--like", "d3", "-k", "1", "--format", "jsonl")
        #expect(like.status == 0 && like.stdout.contains("\"id\":\"d3\""), "\(like.stderr)")
        let got = try ctl("get", "--store", store, "docs", "d45", "--vector", "--format", "jsonl")
        #expect(got.stdout.contains("\"vector\":[") && got.stdout.contains("-0.0"), "\(got.stdout)")
    }

    // Item 3: integers never wrap or truncate; the error names the line, column and value.
    @Test func integersOutOfRangeOrFractionalAreErrors() throws {
        _ = try ctl("create", "--store", store, "n", "--dim", "1", "--id", "int", "--column", "year:integer")
        for (line, needle) in [
            ("{\"id\": 18446744073709551615, \"vector\": [1]}", "18446744073709551615"),
            ("{\"id\": 1.5, \"vector\": [1]}", "1.5"),
            ("{\"id\": 1e19, \"vector\": [1]}", "1e+19"),
            ("{\"id\": 1, \"vector\": [1], \"year\": 1e19}", "year"),
            ("{\"id\": 1, \"vector\": [1], \"year\": -9223372036854775809}", "-9223372036854775809"),
            ("{\"id\": 1, \"vector\": [1], \"year\": 2.5}", "2.5"),
        ] {
            let file = try write("bad.jsonl", "{\"id\": 7, \"vector\": [0]}\n" + line + "\n")
            let out = try ctl("import", "--store", store, "n", file, "--upsert")
            #expect(out.status == 1, "\(line)")
            #expect(out.stderr.contains("bad.jsonl:2:") && out.stderr.contains(needle), "\(out.stderr)")
        }
        #expect(try ctl("count", "--store", store, "n").stdout == "0\n")  // the batch failed whole
        let ok = try write(
            "ok.jsonl",
            "{\"id\": 9223372036854775807, \"vector\": [1], \"year\": -9223372036854775808}\n{\"id\": 2, \"vector\": [1], \"year\": 2.0}\n"
        )
        #expect(try ctl("import", "--store", store, "n", ok).status == 0)
        #expect(
            try ctl("get", "--store", store, "n", "9223372036854775807", "--format", "jsonl").stdout
                == "{\"id\":9223372036854775807,\"year\":-9223372036854775808}\n")
    }

    // Items 6 and 7: .npy files that do not fit their attributes or their own header are errors, not crashes
    // or silent drops.
    @Test func badNpyFilesAreErrors() throws {
        _ = try ctl("create", "--store", store, "v", "--dim", "3")
        let attributes = try write("attrs.jsonl", "{\"id\": \"a\"}\n{\"id\": \"b\"}\n")
        let three = try npy("three.npy", shape: "(3, 3)", body: floatBytes((0..<9).map(Float.init)))
        var out = try ctl("import", "--store", store, "v", three, "--attributes", attributes)
        #expect(out.status == 1 && out.stderr.contains("3 vectors but 2 attribute lines"), "\(out.stderr)")
        #expect(try ctl("count", "--store", store, "v").stdout == "0\n")
        let cases: [(String, String)] = [
            (
                try npy("runs-past.npy", shape: "(1, 3)", body: floatBytes([1, 2, 3]), headerLength: 60_000),
                "header says"
            ),
            (try npy("negative.npy", shape: "(-1, 3)", body: floatBytes([1, 2, 3])), "shape (-1, 3)"),
            (
                try npy("huge.npy", shape: "(4611686018427387904, 4)", body: floatBytes([1, 2, 3, 4])),
                "needs more bytes"
            ),
            (try npy("short.npy", shape: "(2, 3)", body: floatBytes([1, 2, 3])), "needs more bytes"),
            (try npy("three-d.npy", shape: "(1, 3, 1)", body: floatBytes([1, 2, 3])), "2-D"),
            (try write("tiny.npy", bytes: [0x93] + Array("NUMPY".utf8) + [1, 0]), "not a .npy file"),
        ]
        for (file, needle) in cases {
            out = try ctl("import", "--store", store, "v", file)
            #expect(out.status == 1 && out.stderr.contains(needle), "\(file): \(out.status) \(out.stderr)")
        }
        // A truncated .fvecs names what is missing.
        let fvecs = try write(
            "cut.fvecs", bytes: [3, 0, 0, 0] + floatBytes([1, 2, 3]) + [3, 0, 0, 0] + floatBytes([1]))
        out = try ctl("import", "--store", store, "v", fvecs)
        #expect(
            out.status == 1
                && out.stderr.contains("cut.fvecs:2: truncated .fvecs record: 3 components declared, 1 present"),
            "\(out.stderr)")
    }

    // Items 8, 10, 11 and 16: huge k, read commands that must not create, read-only opens, messages and codes.
    @Test func commandLineEdgesHaveClearErrorsAndCodes() throws {
        // Item 10: a read command pointed at a directory that is not a store writes nothing there.
        let plain = dir + "/plain"
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: true)
        var out = try ctl("count", "--store", plain, "docs")
        #expect(out.status == 1 && out.stderr.contains("no store at"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: plain).isEmpty)

        _ = try ctl("create", "--store", store, "docs", "--dim", "2", "--column", "score:real")
        let rows = try write("rows.csv", "\u{FEFF}id,vector,score\na,\"[1, 0]\",0.5\nb,\"[0, 1]\",1.5\n")
        out = try ctl("import", "--store", store, "docs", rows)
        #expect(out.status == 0, "BOM: \(out.stderr)")
        // Item 15: the import left a snapshot, so the next command does not rebuild the index.
        #expect(try FileManager.default.contentsOfDirectory(atPath: store).contains { $0.hasSuffix(".hsnap") })

        // Item 8.
        out = try ctl(
            "query", "--store", store, "docs", "--vector", "[1, 0]", "-k", "9223372036854775807", "--format", "jsonl")
        #expect(out.status == 0 && out.stdout.split(separator: "\n").count == 2, "\(out.stderr)")
        // Item 11: --read-only reads and refuses writes.
        out = try ctl("count", "--store", store, "docs", "--read-only")
        #expect(out.status == 0 && out.stdout == "2\n")
        out = try ctl("delete", "--store", store, "docs", "a", "--read-only")
        #expect(out.status == 1 && out.stderr.contains("read-only"))

        // Item 16.
        out = try ctl("query", "--store", store, "docs", "--vector", "[1, 0]", "-k", "-1")
        #expect(out.status == 64 && out.stderr.contains("-k must be at least 1, got -1"), "\(out.stderr)")
        for dim in ["0", "-1"] {
            out = try ctl("create", "--store", store, "x", "--dim", dim)
            #expect(out.status == 64 && out.stderr.contains("--dim must be at least 1, got \(dim)"), "\(out.stderr)")
        }
        let nan = try write("nan.jsonl", "{\"id\": \"c\", \"vector\": [1, 1], \"score\": \"NaN\"}\n")
        out = try ctl("import", "--store", store, "docs", nan)
        #expect(out.status == 1 && out.stderr.contains("NaN and infinities cannot be stored"), "\(out.stderr)")
        out = try ctl("get", "--store", store, "docs", "nope", "nada")
        #expect(out.status == 1 && out.stderr.contains("2 of 2 ids not found"))
        out = try ctl("get", "--store", store, "docs", "a", "nope")
        #expect(out.status == 1 && out.stdout.contains("a"))
        out = try ctl("demo", "--rows", "200", "--store", store)
        _ = try ctl("demo", "--rows", "200", "--store", dir + "/demo")
        out = try ctl("demo", "--rows", "200", "--store", dir + "/demo")
        #expect(out.status == 1 && out.stderr.contains("already has `articles`"))
        // Item 5 in the outputs: a distance the engine can return prints in every format.
        let huge = try write("huge.jsonl", "{\"id\": \"h\", \"vector\": [3.4e38, 3.4e38]}\n")
        out = try ctl("import", "--store", store, "docs", huge)
        #expect(out.status == 1 && out.stderr.contains("squared norm"), "\(out.stderr)")
    }

    // CSV output quotes by Unicode scalar: a quote or comma followed by a combining mark is still quoted.
    @Test func csvQuotesQuotesBeforeCombiningMarks() throws {
        _ = try ctl("create", "--store", store, "docs", "--dim", "2", "--column", "body:text")
        let rows = try write(
            "rows.jsonl", "{\"id\": \"a\", \"vector\": [1, 0], \"body\": \"x\\\"\u{0740}y,\u{0301}z\"}\n")
        #expect(try ctl("import", "--store", store, "docs", rows).status == 0)
        let out = try ctl("get", "--store", store, "docs", "a", "--format", "csv")
        #expect(out.stdout == "id,body\na,\"x\"\"\u{0740}y,\u{0301}z\"\n", "\(out.stdout.debugDescription)")
    }

    // Item 12: a query quota of 1 a day lets one CLI query through, not three.
    @Test func queryQuotaHoldsAcrossCommands() throws {
        _ = try ctl(
            "create", "--store", store, "docs", "--dim", "2", "--column", "tenant:text:filterable:notnull",
            "--tenant-column", "tenant")
        let rows = try write("rows.jsonl", "{\"id\": \"a\", \"vector\": [1, 0]}\n")
        #expect(try ctl("import", "--store", store, "docs", rows, "--tenant", "acme").status == 0)
        #expect(
            try ctl("tenants", "quota", "--store", store, "acme", "--max-queries", "1", "--query-period", "86400")
                .status == 0)
        let statuses = try (0..<3).map { _ in
            try ctl("query", "--store", store, "docs", "--vector", "[1, 0]", "--tenant", "acme").status
        }
        #expect(statuses == [0, 1, 1])
    }

    // Item 16: an import stopped by a refused batch (here a row quota) says what earlier batches committed.
    @Test func importStoppedByAQuotaSaysWhatWasCommitted() throws {
        _ = try ctl(
            "create", "--store", store, "docs", "--dim", "2", "--column", "tenant:text:filterable:notnull",
            "--tenant-column", "tenant")
        #expect(try ctl("tenants", "create", "--store", store, "acme", "--max-rows", "3").status == 0)
        let rows = try write(
            "rows.jsonl", (0..<5).map { "{\"id\": \"r\($0)\", \"vector\": [\($0), 0]}" }.joined(separator: "\n"))
        let out = try ctl("import", "--store", store, "docs", rows, "--tenant", "acme", "--batch", "2")
        #expect(out.status == 1)
        #expect(
            out.stderr.contains("quota") && out.stderr.contains("2 rows in earlier batches were committed"),
            "\(out.stderr)")
        #expect(try ctl("count", "--store", store, "docs").stdout == "2\n")
    }

    // Fuzzing in CI: every committed corpus input (seeds, and each crash the fuzzer found) runs clean through
    // its target in this build too.
    @Test(arguments: [
        "filter-text", "filter-json", "jsonl", "csv", "npy", "fvecs", "snapshot", "cold-block", "text-query",
        "schema-json",
    ])
    func committedFuzzCorpusRunsClean(_ target: String) throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/Corpus/\(target)").standardizedFileURL.path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().appendingPathComponent(
            "hybridstore-fuzz")
        process.arguments = [target, corpus]
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let count = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        #expect(count >= 1, "\(text)")
    }
}
