// swift-format-ignore-file
// The README's Swift snippets, verbatim between the markers, so that they compile against the API as it is
// (`ReadmeSnippetTests` checks the README still says exactly this). The functions supply the names the
// snippets take from their surroundings; they are compiled, never called.

import HybridStore
import Testing
import Foundation

struct ReadmeDocument { var id: String; var embedding: [Float]; var tenant: String }

func readmeQuickStart(batch: [ReadmeDocument], q: [Float]) throws {
// BEGIN README 1
let store = try HybridStore(directory: "/var/lib/rag", create: true)   // mode: .readOnly to share it read-only
let chunks = try store.collection("chunks", creatingIfMissing: Schema(
    vector: VectorSpec(dimensions: 384, metric: .cosine),
    columns: [.text("tenant", filterable: true), .integer("year", filterable: true), .text("body")]))

try store.write { tx in                          // one closure = one SQLite transaction
    for d in batch { try tx.upsert(.string(d.id), into: chunks, vector: d.embedding, values: ["tenant": .text(d.tenant)]) }
}                                                // the index is updated only after COMMIT

let hits = try store.search(chunks, near: q, k: 10,
                            where: Column("tenant") == "acme" && Column("year") >= 2020,
                            returning: ["body"])
let body = hits.first?.string("body")           // typed reads: int, double, string, bool, bytes, isNull
print(try store.explain(chunks, near: q, k: 10, where: try store.parseFilter("tenant = 'acme'")))
// END README 1
    _ = (hits, body)
}

func readmeKeywordSearch(store: HybridStore, chunks: CollectionRef, embedding: [Float]) throws {
// BEGIN README 2
let exact = try store.search(chunks, text: TextQuery("error 0x80070005"), k: 10, where: Column("year") >= 2020)
let hits = try store.search(chunks, near: embedding, text: TextQuery("error 0x80070005"), k: 10,
                            fusion: .reciprocalRank(k: 60), returning: ["body"])   // RetrievalHit: score, distance, ranks
let (_, plan) = try store.retrieve(chunks, text: TextQuery("disk"), near: embedding, k: 10, explain: true)  // both arms
// END README 2
    _ = (exact, hits, plan)
}

@Suite struct ReadmeSnippetTests {
    /// Each ```swift block of the README equals the compiled copy above (the first without its import line).
    @Test func theReadmeSnippetsAreTheCompiledOnes() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]? = nil
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```swift" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n") + "\n")
                current = nil
            } else if current != nil {
                current!.append(line)
            }
        }
        #expect(blocks.count == 2, "the README's Swift blocks changed in number: update this file")
        func compiled(_ n: Int) -> String? {
            guard let start = source.range(of: "// BEGIN README \(n)\n"),
                let end = source.range(of: "// END README \(n)", range: start.upperBound..<source.endIndex)
            else { return nil }
            return String(source[start.upperBound..<end.lowerBound])
        }
        #expect(compiled(1).map { "import HybridStore\n\n" + $0 } == blocks.first)
        #expect(blocks.dropFirst().first == compiled(2))
    }
}
