import ArgumentParser
import Foundation
import HybridStore

/// The options shared by `query` and `explain`.
struct QueryArguments: ParsableArguments {
    @Argument(help: "Collection.") var collection: String
    @Option(help: ArgumentHelp("The query vector as a JSON array.", valueName: "json")) var vector: String?
    @Option(
        name: .customLong("vector-file"),
        help: ArgumentHelp("A file holding the query vector as a JSON array.", valueName: "file"))
    var vectorFile: String?
    @Option(help: ArgumentHelp("Use the stored vector of this row id.", valueName: "id")) var like: String?
    @Option(
        name: .short, parsing: .unconditional,
        help: "How many rows (at least 1; more than the collection holds returns them all).")
    var k = 10
    @Option(
        name: .customLong("where"),
        help: ArgumentHelp("A filter, e.g. \"tenant = 'acme' AND year >= 2020\".", valueName: "filter"))
    var filter: String?
    @Option(help: ArgumentHelp("Columns to return, comma-separated (default: all).", valueName: "cols")) var select:
        String?
    @Option(help: "Fixed search effort (ef).") var ef: Int?
    @Option(name: .customLong("recall-target"), help: "Recall the planner aims for.") var recallTarget = 0.95
    @Option(name: .customLong("cold-effort"), help: "Scale of the cold blocks opened (1: default; 2: higher recall).")
    var coldEffort = 1.0
    @Flag(name: .customLong("hot-only"), help: "Search only the hot tier.") var hotOnly = false
    @Option(
        help: ArgumentHelp(
            "Keywords to search the searchable columns for (BM25); with a vector too, a hybrid query.",
            valueName: "words"))
    var text: String?
    @Option(
        name: .customLong("text-syntax"), help: "words (each word searched as itself) or fts5 (FTS5's query syntax).")
    var textSyntax: String = "words"
    @Option(
        help: ArgumentHelp(
            "How a hybrid query ranks: rrf, rrf:K (reciprocal rank, K 60 by default) or weighted:W (W the vector arm's weight in [0, 1]).",
            valueName: "fusion"))
    var fusion: String = "rrf"
    @Option(help: "Candidates per arm of a keyword or hybrid query (default: k keyword-only, max(2k, 20) hybrid).")
    var depth: Int?

    func validate() throws {
        let sources = [vector != nil, vectorFile != nil, like != nil].filter { $0 }.count
        if text == nil {
            guard sources == 1 else {
                throw ValidationError("give exactly one of --vector, --vector-file, --like (or --text)")
            }
        } else {
            guard sources <= 1 else {
                throw ValidationError("give at most one of --vector, --vector-file, --like with --text")
            }
            guard TextQuery.Syntax(rawValue: textSyntax) != nil else {
                throw ValidationError("--text-syntax must be words or fts5, got '\(textSyntax)'")
            }
            _ = try parsedFusion()
            if let depth, depth < 1 { throw ValidationError("--depth must be at least 1, got \(depth)") }
        }
        guard k >= 1 else { throw ValidationError("-k must be at least 1, got \(k)") }
        guard recallTarget > 0 && recallTarget <= 1 else { throw ValidationError("--recall-target must be in (0, 1]") }
        guard coldEffort > 0 && coldEffort.isFinite else { throw ValidationError("--cold-effort must be positive") }
    }

