import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a collection.",
            discussion:
                "Types: integer, real, text, boolean, blob. Example: --column tenant:text:filterable --column body:text:searchable"
        )

        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection name.") var collection: String
        @Option(parsing: .unconditional, help: "Vector dimensions.") var dim: Int?
        @Option(help: "Distance: l2, cosine or ip.") var metric: String = "l2"
        @Option(
            name: .customLong("column"),
            help: ArgumentHelp(
                "A column as name:type[:filterable][:notnull][:searchable] (searchable: text with a keyword index).",
                valueName: "spec"))
        var columns: [String] = []
        @Option(help: "Id kind: string or int.") var id: String = "string"
        @Option(help: "Links per node (M).") var connectivity = 16
        @Option(name: .customLong("ef-construction"), help: "Candidate list while building (efConstruction).")
        var efConstruction = 200
        @Option(help: "A schema JSON file instead of --dim/--metric/--column/--id.") var schema: String?
        @Option(
            name: .customLong("tenant-column"),
            help: ArgumentHelp("The column naming each row's tenant (text, filterable, notnull).", valueName: "name"))
        var tenantColumn: String?
        @Option(
            help:
                "How searchable text splits into terms: unicode61 (words), porter (English stems) or trigram (substrings)."
        )
        var tokenizer: String = "unicode61"

        func validate() throws {
            guard TextTokenizer(rawValue: tokenizer) != nil else {
                throw ValidationError("--tokenizer must be unicode61, porter or trigram, got '\(tokenizer)'")
            }
            if schema == nil && dim == nil { throw ValidationError("give --dim (or --schema FILE.json)") }
            if let dim, dim < 1 { throw ValidationError("--dim must be at least 1, got \(dim)") }
            guard Metric(rawValue: metric) != nil else {
                throw ValidationError("--metric must be l2, cosine or ip, got '\(metric)'")
            }
            guard id == "string" || id == "int" else {
                throw ValidationError("--id must be string or int, got '\(id)'")
            }
            for c in columns { _ = try Self.column(c) }
        }

        static func column(_ spec: String) throws -> ColumnSpec {
            let parts = spec.split(separator: ":").map(String.init)
            guard parts.count >= 2, let type = ColumnType(rawValue: parts[1]) else {
                throw ValidationError(
                    "--column '\(spec)': expected name:type[:filterable][:notnull][:searchable] with a type of \(ColumnType.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            var column = ColumnSpec(name: parts[0], type: type)
            for flag in parts.dropFirst(2) {
                switch flag {
                case "filterable": column.filterable = true
                case "notnull": column.nullable = false
                case "searchable" where type == .text: column.searchable = true
                case "searchable": throw ValidationError("--column '\(spec)': only text columns can be searchable")
                default:
                    throw ValidationError(
                        "--column '\(spec)': unknown flag '\(flag)' (filterable, notnull, searchable)")
                }
            }
            return column
        }

        func run() throws {
            let schema: Schema
            if let path = self.schema {
                let data: Data
                do {
                    data = try Data(contentsOf: URL(fileURLWithPath: path))
                } catch {
                    fail("cannot read schema \(path): \(error.localizedDescription)")
                }
                do {
                    schema = try Schema.checked(json: data)
                } catch {
                    fail("schema \(path): \(error.message)")
                }
            } else {
                schema = Schema(
                    vector: VectorSpec(
                        dimensions: dim!, metric: Metric(rawValue: metric)!,
                        connectivity: connectivity, constructionEffort: efConstruction),
                    id: id == "int" ? .integer : .string, columns: try columns.map(Self.column),
                    tenantColumn: tenantColumn, tokenizer: TextTokenizer(rawValue: tokenizer)!)
            }
            try store.run(create: true) { hs in
                _ = try hs.createCollection(collection, schema: schema)
                print(
                    "created collection \(collection): \(schema.vector.dimensions)-d \(schema.vector.metric.rawValue), \(schema.columns.count) columns"
                )
            }
        }
    }
}
