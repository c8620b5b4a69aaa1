import Foundation
import Testing
import HybridStore

/// Every bad input gets its typed error and leaves the store exactly as it was.
@Suite struct BadInputTests {
    @Test func badWritesRollBackTheWholeTransaction() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        let vectors = try fill(store, chunks, count: 40)
        let good: [Float] = Array(repeating: 0.5, count: 8)
        let probe = try store.search(chunks, near: vectors[0], k: 10, returning: ["body"])

        let cases: [(HybridStoreError.Code, (WriteTransaction) throws -> Void)] = [
            (.dimensionMismatch, { try $0.insert("x", into: chunks, vector: [1, 2], values: ["tenant": .text("a")]) }),
            (
                .nonFiniteVector,
                { try $0.insert("x", into: chunks, vector: good.map { $0 * .nan }, values: ["tenant": .text("a")]) }
            ),
            (
                .nonFiniteVector,
                { try $0.upsert("r1", into: chunks, vector: [.infinity] + good.dropFirst(), values: [:]) }
            ),
            (
                .unknownColumn,
                { try $0.insert("x", into: chunks, vector: good, values: ["tenant": .text("a"), "nope": .integer(1)]) }
            ),
            (.typeMismatch, { try $0.insert("x", into: chunks, vector: good, values: ["tenant": .integer(3)]) }),
            (.typeMismatch, { try $0.update("r1", in: chunks, values: ["year": .text("1999")]) }),
            (.typeMismatch, { try $0.update("r1", in: chunks, values: ["score": .real(.nan)]) }),
            (.typeMismatch, { try $0.insert(7, into: chunks, vector: good, values: ["tenant": .text("a")]) }),
            (.missingValue, { try $0.insert("x", into: chunks, vector: good, values: ["year": .integer(1)]) }),
            (.missingValue, { try $0.update("r1", in: chunks, values: ["tenant": .null]) }),
            (.missingValue, { try $0.upsert("brand-new", into: chunks, vector: nil, values: ["tenant": .text("a")]) }),
            (.duplicateID, { try $0.insert("r1", into: chunks, vector: good, values: ["tenant": .text("a")]) }),
            (.notFound, { try $0.update("ghost", in: chunks, values: ["year": .integer(1)]) }),
        ]
        for (expected, bad) in cases {
            let code = errorCode {
                try store.write { tx in
                    // Good writes first: they must be rolled back with the bad one.
                    try tx.insert("fresh", into: chunks, vector: good, values: ["tenant": .text("t")])
                    try tx.delete(["r2"], from: chunks)
                    try tx.update("r3", in: chunks, values: ["body": .text("changed")])
                    try bad(tx)
                }
            }
            #expect(code == expected)
            #expect(try store.count(chunks) == 40)
            #expect(try store.get(["fresh"], from: chunks).isEmpty)
            #expect(try store.get(["r2"], from: chunks).count == 1)
            #expect(try store.get(["r3"], from: chunks).first?.values["body"] == .text("row 3"))
            #expect(try store.search(chunks, near: vectors[0], k: 10, returning: ["body"]) == probe)
        }
        #expect(try store.verify().isConsistent)
    }

    /// A body's own error comes out typed: `aborted`, the error in `underlying`; a write is rolled back.
    @Test func aBodysOwnErrorIsAbortedWithItUnderneath() throws {
        struct Refused: Error, Equatable { let reason: String }
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        let vectors = try fill(store, chunks, count: 12)
        func underlying(_ body: () throws -> Void) -> Refused? {
            do {
                try body()
                return nil
            } catch let error as HybridStoreError {
                #expect(error.code == .aborted)
                return error.underlying as? Refused
            } catch {
                Issue.record("untyped error \(error)")
                return nil
            }
        }
        #expect(
            underlying {
                try store.write { tx in
                    try tx.delete(["r1", "r2"], from: chunks)
                    throw Refused(reason: "write")
                }
            } == Refused(reason: "write"))
        #expect(try store.count(chunks) == 12)
        #expect(
            underlying {
                try store.tenant("acme").write { _ in throw Refused(reason: "scoped write") }
            } == Refused(reason: "scoped write"))
        #expect(try store.count(chunks) == 12)
        #expect(
            underlying {
                _ = try store.read { snapshot in
                    _ = try snapshot.search(chunks, near: vectors[0], k: 3)
                    throw Refused(reason: "read")
                }
            } == Refused(reason: "read"))
        var seen = 0
        #expect(
            underlying {
                try store.forEachRow(in: chunks, batch: 5) { _ in
                    seen += 1
                    if seen == 7 { throw Refused(reason: "row 7") }
                }
            } == Refused(reason: "row 7"))
        #expect(seen == 7)
        // The store's own errors pass through unwrapped.
        let own = errorCode { try store.write { tx in try tx.update("ghost", in: chunks, values: [:]) } }
        #expect(own == .notFound)
    }

    @Test func errorsNameTheItemAndColumn() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        do {
            try store.write { tx in try tx.insert("doc-9", into: chunks, vector: [1, 2, 3], values: [:]) }
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .dimensionMismatch)
            #expect(error.message == "collection `chunks`, id doc-9: vector expects 8 dimensions, got 3")
            #expect(
                error.context["expected"] == "8" && error.context["actual"] == "3" && error.context["id"] == "doc-9")
        }
        do {
            try store.write { tx in
                try tx.insert(
                    "doc-9", into: chunks, vector: Array(repeating: 0, count: 8), values: ["tenant": .integer(1)])
            }
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .typeMismatch)
            #expect(error.context["column"] == "tenant")
            #expect(error.message.contains("column `tenant` is non-null text, got integer"))
        }
    }

    @Test func badReadsAndSchemas() throws {
        let tmp = TemporaryStore()
        defer { tmp.cleanup() }
        let store = try tmp.open()
        let chunks = try store.createCollection("chunks", schema: chunkSchema)
        try fill(store, chunks, count: 5)
        let q: [Float] = Array(repeating: 0, count: 8)
        #expect(errorCode { _ = try store.search(chunks, near: [1], k: 1) } == .dimensionMismatch)
        #expect(errorCode { _ = try store.search(chunks, near: q.map { _ in .nan }, k: 1) } == .nonFiniteVector)
        #expect(errorCode { _ = try store.search(chunks, near: q, k: 0) } == .invalidArgument)
        for options in [
            QueryOptions(coldEffort: 0), QueryOptions(coldEffort: .nan), QueryOptions(coldEffort: -1),
            QueryOptions(coldProbes: 0),
        ] {
            #expect(
                errorCode { _ = try store.query(chunks, near: q, k: 1, where: nil, options: options) }
                    == .invalidArgument)
        }
        #expect(errorCode { _ = try store.search(chunks, near: q, k: 1, returning: ["nope"]) } == .unknownColumn)
        #expect(errorCode { _ = try store.get(["r1"], from: chunks, returning: ["nope"]) } == .unknownColumn)
        #expect(errorCode { _ = try store.get([1], from: chunks) } == .typeMismatch)
        let bad: [(String, Schema)] = [
            ("1abc", chunkSchema), ("has space", chunkSchema), ("", chunkSchema),
            ("ok", Schema(vector: VectorSpec(dimensions: 0))),
            ("ok", Schema(vector: VectorSpec(dimensions: 4), columns: [.text("a"), .integer("a")])),
            ("ok", Schema(vector: VectorSpec(dimensions: 4), columns: [.text("bad name")])),
            (
                "ok",
                Schema(
                    vector: VectorSpec(dimensions: 4), columns: [ColumnSpec(name: "b", type: .blob, filterable: true)])
            ),
        ]
        for (name, schema) in bad {
            #expect(errorCode { _ = try store.createCollection(name, schema: schema) } == .invalidSchema, "\(name)")
        }
        #expect(try store.collections().map(\.name) == ["chunks"])
    }

    /// A schema a user wrote as JSON: what decoding alone would skip (a misspelt member) is refused and named.
    @Test func aSchemaFilesUnknownMembersAreRefused() throws {
        let schema = Schema(
            vector: VectorSpec(dimensions: 4, metric: .cosine), columns: [.text("tenant", filterable: true)],
            tenantColumn: "tenant")
        let text = String(decoding: try JSONEncoder().encode(schema), as: UTF8.self)
        #expect(try Schema.checked(json: Data(text.utf8)) == schema)
        for (from, to, member) in [
            (#""tenantColumn""#, #""tenantColum""#, "tenantColum"),
            (#""metric""#, #""metrik""#, "vector.metrik"),
            (#""filterable""#, #""filterabel""#, "columns[0].filterabel"),
        ] {
            let misspelt = text.replacingOccurrences(of: from, with: to)
            #expect(misspelt != text)
            do {
                _ = try Schema.checked(json: Data(misspelt.utf8))
                Issue.record("accepted \(misspelt)")
            } catch {
                #expect(error.code == .invalidSchema && error.context["member"] == member, "\(error)")
                #expect(error.message.contains("unknown member `\(member)`"), "\(error.message)")
            }
        }
        // Decoding alone would have made a collection without tenant isolation.
        let untenanted = text.replacingOccurrences(of: #""tenantColumn""#, with: #""tenantColum""#)
        #expect(try JSONDecoder().decode(Schema.self, from: Data(untenanted.utf8)).tenantColumn == nil)
        // A missing member and a wrong type name where they are.
        for (json, member) in [
            (
                #"{"vector": {"dimensions": 4, "metric": "l2", "connectivity": 16, "constructionEffort": 100}, "id": "string"}"#,
                "columns"
            ),
            (
                #"{"vector": {"dimensions": "4", "metric": "l2", "connectivity": 16, "constructionEffort": 100}, "id": "string", "columns": []}"#,
                "vector.dimensions"
            ),
        ] {
            do {
                _ = try Schema.checked(json: Data(json.utf8))
                Issue.record("accepted \(json)")
            } catch {
                #expect(error.code == .invalidSchema && error.context["member"] == member, "\(error)")
            }
        }
        #expect(throws: HybridStoreError.self) { _ = try Schema.checked(json: Data("[1".utf8)) }
    }
}
