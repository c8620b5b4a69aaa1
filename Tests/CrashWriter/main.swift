// Child process of the crash tests (HybridStoreTests/CrashTests.swift).
//
//   hybridstore-crash-writer STORE_DIR ACK_FILE SEED
//
// Opens the store, then forever: commits batch b (50 rows with ids b*1000+i, column batch = b, and deletes
// the rows i % 5 == 0 of batch b-3; a searchable body "batch<b> item<i>"), then appends "b" to ACK_FILE. Every fourth batch it moves batch b-2 to
// the cold tier, every sixth batch b-4 back to hot. Rows belong to seven tenants, whose usage the parent
// checks against the rows after every kill (through verify()). Every third batch it checkpoints, writing "checkpoint"
// before and "checkpointed" after. The parent kills it with SIGKILL at random moments.
import Foundation
import HNSW
import HybridStore

let arguments = CommandLine.arguments
guard arguments.count == 4, let seed = UInt64(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: hybridstore-crash-writer STORE_DIR ACK_FILE SEED\n".utf8))
    exit(64)
}
let ack = open(arguments[2], O_WRONLY | O_CREAT | O_APPEND, 0o644)
func say(_ line: String) { _ = (line + "\n").withCString { write(ack, $0, strlen($0)) } }

do {
    var configuration = Configuration()
    configuration.checkpointEveryChanges = 0
    let store = try HybridStore(directory: arguments[1], create: true, configuration: configuration)
    let collection = try store.collection(
        "crash",
        creatingIfMissing: Schema(
            vector: VectorSpec(dimensions: 8, connectivity: 8, constructionEffort: 40), id: .integer,
            columns: [
                .integer("batch", nullable: false, filterable: true), .integer("item", nullable: false),
                .text("tenant", nullable: false, filterable: true), .text("body", searchable: true),
            ],
            tenantColumn: "tenant"))
    // Resume after the highest batch present.
    var batch: Int64 = 0
    // Item 1 of a batch is never deleted, so it marks a committed batch.
    while try !store.get([.int((batch + 1) * 1000 + 1)], from: collection, returning: []).isEmpty { batch += 1 }
    var rng = SplitMix64(seed: seed)
    func random() -> Float { Float.random(in: 0..<1, using: &rng) }
    while true {
        batch += 1
        let b = batch
        try store.write { tx in
            for i in 0..<50 {
                let vector = (0..<8).map { _ in random() }
                try tx.insert(
                    .int(b * 1000 + Int64(i)), into: collection, vector: vector,
                    values: [
                        "batch": .integer(b), "item": .integer(Int64(i)), "tenant": .text("t\(i % 7)"),
                        "body": .text("batch\(b) item\(i)"),
                    ])
            }
            if b > 3 {
                try tx.delete(stride(from: 0, to: 50, by: 5).map { .int((b - 3) * 1000 + Int64($0)) }, from: collection)
            }
        }
        say("\(b)")
        // Tier moves both ways, each one transaction: a kill in the middle must leave every row in one tier.
        if b % 4 == 0 && b > 2 { try store.tier(collection, where: Column("batch") == .integer(b - 2), to: .cold) }
        if b % 6 == 0 && b > 4 { try store.tier(collection, where: Column("batch") == .integer(b - 4), to: .hot) }
        if b % 3 == 0 {
            say("checkpoint")
            try store.checkpoint()
            say("checkpointed")
        }
    }
} catch {
    FileHandle.standardError.write(Data("crash-writer: \(error)\n".utf8))
    exit(1)
}
