import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a collection.",
            discussion: "Types: integer, real, text, boolean, blob. Example: --column tenant:text:filterable --column body:text:searchable")

        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection name.") var collection: String
        @Option(parsing: .unconditional, help: "Vector dimensions.") var dim: Int?
        @Option(help: "Distance: l2, cosine or ip.") var metric: String = "l2"
        @Option(name: .customLong("column"),
                help: ArgumentHelp("A column as name:type[:filterable][:notnull][:searchable] (searchable: text with a keyword index).", valueName: "spec"))
        var columns: [String] = []
        @Option(help: "Id kind: string or int.") var id: String = "string"
        @Option(help: "Links per node (M).") var connectivity = 16
        @Option(name: .customLong("ef-construction"), help: "Candidate list while building (efConstruction).")
        var efConstruction = 200
        @Option(help: "A schema JSON file instead of --dim/--metric/--column/--id.") var schema: String?
        @Option(name: .customLong("tenant-column"),
                help: ArgumentHelp("The column naming each row's tenant (text, filterable, notnull).", valueName: "name"))
        var tenantColumn: String?
        @Option(help: "How searchable text splits into terms: unicode61 (words), porter (English stems) or trigram (substrings).")
        var tokenizer: String = "unicode61"

        func validate() throws {
            guard TextTokenizer(rawValue: tokenizer) != nil else {
                throw ValidationError("--tokenizer must be unicode61, porter or trigram, got '\(tokenizer)'")
            }
            if schema == nil && dim == nil { throw ValidationError("give --dim (or --schema FILE.json)") }
            if let dim, dim < 1 { throw ValidationError("--dim must be at least 1, got \(dim)") }
            guard Metric(rawValue: metric) != nil else { throw ValidationError("--metric must be l2, cosine or ip, got '\(metric)'") }
            guard id == "string" || id == "int" else { throw ValidationError("--id must be string or int, got '\(id)'") }
            for c in columns { _ = try Self.column(c) }
        }

        static func column(_ spec: String) throws -> ColumnSpec {
            let parts = spec.split(separator: ":").map(String.init)
            guard parts.count >= 2, let type = ColumnType(rawValue: parts[1]) else {
                throw ValidationError("--column '\(spec)': expected name:type[:filterable][:notnull][:searchable] with a type of \(ColumnType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var column = ColumnSpec(name: parts[0], type: type)
            for flag in parts.dropFirst(2) {
                switch flag {
                case "filterable": column.filterable = true
                case "notnull": column.nullable = false
                case "searchable" where type == .text: column.searchable = true
                case "searchable": throw ValidationError("--column '\(spec)': only text columns can be searchable")
                default: throw ValidationError("--column '\(spec)': unknown flag '\(flag)' (filterable, notnull, searchable)")
                }
            }
            return column
        }

        func run() throws {
            let schema: Schema
            if let path = self.schema {
                do {
                    schema = try JSONDecoder().decode(Schema.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
                } catch {
                    fail("cannot read schema \(path): \(error.localizedDescription)")
                }
            } else {
                schema = Schema(vector: VectorSpec(dimensions: dim!, metric: Metric(rawValue: metric)!,
                                                   connectivity: connectivity, constructionEffort: efConstruction),
                                id: id == "int" ? .integer : .string, columns: try columns.map(Self.column),
                                tenantColumn: tenantColumn, tokenizer: TextTokenizer(rawValue: tokenizer)!)
            }
            try store.run(create: true) { hs in
                _ = try hs.createCollection(collection, schema: schema)
                print("created collection \(collection): \(schema.vector.dimensions)-d \(schema.vector.metric.rawValue), \(schema.columns.count) columns")
            }
        }
    }

    struct Collections: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the collections.")
        @OptionGroup var store: StoreOptions
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let all = try hs.collections()
                if format == .json || format == .jsonl {
                    print(Render.pretty(all.map { ["name": $0.name, "rows": $0.rows, "dimensions": $0.schema.vector.dimensions,
                                                   "metric": $0.schema.vector.metric.rawValue] as [String: Any] }))
                } else {
                    print(Render.table(["collection", "rows", "dim", "metric", "columns"], all.map {
                        [$0.name, "\($0.rows)", "\($0.schema.vector.dimensions)", $0.schema.vector.metric.rawValue,
                         $0.schema.columns.map(\.name).joined(separator: ",")]
                    }))
                }
            }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a collection's schema and size.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let info = try hs.describe(collection)
                if format == .json || format == .jsonl {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    let schema = (try? JSONSerialization.jsonObject(with: encoder.encode(info.schema))) ?? [:]
                    print(Render.pretty(["name": info.name, "rows": info.rows, "schema": schema] as [String: Any]))
                    return
                }
                let v = info.schema.vector
                print("collection \(info.name): \(info.rows) rows, \(info.schema.id == .integer ? "integer" : "string") ids")
                print("vector: \(v.dimensions) dimensions, \(v.metric.rawValue), M \(v.connectivity), efConstruction \(v.constructionEffort)")
                print(Render.table(["column", "type", "nullable", "filterable", "searchable"], info.schema.columns.map {
                    [$0.name, $0.type.rawValue, $0.nullable ? "yes" : "no", $0.filterable ? "yes" : "no", $0.searchable ? "yes" : "no"]
                }))
                if info.schema.columns.contains(where: \.searchable) { print("keyword tokenizer: \(info.schema.tokenizer.rawValue)") }
            }
        }
    }

    struct Drop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop a collection and all its rows.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String

        func run() throws {
            try store.run { hs in
                try hs.dropCollection(collection)
                print("dropped collection \(collection)")
            }
        }
    }

    struct TierCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tier",
            abstract: "Move rows between the hot tier (RAM, graph) and the cold tier (LZ4 blocks in the database).")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Option(name: .customLong("where"), help: "Rows to move (default: all).") var filter: String?
        @Option(help: "Destination: hot or cold.") var to: String
        @Flag(help: "Store new cold blocks as float16 (lossy, about half the bytes).") var float16 = false

        func validate() throws {
            guard Tier(rawValue: to) != nil else { throw ValidationError("--to must be hot or cold, got '\(to)'") }
        }

        func run() throws {
            try store.run { hs in
                let c = try hs.collection(collection)
                let n = try hs.tier(c, where: try filter.map { try hs.parseFilter($0) }, to: Tier(rawValue: to)!,
                                    codec: float16 ? .float16BitShuffledLZ4 : .bitShuffledLZ4)
                let s = try hs.statistics(c)
                print("moved \(n) rows to \(to); now hot \(s.tiers["hot"] ?? 0), cold \(s.tiers["cold"] ?? 0) in \(s.coldBlocks) blocks")
            }
        }
    }

    struct Checkpoint: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write index snapshots now and trim the change log.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            try store.run { hs in
                try hs.checkpoint()
                print("checkpoint written")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare every collection's rows with its index; exit code 1 when anything disagrees.")
        @OptionGroup var store: StoreOptions
        @Option(help: "table or json.") var format: OutputFormat = .table
        @Flag(help: "Rebuild keyword indexes that disagree with their rows, then verify again.") var repair = false

        func run() throws {
            let report = try store.run(write: repair) { hs in
                let first = try hs.verify()
                guard repair, first.collections.contains(where: { $0.mismatches.contains { $0.contains("keyword index") } }) else {
                    return first
                }
                for name in try hs.repairKeywordIndexes() { printError("rebuilt the keyword index of \(name)") }
                return try hs.verify()
            }
            if format == .json || format == .jsonl {
                print(Render.pretty(report.collections.map {
                    ["collection": $0.name, "rows": $0.rows, "vectors": $0.vectors, "index_nodes": $0.indexNodes,
                     "mismatches": $0.mismatches, "unreachable_nodes": $0.unreachableNodes] as [String: Any]
                }))
            } else {
                for c in report.collections {
                    print("\(c.name): \(c.rows) rows, \(c.vectors) vectors, \(c.indexNodes) index nodes, \(c.mismatches.count) mismatches"
                          + (c.unreachableNodes > 0 ? " (\(c.unreachableNodes) unreachable nodes; a checkpoint reconnects them)" : ""))
                    for m in c.mismatches.prefix(50) { print("  \(m)") }
                }
                print(report.isConsistent ? "ok" : "MISMATCH")
            }
            if !report.isConsistent { throw ExitCode(1) }
        }
    }

    struct Searchable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make text columns of a collection searchable: builds their keyword index from the rows.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection.") var collection: String
        @Argument(help: "Text columns.") var columns: [String]

        func validate() throws {
            if columns.isEmpty { throw ValidationError("name at least one column") }
        }

        func run() throws {
            try store.run { hs in
                let c = try hs.collection(collection)
                let started = Date()
                var last = Date.distantPast
                try hs.makeSearchable(c, columns: columns) { done, total in
                    if Date().timeIntervalSince(last) > 0.5 || done == total {
                        last = Date()
                        printError("indexing \(collection): \(done) of \(total) rows")
                    }
                }
                print("\(columns.joined(separator: ", ")) searchable in \(collection) "
                      + String(format: "(%.1f s)", Date().timeIntervalSince(started)))
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rows, bytes on disk, RAM, tiers and per-column statistics.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection (default: all).") var collection: String?
        @Option(help: "table or json.") var format: OutputFormat = .table

        func run() throws {
            try store.run(write: false) { hs in
                let names = try collection.map { [$0] } ?? hs.collections().map(\.name)
                let stats = try names.map { try hs.statistics(hs.collection($0)) }
                if format == .json || format == .jsonl {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(stats), as: UTF8.self))
                    return
                }
                for s in stats {
                    print("\(s.name): \(s.rows) rows; store on disk \(s.storeBytesOnDisk / 1024) KiB")
                    print("  hot:  \(s.tiers["hot"] ?? 0) rows, index \(s.indexBytes / 1024) KiB in RAM")
                    print("  cold: \(s.tiers["cold"] ?? 0) rows in \(s.coldBlocks) blocks, \(s.coldBytesOnDisk / 1024) KiB on disk, \(s.coldMemoryBytes / 1024) KiB in RAM (block summaries, live rows, filter values)")
                    if let c = s.calibration {
                        let buckets = ["no filter", "≥ 50 %", "20–50 %", "5–20 %", "1–5 %", "< 1 %"]
                        print("  recall calibration: \(c.queries) build-time queries a bucket over \(c.rows) rows, "
                              + String(format: "%.1f h old, %.2f s; target %.3f at k %d", (Date().timeIntervalSince1970 - c.measuredAt) / 3600,
                                       c.seconds, c.target, c.k))
                        for (bucket, points) in c.curves.sorted(by: { $0.key < $1.key }) {
                            let scale = bucket < s.effortScales.count ? s.effortScales[bucket] : 1
                            let near = points.min { abs(log2($0.scale / scale)) < abs(log2($1.scale / scale)) }
                            print("    \(buckets[bucket]): effort ×" + String(format: "%.2f", scale)
                                  + (near.map { String(format: ", measured recall %.3f ± %.3f there", $0.recall, $0.error) } ?? ""))
                        }
                    } else {
                        print("  recall calibration: none (static model until a checkpoint measures one)")
                    }
                    print(Render.table(["column", "type", "non-null", "nulls", "distinct", "min", "max", "frequent"], s.columns.map { c in
                        [c.name, c.type, "\(c.nonNull)", "\(c.nulls)", "\(c.distinct)", c.minimum.map { "\($0)" } ?? "",
                         c.maximum.map { "\($0)" } ?? "", c.frequent.map { "\($0.value)×\($0.count)" }.joined(separator: " ")]
                    }))
                }
            }
        }
    }
}