    func queryVector(_ hs: HybridStore, _ c: CollectionRef, kind: IDKind, scope: TenantScope?) throws -> [Float] {
        if let like {
            let id: RowID = kind == .integer ? .int(Int64(like) ?? 0) : .string(like)
            let rows =
                try scope.map { try $0.get([id], from: c, returning: [], includeVector: true) }
                ?? hs.get([id], from: c, returning: [], includeVector: true)
            guard let row = rows.first, let v = row.vector else {
                fail("no row with id \(like) in \(c.name)")
            }
            return v
        }
        let text: String
        if let vector {
            text = vector
        } else {
            guard let data = FileManager.default.contents(atPath: vectorFile!) else {
                fail("cannot read \(vectorFile!)")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        guard let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Any] else {
            fail("the query vector must be a JSON array of numbers")
        }
        var out: [Float] = []
        for (i, x) in array.enumerated() {
            guard let n = x as? NSNumber else { fail("query vector component \(i) is not a number") }
            out.append(n.floatValue)
        }
        return out
    }

    func parsedFusion() throws -> Fusion {
        let parts = fusion.split(separator: ":", maxSplits: 1).map(String.init)
        switch parts.first {
        case "rrf" where parts.count == 1: return .standard
        case "rrf":
            guard let k = Int(parts[1]), k >= 0 else {
                throw ValidationError("--fusion rrf:K needs a whole K ≥ 0, got '\(parts[1])'")
            }
            return .reciprocalRank(k: k)
        case "weighted" where parts.count == 2:
            guard let w = Double(parts[1]), (0...1).contains(w) else {
                throw ValidationError("--fusion weighted:W needs W in [0, 1], got '\(parts[1])'")
            }
            return .weighted(vector: w)
        default:
            throw ValidationError("--fusion must be rrf, rrf:K or weighted:W, got '\(fusion)'")
        }
    }

    var hasVector: Bool { vector != nil || vectorFile != nil || like != nil }

    /// Runs a keyword (or, with a vector, hybrid) query, as the tenant when given.
    func retrieve(
        _ hs: HybridStore, _ tenant: TenantOption, columns: (CollectionInfo) -> [String], explain: Bool
    )
        throws -> (hits: [RetrievalHit], explanation: RetrievalExplanation, columns: [String])
    {
        let scope = try tenant.scope(hs)
        let info = try hs.describe(collection)
        let c = try hs.collection(collection)
        let vector = hasVector ? try queryVector(hs, c, kind: info.schema.id, scope: scope) : nil
        let filter = try filter.map { try hs.parseFilter($0) }
        let returning = columns(info)
        let options = QueryOptions(
            recallTarget: recallTarget, searchEffort: ef, tiers: hotOnly ? [.hot] : [.hot, .cold],
            coldEffort: coldEffort)
        let query = TextQuery(text!, syntax: TextQuery.Syntax(rawValue: textSyntax)!)
        let result =
            try scope.map {
                try $0.retrieve(
                    c, text: query, near: vector, k: k, where: filter, fusion: try parsedFusion(), depth: depth,
                    options: options, returning: returning, explain: explain)
            }
            ?? hs.retrieve(
                c, text: query, near: vector, k: k, where: filter, fusion: try parsedFusion(), depth: depth,
                options: options, returning: returning, explain: explain)
        return (result.hits, result.explanation, returning)
    }

    /// Resolves the collection, the query vector and the filter.
    func prepare(
        _ hs: HybridStore, _ scope: TenantScope?
    ) throws
        -> (info: CollectionInfo, collection: CollectionRef, vector: [Float], filter: Filter?)
    {
        let info = try hs.describe(collection)
        let c = try hs.collection(collection)
        return (
            info, c, try queryVector(hs, c, kind: info.schema.id, scope: scope),
            try filter.map { try hs.parseFilter($0) }
        )
    }

    func columns(_ info: CollectionInfo) -> [String] {
        select.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            ?? info.schema.columns.filter { $0.type != .blob }.map(\.name)
    }

    /// Runs the query (as the tenant, when given) and returns its hits and explanation.
    func execute(
        _ hs: HybridStore, _ tenant: TenantOption, columns: (CollectionInfo) -> [String], explain: Bool
    )
        throws -> (hits: [SearchHit], explanation: Explanation, columns: [String])
    {
        let scope = try tenant.scope(hs)
        let (info, c, vector, filter) = try prepare(hs, scope)
        let returning = columns(info)
        let options = QueryOptions(
            recallTarget: recallTarget, searchEffort: ef, tiers: hotOnly ? [.hot] : [.hot, .cold],
            coldEffort: coldEffort)
        let result =
            try scope.map {
                try $0.query(
                    c, near: vector, k: k, where: filter, options: options, returning: returning, explain: explain)
            }
            ?? hs.query(c, near: vector, k: k, where: filter, options: options, returning: returning, explain: explain)
        return (result.hits, result.explanation, returning)
    }
}

func parseID(_ text: String, _ kind: IDKind) throws -> RowID {
    if kind == .string { return .string(text) }
    guard let v = Int64(text) else {
        throw ValidationError("id '\(text)' is not an integer (the collection has integer ids)")
    }
    return .int(v)
}
