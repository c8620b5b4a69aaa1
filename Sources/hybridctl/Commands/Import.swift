import ArgumentParser
import Foundation
import HybridStore

extension HybridCtl {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Import rows from JSONL, CSV, a dataset directory, or .fvecs/.npy vectors with a JSONL of attributes.",
            discussion: """
                JSONL: one object per line with the id, the vector (--vector-field) and columns. CSV: a header; the vector
                as a JSON array in --vector-field or as columns v0..vN. A directory in the benchmark dataset format
                (meta.json, base.f32, base.jsonl). .fvecs/.npy: vectors, with --attributes FILE.jsonl for ids and columns.
                Rows are committed in batches; a bad line stops the import (earlier batches stay committed) unless
                --skip-bad is given.
                """)

        @OptionGroup var store: StoreOptions
        @Argument(help: "Collection.") var collection: String
        @Argument(help: "Input files or dataset directories.") var files: [String]
        @Option(name: .customLong("vector-field"), help: "Field (or CSV column) holding the vector.") var vectorField =
            "vector"
        @Option(name: .customLong("id-field"), help: "Field (or CSV column) holding the id.") var idField = "id"
        @Option(help: "JSONL of attributes for .fvecs/.npy input (line n belongs to vector n).") var attributes: String?
        @Option(help: "Rows per transaction.") var batch = 10_000
        @Flag(name: .customLong("skip-bad"), help: "Count and skip bad lines instead of stopping.") var skipBad = false
        @Flag(name: .customLong("ignore-extra"), help: "Ignore fields that are not columns.") var ignoreExtra = false
        @Flag(help: "Replace rows whose id exists instead of failing.") var upsert = false
        @OptionGroup var tenant: TenantOption

        func validate() throws {
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
            guard !files.isEmpty else { throw ValidationError("give at least one input file") }
        }

        func run() throws {
            try store.run { hs in
                let c = try hs.collection(collection)
                let schema = try hs.describe(collection).schema
                let builder = RowBuilder(
                    schema: schema, idField: idField, vectorField: vectorField, ignoreExtra: ignoreExtra)
                let progress = Progress(
                    enabled: isatty(2) != 0,
                    total: isatty(2) != 0 ? files.map(Self.estimatedRows).reduce(0, +) : 0)
                var pending: [ImportRow] = []
                var imported = 0, skipped = 0
                let started = Date()
                var currentFile = ""

                let scope = try tenant.scope(hs)
                func transaction(_ body: (WriteTransaction) throws -> Void) throws {
                    do {
                        if let scope { try scope.write(body) } else { try hs.write(body) }
                    } catch {
                        // A batch stopped at a bad line (the store wraps the body's own error): report the line.
                        if let line = error.underlying as? LineError, error.code == .aborted { throw line }
                        throw error
                    }
                }

                func flush() throws {
                    guard !pending.isEmpty else { return }
                    var rejected = 0
                    try transaction { tx in
                        for row in pending {
                            do {
                                if upsert {
                                    try tx.upsert(row.id, into: c, vector: row.vector, values: row.values)
                                } else {
                                    try tx.insert(row.id, into: c, vector: row.vector, values: row.values)
                                }
                            } catch let error as HybridStoreError
                                where error.code != .sqlite && error.code != .corruptFile
                            {
                                if !skipBad { throw LineError(line: row.line, reason: error.message) }
                                rejected += 1
                                printError("\(currentFile):\(row.line): skipped: \(error.message)")
                            }
                        }
                    }
                    imported += pending.count - rejected
                    skipped += rejected
                    pending.removeAll(keepingCapacity: true)
                    progress.update(rows: imported)
                }

                do {
                    for file in files {
                        currentFile = file
                        let emit: (Result<ImportRow, LineError>) throws -> Void = { result in
                            switch result {
                            case .success(let row):
                                pending.append(row)
                                if pending.count >= batch { try flush() }
                            case .failure(let error):
                                if !skipBad { throw error }
                                skipped += 1
                                printError("\(file):\(error.line): skipped: \(error.reason)")
                            }
                        }
                        var isDirectory: ObjCBool = false
                        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
                            throw LineError(line: 0, reason: "no such file")
                        }
                        if isDirectory.boolValue {
                            try ImportSources.dataset(file, builder: builder, emit: emit)
                        } else if file.hasSuffix(".csv") {
                            try ImportSources.csv(
                                file, builder: builder, dimensions: schema.vector.dimensions, emit: emit)
                        } else if file.hasSuffix(".fvecs") || file.hasSuffix(".npy") {
                            try ImportSources.vectorFile(file, attributes: attributes, builder: builder, emit: emit)
                        } else {
                            try ImportSources.jsonLines(file, builder: builder, emit: emit)
                        }
                        try flush()
                    }
                } catch let error as LineError {
                    progress.finish()
                    fail(
                        "\(currentFile)\(error.line > 0 ? ":\(error.line)" : ""): \(error.reason); \(committed(imported))"
                    )
                } catch let error as HybridStoreError {
                    // A batch refused whole (a quota, a full disk, …): say what earlier batches left committed.
                    progress.finish()
                    fail("\(currentFile): \(error.message); \(committed(imported))")
                }
                progress.finish()
                // Leave a snapshot, so the next command loads the index instead of rebuilding it from every row.
                if imported > 0 { try hs.checkpoint() }
                let seconds = Date().timeIntervalSince(started)
                print(
                    "imported \(imported) rows into \(collection) in \(String(format: "%.1f", seconds)) s"
                        + String(format: " (%.0f rows/s)", Double(imported) / max(seconds, 1e-9))
                        + (skipped > 0 ? "; skipped \(skipped) bad lines" : ""))
            }
        }
    }
}

/// What an interrupted import left: earlier batches are committed whole, the failing one not at all.
private func committed(_ rows: Int) -> String {
    rows == 0 ? "no rows were committed" : "\(rows) rows in earlier batches were committed (the failing batch was not)"
}

extension HybridCtl.Import {
    /// Rows an input will give, for the ETA: lines of a JSONL/CSV file (less the CSV header), `count` of a
    /// dataset's meta.json, records of a .fvecs file; 0 when unknown.
    static func estimatedRows(_ path: String) -> Int {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return 0 }
        if isDirectory.boolValue {
            let meta =
                (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/meta.json"))))
                as? [String: Any]
            return meta?["count"] as? Int ?? 0
        }
        guard !path.hasSuffix(".npy"), let data = FileManager.default.contents(atPath: path) else { return 0 }
        if path.hasSuffix(".fvecs") {
            guard data.count >= 4 else { return 0 }
            let dim = Int(data.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) })
            return dim > 0 ? data.count / (4 + 4 * dim) : 0
        }
        let lines = data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        return path.hasSuffix(".csv") ? max(0, lines - 1) : lines
    }
}

/// A one-line progress display on stderr (rows, rows/s, ETA), only when stderr is a terminal.
final class Progress {
    let enabled: Bool
    let total: Int
    let started = Date()
    var last = Date.distantPast

    init(enabled: Bool, total: Int) {
        self.enabled = enabled
        self.total = total
    }

    func update(rows: Int) {
        guard enabled, Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        let rate = Double(rows) / max(Date().timeIntervalSince(started), 1e-9)
        var line = String(format: "\r%10d rows  %8.0f rows/s", rows, rate)
        if total > rows, rate > 0 {
            line += String(
                format: "  %3.0f%%  ETA %.0f s ", 100 * Double(rows) / Double(total), Double(total - rows) / rate)
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
