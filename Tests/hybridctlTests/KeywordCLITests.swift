import Foundation
import Testing

/// Keyword and hybrid search from the command line: searchable columns at create and later, `query --text`
/// alone and with a vector, explain of both arms, errors and exit codes, and `verify --repair`.
@Suite(.serialized) struct KeywordCLITests {
    let base: CLITests
    var dir: String { base.dir }
    var store: String { base.store }

    init() throws { base = try CLITests() }

    func ctl(_ arguments: String...) throws -> CLI.Output { try CLI.run(arguments) }

    @Test func keywordAndHybridQueries() throws {
        let created = try ctl(
            "create", "--store", store, "docs", "--dim", "3", "--column", "tenant:text:filterable:notnull",
            "--column", "year:integer:filterable", "--column", "body:text:searchable", "--tokenizer", "porter",
            "--tenant-column", "tenant")
        #expect(created.status == 0, "\(created.stderr)")
        let rows = """
            {"id": "a", "vector": [1, 0, 0], "tenant": "acme", "year": 2021, "body": "disk errors on boot, code 0x80070005"}
            {"id": "b", "vector": [0.9, 0.1, 0], "tenant": "acme", "year": 2019, "body": "network timeout while installing"}
            {"id": "c", "vector": [0, 1, 0], "tenant": "globex", "year": 2022, "body": "the disk is full"}
            {"id": "d", "vector": [0, 0, 1], "tenant": "globex", "year": 2023, "body": "printer jam"}
            """
        let file = try base.write("docs.jsonl", rows + "\n")
        #expect(try ctl("import", "--store", store, "docs", file).status == 0)
        // Keyword-only: porter stems "error" to match "errors"; the code is found as a word.
        let keyword = try ctl("query", "--store", store, "docs", "--text", "error 0x80070005", "--format", "jsonl")
        #expect(keyword.status == 0, "\(keyword.stderr)")
        #expect(
            keyword.stdout.split(separator: "\n").count == 1 && keyword.stdout.contains("\"id\":\"a\""),
            "\(keyword.stdout)")
        #expect(keyword.stdout.contains("\"score\":"))
        // Hybrid under a filter: only rows of 2020 on, both arms' rows fused.
        let hybrid = try ctl(
            "query", "--store", store, "docs", "--text", "disk", "--vector", "[0, 0, 1]", "--where", "year >= 2020",
            "--fusion", "rrf:10", "--format", "jsonl")
        let ids = hybrid.stdout.split(separator: "\n").compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String
        }
        #expect(Set(ids) == ["a", "c", "d"], "\(hybrid.stdout) \(hybrid.stderr)")
        #expect(ids.first == "c")  // found by both arms
        // Explain names both arms and the fusion.
        let explained = try ctl(
            "explain", "--store", store, "docs", "--text", "disk", "--like", "d", "--fusion", "weighted:0.7")
        #expect(
            explained.stdout.contains("keyword arm: posting lists in memory") && explained.stdout.contains("vector arm")
                && explained.stdout.contains("weighted (vector 0.70"), "\(explained.stdout)")
        // As a tenant: nothing of another tenant's.
        let scoped = try ctl(
            "query", "--store", store, "docs", "--text", "disk", "--tenant", "acme", "--format", "jsonl")
        #expect(
            scoped.stdout.split(separator: "\n").count == 1 && scoped.stdout.contains("\"id\":\"a\""),
            "\(scoped.stdout) \(scoped.stderr)")
        // Errors: bad FTS5 syntax names its offset (exit 1); a bad flag is a usage error (exit 64).
        let bad = try ctl("query", "--store", store, "docs", "--text", "disk AND (", "--text-syntax", "fts5")
        #expect(bad.status == 1 && bad.stderr.contains("offset 10"), "\(bad.stderr)")
        #expect(try ctl("query", "--store", store, "docs", "--text", "disk", "--fusion", "weighted:2").status == 64)
        #expect(
            try ctl("query", "--store", store, "docs", "--text", "disk", "--vector", "[1,0,0]", "--like", "a").status
                == 64)
        #expect(try ctl("create", "--store", store, "x", "--dim", "3", "--column", "n:integer:searchable").status == 64)
        #expect(try ctl("verify", "--store", store).status == 0)
    }

    @Test func aColumnBecomesSearchableLater() throws {
        _ = try ctl("create", "--store", store, "notes", "--dim", "2", "--column", "body:text", "--column", "n:integer")
        let lines = (0..<50).map {
            #"{"id": "n\#($0)", "vector": [\#($0), 1], "body": "note number \#($0) \#($0 % 5 == 0 ? "urgent" : "")", "n": \#($0)}"#
        }
        let file = try base.write("notes.jsonl", lines.joined(separator: "\n") + "\n")
        #expect(try ctl("import", "--store", store, "notes", file).status == 0)
        #expect(try ctl("query", "--store", store, "notes", "--text", "urgent").status == 1)  // not searchable yet
        #expect(try ctl("searchable", "--store", store, "notes", "n").status == 1)  // not text
        let made = try ctl("searchable", "--store", store, "notes", "body")
        #expect(
            made.status == 0 && made.stderr.contains("indexing notes: 50 of 50 rows"), "\(made.stdout) \(made.stderr)")
        let urgent = try ctl("query", "--store", store, "notes", "--text", "urgent", "-k", "50", "--format", "jsonl")
        #expect(urgent.stdout.split(separator: "\n").count == 10, "\(urgent.stdout)")
        #expect(try ctl("describe", "--store", store, "notes").stdout.contains("keyword tokenizer: unicode61"))
        let repaired = try ctl("verify", "--store", store, "--repair")
        #expect(repaired.status == 0 && repaired.stdout.contains("ok"), "\(repaired.stdout)")
    }
}
