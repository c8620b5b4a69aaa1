import Foundation
import Testing
import TestSupport

/// Runs the built `hybridctl` binary and captures its output and exit code.
struct CLI {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("hybridctl")
            .path
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["HYBRIDSTORE"] = nil
        env["COLUMNS"] = "80"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// A class, so that each test's directory goes away with it (`deinit`), whatever the test did.
@Suite(.serialized) final class CLITests {
    let dir: String
    var store: String { dir + "/store" }

    init() throws {
        dir = temporaryPath("hybridctl-test")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func ctl(_ arguments: String...) throws -> CLI.Output { try CLI.run(arguments) }

    @Test func rootHelpIsTheWholeCommandList() throws {
        let out = try ctl("--help")
        #expect(out.status == 0)
        #expect(
            out.stdout == """
                OVERVIEW: Create, import, query and inspect HybridStore stores (vectors +
                columns, one query planner).

                Every command takes the store directory with --store DIR or the HYBRIDSTORE
                environment variable.
                Start with `hybridctl demo`, which builds a demo store and runs hybrid queries.

                USAGE: hybridctl <subcommand>

                OPTIONS:
                  -h, --help              Show help information.

                SUBCOMMANDS:
                  demo                    Build a demo store from generated articles and run
                                          hybrid queries, wide to very narrow.
                  create                  Create a collection.
                  searchable              Make text columns of a collection searchable: builds
                                          their keyword index from the rows.
                  collections             List the collections.
                  describe                Show a collection's schema and size.
                  drop                    Drop a collection and all its rows.
                  import                  Import rows from JSONL, CSV, a dataset directory, or
                                          .fvecs/.npy vectors with a JSONL of attributes.
                  query                   Find the k nearest rows, the best keyword matches
                                          (--text), or both fused, optionally under a filter.
                  explain                 Run a query and show the plan, estimates, work and
                                          time.
                  get                     Read rows by id.
                  count                   Count rows, optionally those matching a filter.
                  delete                  Delete rows by id or by filter, in one transaction.
                  tier                    Move rows between the hot tier (RAM, graph) and the
                                          cold tier (LZ4 blocks in the database).
                  stats                   Rows, bytes on disk, RAM, tiers and per-column
                                          statistics.
                  checkpoint              Write index snapshots now and trim the change log.
                  verify                  Compare every collection's rows with its index; exit
                                          code 1 when anything disagrees.
                  export                  Write every row as JSONL (id, vector, columns) to
                                          stdout.
                  tenants                 Create tenants, set their quotas, drop them.
                  usage                   Export tenants' usage for billing: stored rows and
                                          bytes per tier, rows written and deleted, queries,
                                          vectors scored.

                  See 'hybridctl help <subcommand>' for detailed help.

                """)
    }

    @Test func tenantsScopeQuotasUsageAndDrop() throws {
        var out = try ctl(
            "create", "--store", store, "docs", "--dim", "2", "--column", "tenant:text:filterable:notnull",
            "--column", "body:text", "--tenant-column", "tenant")
        #expect(out.status == 0, "\(out.stderr)")
        let acme = try write(
            "acme.jsonl",
            """
            {"id": "a1", "vector": [0, 0], "body": "one"}
            {"id": "a2", "vector": [1, 0], "body": "two"}

            """)
        let globex = try write(
            "globex.jsonl",
            """
            {"id": "g1", "vector": [0.1, 0], "tenant": "globex", "body": "three"}

            """)
        out = try ctl("import", "--store", store, "docs", acme, "--tenant", "acme")
        #expect(out.status == 0, "\(out.stderr)")
        out = try ctl("import", "--store", store, "docs", globex)
        #expect(out.status == 0, "\(out.stderr)")

        // Scoped reads see only the tenant's rows, whatever the filter says.
        out = try ctl(
            "query", "--store", store, "docs", "--vector", "[0, 0]", "-k", "5", "--tenant", "acme",
            "--where", "tenant = 'globex' OR body = 'three' OR body = 'one'", "--select", "body", "--format", "csv")
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout == "id,distance,body\na1,0.0,one\n")
        out = try ctl("count", "--store", store, "docs", "--tenant", "globex")
        #expect(out.stdout == "1\n")
        out = try ctl(
            "get", "--store", store, "docs", "g1", "a1", "--tenant", "acme", "--select", "body", "--format", "csv")
        #expect(out.stdout == "id,body\na1,one\n")
        out = try ctl("explain", "--store", store, "docs", "--vector", "[0, 0]", "--tenant", "acme")
        #expect(out.stdout.contains("filter: tenant = 'acme'") && out.stdout.contains("plan: exact"))
        out = try ctl("delete", "--store", store, "docs", "g1", "--tenant", "acme")
        #expect(out.stdout == "deleted 0 rows\n")

