import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every row as JSONL (id, vector, columns) to stdout.")
        @OptionGroup var store: StoreOptions
        @Argument var collection: String
        @Option(help: "jsonl (the only format).") var format: OutputFormat = .jsonl
        @Option(name: .customLong("vector-field"), help: "Name of the vector field.") var vectorField = "vector"
        @OptionGroup var tenant: TenantOption

        func validate() throws {
            guard format == .jsonl else { throw ValidationError("export writes jsonl") }
        }

        func run() throws {
            try store.run(write: false) { hs in
                let c = try hs.collection(collection)
                let tenantColumn = try hs.describe(collection).schema.tenantColumn
                if let name = tenant.tenant, tenantColumn == nil {
                    fail("collection \(collection) has no tenant column, so it cannot be exported as tenant \(name)")
                }
                let out = FileHandle.standardOutput
                var buffer = ""
                try hs.forEachRow(in: c) { row in
                    if let name = tenant.tenant, let tenantColumn, row.values[tenantColumn] != .text(name) { return }
                    var o: [String: Any] = ["id": Render.json(row.id)]
                    for (k, v) in row.values { o[k] = Render.json(v) }
                    // Bit-exact: the shortest decimal of each Float (cold rows' too, read from their blocks).
                    buffer += Render.line(o, floats: vectorField, row.vector ?? []) + "\n"
                    if buffer.utf8.count > 1 << 16 {
                        out.write(Data(buffer.utf8))
                        buffer = ""
                    }
                }
                out.write(Data(buffer.utf8))
            }
        }
    }
}
