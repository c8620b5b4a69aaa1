import ArgumentParser
import Foundation
import HybridStore

@main
struct HybridCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hybridctl",
        abstract: "Create, import, query and inspect HybridStore stores (vectors + columns, one query planner).",
        discussion: """
            Every command takes the store directory with --store DIR or the HYBRIDSTORE environment variable.
            Start with `hybridctl demo`, which builds a demo store and runs hybrid queries.
            """,
        subcommands: [
            Demo.self, Create.self, Searchable.self, Collections.self, Describe.self, Drop.self, Import.self,
            Query.self,
            Explain.self, Get.self, Count.self, Delete.self, TierCommand.self, Stats.self, Checkpoint.self, Verify.self,
            Export.self, Tenants.self, Usage.self,
        ])
}

/// `--store DIR`, defaulting to $HYBRIDSTORE.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .customLong("store"), help: ArgumentHelp("The store directory (default: $HYBRIDSTORE).", valueName: "dir")
    )
    var path: String?

    func validate() throws {
        if path == nil && ProcessInfo.processInfo.environment["HYBRIDSTORE"] == nil {
            throw ValidationError("no store given: pass --store DIR or set HYBRIDSTORE")
        }
    }

    @Flag(
        name: .customLong("read-only"),
        help:
            "Open the store read-only: a shared lock, no file written (chosen by itself for read commands when the directory is not writable)."
    )
    var readOnly = false

    var directory: String { path ?? ProcessInfo.processInfo.environment["HYBRIDSTORE"] ?? "." }

    /// Opens the store, runs `body`, closes it. Only `create` makes a store where there is none; a command
    /// that does not `write` opens read-only when asked (`--read-only`) or when the directory is not writable.
    /// Store errors become one line on stderr and exit code 1.
    func run<R>(create: Bool = false, write: Bool = true, _ body: (HybridStore) throws -> R) throws -> R {
        var configuration = Configuration()
        let mode: AccessMode
        if write {
            if readOnly { fail("this command writes; it cannot run with --read-only") }
            mode = .readWrite
        } else {
            mode = readOnly || access(directory, W_OK) != 0 ? .readOnly : .readWrite
        }
        if isatty(2) != 0 {
            configuration.recoveryProgress = { p in
                if p.phase == .rebuilding && p.done == 0 && p.total > 0 {
                    FileHandle.standardError.write(
                        Data("rebuilding the index of `\(p.collection)` (\(p.reason ?? "")): \(p.total) rows\n".utf8))
                }
            }
        }
        do {
            let store = try HybridStore(directory: directory, create: create, mode: mode, configuration: configuration)
            defer { store.close() }
            return try body(store)
        } catch let error as HybridStoreError {
            fail(error.message)
        }
    }
}

/// `--tenant NAME`: act as one tenant (only its rows; writes set its name).
struct TenantOption: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Act as this tenant: only its rows are read or changed, and new rows get its name.",
            valueName: "name"))
    var tenant: String?

    func scope(_ hs: HybridStore) throws -> TenantScope? { try tenant.map { try hs.tenant($0) } }
}

/// Output format of read commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, jsonl, csv
}

/// Prints one error line and exits with 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("hybridctl: \(message)\n".utf8))
    exit(1)
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("hybridctl: \(message)\n".utf8))
}