        // Quotas refuse the import whole, with the numbers.
        out = try ctl("tenants", "quota", "--store", store, "acme", "--max-rows", "2")
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout == "tenant acme: max rows 2, max bytes unlimited, max queries unlimited\n")
        let more = try write(
            "more.jsonl",
            """
            {"id": "a3", "vector": [2, 0], "body": "x"}

            """)
        out = try ctl("import", "--store", store, "docs", more, "--tenant", "acme")
        #expect(out.status == 1)
        #expect(out.stderr.contains("tenant `acme`: quota of 2 rows exceeded: it has 2, the write adds 1"))

        // Usage for billing; the scoped query and explain above are metered (get and count are not queries).
        out = try ctl("usage", "--store", store, "--format", "csv")
        #expect(out.status == 0, "\(out.stderr)")
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(
            lines.first?.hasPrefix(
                "tenant,rows,bytes,hot_rows,hot_bytes,cold_rows,cold_bytes,rows_written,rows_deleted,") == true)
        #expect(lines.count == 3)
        let acmeLine = lines[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(
            acmeLine[0] == "acme" && acmeLine[1] == "2" && acmeLine[2] == "\(2 * (8 + 4 + 3))" && acmeLine[10] == "2")
        #expect(acmeLine[13] == "2")
        out = try ctl(
            "usage", "--store", store, "--tenant", "globex", "--format", "json", "--since", "2020-01-01T00:00:00Z")
        let json = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]]
        #expect(json?.first?["tenant"] as? String == "globex" && json?.first?["rows_written"] as? Int == 1)
        #expect(json?.first?["since"] as? String == "2020-01-01T00:00:00Z")

        out = try ctl("tenants", "drop", "--store", store, "acme")
        #expect(out.stdout == "dropped tenant acme: 2 rows\n")
        out = try ctl("count", "--store", store, "docs")
        #expect(out.stdout == "1\n")
        out = try ctl("verify", "--store", store)
        #expect(out.status == 0, "\(out.stdout)")
    }

    @Test func createImportQueryExplainGetCountDeleteVerifyExport() throws {
        var out = try ctl(
            "create", "--store", store, "docs", "--dim", "3", "--metric", "l2",
            "--column", "tenant:text:filterable:notnull", "--column", "year:integer:filterable", "--column", "body:text"
        )
        #expect(out.status == 0)
        #expect(out.stdout == "created collection docs: 3-d l2, 3 columns\n")

        let jsonl = try write(
            "a.jsonl",
            """
            {"id": "a", "vector": [0, 0, 0], "tenant": "acme", "year": 2020, "body": "alpha"}
            {"id": "b", "vector": [1, 0, 0], "tenant": "acme", "year": 2021, "body": "beta"}
            {"id": "c", "vector": [0, 1, 0], "tenant": "globex", "year": 2019, "body": "gamma, with comma"}

            """)
        out = try ctl("import", "--store", store, "docs", jsonl)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.hasPrefix("imported 3 rows into docs in "))

        let csv = try write(
            "b.csv",
            #"""
            id,tenant,year,body,v0,v1,v2
            d,globex,2022,"delta ""quoted""",0,0,1
            e,acme,,eps,5,5,5

            """#)
        out = try ctl("import", "--store", store, "docs", csv)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.hasPrefix("imported 2 rows into docs"))

        out = try ctl(
            "query", "--store", store, "docs", "--vector", "[0.1, 0, 0]", "-k", "3", "--select", "tenant,year")
        #expect(out.status == 0)
        #expect(
            out.stdout == """
                id  distance  tenant  year
                --  --------  ------  ----
                a   0.0100    acme    2020
                b   0.8100    acme    2021
                c   1.0100    globex  2019

                """)

        out = try ctl(
            "query", "--store", store, "docs", "--vector", "[0.1, 0, 0]", "-k", "2",
            "--where", "tenant = 'globex'", "--select", "body", "--format", "csv")
        #expect(out.stdout == "id,distance,body\nc,1.01,\"gamma, with comma\"\nd,1.01,\"delta \"\"quoted\"\"\"\n")

        out = try ctl(
            "query", "--store", store, "docs", "--like", "b", "-k", "1", "--select", "year", "--format", "jsonl")
        #expect(out.stdout == "{\"distance\":0,\"id\":\"b\",\"year\":2021}\n")

        out = try ctl("explain", "--store", store, "docs", "--vector", "[0,0,0]", "--where", "year >= 2020")
        #expect(out.status == 0)
        #expect(out.stdout.contains("plan: exact"))
        #expect(out.stdout.contains("matches: estimated 3 (60.0000%), actual 3"))

        out = try ctl("count", "--store", store, "docs", "--where", "tenant = 'acme' AND year IS NOT NULL")
        #expect(out.stdout == "2\n")
        out = try ctl("count", "--store", store, "docs", "--format", "json")
        #expect(out.stdout == "{\"count\":5}\n")

        out = try ctl("get", "--store", store, "docs", "e", "nope", "--format", "json")
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: 1 of 2 ids not found\n")
        #expect(out.stdout.contains("\"year\" : null"))

        out = try ctl("delete", "--store", store, "docs", "--where", "year < 2020")
        #expect(out.stdout == "deleted 1 rows\n")
        out = try ctl("delete", "--store", store, "docs", "e")
        #expect(out.stdout == "deleted 1 rows\n")

        out = try ctl("verify", "--store", store)
        #expect(out.status == 0)
        #expect(out.stdout == "docs: 3 rows, 3 vectors, 3 index nodes, 0 mismatches\nok\n")

        out = try ctl("export", "--store", store, "docs")
        #expect(
            out.stdout == """
                {"body":"alpha","id":"a","tenant":"acme","year":2020,"vector":[0.0,0.0,0.0]}
                {"body":"beta","id":"b","tenant":"acme","year":2021,"vector":[1.0,0.0,0.0]}
                {"body":"delta \\"quoted\\"","id":"d","tenant":"globex","year":2022,"vector":[0.0,0.0,1.0]}

                """)

        out = try ctl("collections", "--store", store)
        #expect(
            out.stdout
                == "collection  rows  dim  metric  columns\n----------  ----  ---  ------  ----------------\ndocs        3     3    l2      tenant,year,body\n"
        )
        out = try ctl("stats", "--store", store, "docs", "--format", "json")
        #expect(out.status == 0 && out.stdout.contains("\"rows\" : 3"))
        out = try ctl("tier", "--store", store, "docs", "--where", "tenant = 'acme'", "--to", "cold")
        #expect(out.stdout == "moved 2 rows to cold; now hot 1, cold 2 in 1 blocks\n")
        out = try ctl("query", "--store", store, "docs", "--vector", "[0.1, 0, 0]", "-k", "2", "--select", "tenant")
        #expect(out.stdout == "id  distance  tenant\n--  --------  ------\na   0.0100    acme\nb   0.8100    acme\n")
        out = try ctl(
            "query", "--store", store, "docs", "--vector", "[0.1, 0, 0]", "-k", "2", "--select", "tenant", "--hot-only")
        #expect(out.status == 0 && !out.stdout.contains("acme"), "the acme rows are cold")
        out = try ctl(
            "query", "--store", store, "docs", "--vector", "[0.1, 0, 0]", "-k", "2", "--cold-effort", "2", "--format",
            "jsonl")
        #expect(out.status == 0 && out.stdout.split(separator: "\n").count == 2)
        out = try ctl("query", "--store", store, "docs", "--vector", "[0.1, 0, 0]", "--cold-effort", "0")
        #expect(out.status == 64 && out.stderr.contains("--cold-effort must be positive"))
        out = try ctl("stats", "--store", store, "docs")
        #expect(out.stdout.contains("  cold: 2 rows in 1 blocks"))
        out = try ctl("tier", "--store", store, "docs", "--to", "hot")
        #expect(out.stdout == "moved 2 rows to hot; now hot 3, cold 0 in 0 blocks\n")
        out = try ctl("checkpoint", "--store", store)
        #expect(out.stdout == "checkpoint written\n")
        out = try ctl("drop", "--store", store, "docs")
        #expect(out.stdout == "dropped collection docs\n")
    }

    /// `tier` checkpoints, so the recall curves over both tiers that the move calls for are measured then (a move of
    /// 600 rows queues no checkpoint of its own, and without this one `stats` said "uncalibrated").
    @Test func tieringCalibratesTheColdTier() throws {
        var x: UInt64 = 7  // a linear congruential generator: seeded vectors
        let lines = (0..<1_200).map { i in
            let v = (0..<8).map { _ in
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return String(format: "%.4f", Double((x >> 33) % 10_000) / 10_000)
            }
            return "{\"id\": \(i), \"vector\": [\(v.joined(separator: ", "))], \"n\": \(i)}"
        }
        let rows = try write("rows.jsonl", lines.joined(separator: "\n") + "\n")
        var out = try ctl(
            "create", "--store", store, "v", "--dim", "8", "--id", "int", "--column", "n:integer:filterable")
        #expect(out.status == 0, "\(out.stderr)")
        out = try ctl("import", "--store", store, "v", rows)
        #expect(out.status == 0, "\(out.stderr)")
        out = try ctl("tier", "--store", store, "v", "--where", "n < 600", "--to", "cold")
        #expect(out.stdout.hasPrefix("moved 600 rows to cold"), "\(out.stdout)\(out.stderr)")
        out = try ctl("stats", "--store", store, "v")
        #expect(out.stdout.contains("over both tiers (100 queries, 600 cold rows): cold effort"), "\(out.stdout)")
        #expect(out.stdout.contains("; hot rows exact): cold effort"), "\(out.stdout)")
        #expect(out.stdout.contains("following the data, spread 0."), "\(out.stdout)")
        #expect(!out.stdout.contains("uncalibrated"), "\(out.stdout)")
    }

    @Test func datasetDirectoryAndBadLines() throws {
        // A FORMAT.md dataset: 4 rows of 2-d vectors.
        let dataset = dir + "/ds"
        try FileManager.default.createDirectory(atPath: dataset, withIntermediateDirectories: true)
        _ = try write("ds/meta.json", #"{"name": "tiny", "dim": 2, "metric": "l2", "count": 4, "query_count": 0}"#)
        let floats: [Float] = [0, 0, 1, 0, 0, 1, 1, 1]
        try floats.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: dataset + "/base.f32"))
        _ = try write(
            "ds/base.jsonl",
            (0..<4).map { "{\"id\": \($0), \"price\": \(Double($0) + 0.5)}" }.joined(separator: "\n") + "\n")
        var out = try ctl(
            "create", "--store", store, "tiny", "--dim", "2", "--id", "int", "--column", "price:real:filterable")
        #expect(out.status == 0)
        out = try ctl("import", "--store", store, "tiny", dataset)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.hasPrefix("imported 4 rows into tiny"))
        out = try ctl("query", "--store", store, "tiny", "--vector", "[1, 1]", "-k", "2", "--where", "price < 3")
        #expect(out.stdout == "id  distance  price\n--  --------  -----\n1   1.0000    1.5\n2   1.0000    2.5\n")

        // A bad line stops the import: earlier batches stay, the line number is reported, exit code 1.
        let bad = try write(
            "bad.jsonl",
            """
            {"id": 10, "vector": [0, 0], "price": 1}
            {"id": 11, "vector": [0, 0], "price": 2}
            {"id": 12, "vector": [0, 0, 0], "price": 3}
            {"id": 13, "vector": [0, 0], "price": 4}
            """)
        out = try ctl("import", "--store", store, "tiny", bad, "--batch", "2")
        #expect(out.status == 1)
        #expect(
            out.stderr
                == "hybridctl: \(bad):3: collection `tiny`, id 12: vector expects 2 dimensions, got 3; 2 rows in earlier batches were committed (the failing batch was not)\n"
        )
        #expect(try ctl("count", "--store", store, "tiny").stdout == "6\n")
        // --skip-bad counts and skips instead.
        let worse = try write(
            "worse.jsonl",
            """
            {"id": 20, "vector": [0, 0], "price": 1}
            not json
            {"id": 21, "vector": [0, 0], "price": "cheap"}
            {"id": 22, "vector": [0, 0]}
            """)
        out = try ctl("import", "--store", store, "tiny", worse, "--skip-bad")
        #expect(out.status == 0)
        #expect(out.stdout.contains("imported 2 rows") && out.stdout.hasSuffix("skipped 2 bad lines\n"))
        #expect(out.stderr.contains("worse.jsonl:2: skipped: not valid JSON: "))
        #expect(out.stderr.contains("worse.jsonl:3: skipped: column `price` expects real, got \"cheap\""))
    }

    @Test func demoRunsAndReportsRecall() throws {
        let out = try ctl("demo", "--rows", "5000", "--store", store)
        #expect(out.status == 0, "\(out.stderr)")
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "HybridStore demo: 5000 articles, 64-d cosine embeddings, store \(store)")
        #expect(lines.filter { $0.hasPrefix("[") && $0.contains("/6] ") }.count == 6)
        #expect(lines.filter { $0.hasPrefix("  plan ") }.count == 6)
        // The effort comes from the recall curve the import's checkpoint measured on this (easy) data.
        #expect(out.stdout.contains("plan graph ef "))
        #expect(out.stdout.contains("plan exact"))
        #expect(
            lines.contains("mean recall@10 against exact search: 1.000")
                || lines.contains { $0.hasPrefix("mean recall@10 against exact search: 0.9") })
        // The kept store answers queries.
        let q = try ctl("count", "--store", store, "articles", "--where", "year >= 2000")
        #expect(q.stdout == "5000\n")
    }

    @Test func errorsAreOneLineWithExitCodes() throws {
        var out = try ctl("query", "docs", "--vector", "[1]")
        #expect(out.status == 64)
        #expect(out.stderr.hasPrefix("Error: no store given: pass --store DIR or set HYBRIDSTORE\n"))
        out = try ctl("count", "--store", dir + "/missing", "docs")
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: no store at \(dir)/missing (the directory does not exist)\n")
        out = try ctl("create", "--store", store, "docs", "--dim", "2")
        out = try ctl("query", "--store", store, "docs", "--vector", "[1, 2, 3]")
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: collection `docs`: query vector expects 2 dimensions, got 3\n")
        out = try ctl("query", "--store", store, "docs", "--vector", "[1, 2]", "--where", "nope <")
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: invalid filter: expected a value after '<', found the end at offset 6\n")
        out = try CLI.run(["count", "docs"], environment: ["HYBRIDSTORE": store])
        #expect(out.status == 0 && out.stdout == "0\n")
        out = try ctl("query", "--store", store, "docs", "--vector", "[1, 2]", "--where", "nope = 1")
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: collection `docs`: unknown column 'nope'\n")
        out = try ctl("query", "--store", store, "docs", "--vector", "[1, 2]", "--select", "nope")
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: collection `docs` has no column `nope`\n")
        let malformed = try write(
            "malformed.jsonl", "{\"id\": \"a\", \"vector\": [1, 2]}\n{\"id\": \"b\", \"vector\": [1, \n")
        out = try ctl("import", "--store", store, "docs", malformed)
        #expect(out.status == 1)
        // The parser's own reason.
        #expect(
            out.stderr
                == "hybridctl: \(malformed):2: not valid JSON: Unexpected end of file during JSON parse.; no rows were committed\n"
        )
        // A number too large for a double is not "not an object", and an array is said to be one.
        for (text, reason) in [
            (#"{"id": "c", "vector": [1, 2], "n": 1e400}"#, "not valid JSON: Number 1e400 is not representable"),
            ("[1, 2]", "not a JSON object (an array)"),
        ] {
            out = try ctl("import", "--store", store, "docs", try write("bad.jsonl", text + "\n"))
            #expect(out.status == 1 && out.stderr.contains("bad.jsonl:1: \(reason)"), "\(out.stderr)")
        }
        out = try ctl("create", "--store", store, "x", "--dim", "2", "--column", "a:float")
        #expect(out.status == 64)
        #expect(out.stderr.contains("--column 'a:float': expected name:type"))
        // A schema file's misspelt member is refused and named, and no collection is made.
        let schema = try write(
            "schema.json",
            #"{"vector": {"dimensions": 2, "metric": "l2", "connectivity": 16, "constructionEffort": 100}, "id": "string", "#
                + #""columns": [{"name": "tenant", "type": "text", "nullable": false, "filterable": true}], "tenantColum": "tenant"}"#
        )
        out = try ctl("create", "--store", store, "t", "--schema", schema)
        #expect(out.status == 1)
        #expect(out.stderr == "hybridctl: schema \(schema): the schema has an unknown member `tenantColum`\n")
        out = try ctl("collections", "--store", store)
        #expect(
            out.stdout.split(separator: "\n").dropFirst(2).compactMap { $0.split(separator: " ").first } == ["docs"])
    }
}
