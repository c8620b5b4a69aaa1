import Foundation
import QueryPlanner

extension HybridStore {
    /// Makes text columns of an existing collection searchable: the keyword index is made anew over all its
    /// searchable columns and filled from the rows, in one transaction (a crash leaves the collection as it
    /// was). `progress` is called with (rows indexed so far, rows in all) after each batch.
    /// - Throws: `unknownColumn`, `invalidSchema` (a column that is not text), `unknownCollection`, `readOnly`,
    ///   `sqlite`.
    /// - Complexity: O(rows × text length): every row's text is tokenized.
    @discardableResult
    public func makeSearchable(
        _ collection: CollectionRef, columns names: [String],
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws(HybridStoreError) -> CollectionRef {
        let s = try state(collection)
        var schema = s.schema
        for name in names {
            guard let (position, spec) = schema.column(name) else {
                throw HybridStoreError(
                    .unknownColumn, "collection `\(s.name)` has no column `\(name)`",
                    context: ["collection": s.name, "column": name])
            }
            guard spec.type == .text else {
                throw HybridStoreError(
                    .invalidSchema, "column `\(name)` is \(spec.type.rawValue): only text columns can be searchable",
                    context: ["collection": s.name, "column": name])
            }
            schema.columns[position].searchable = true
        }
        guard schema != s.schema else { return collection }
        try schema.validate()
        let schemaText = try schema.json()
        let table = SQL.Table(number: s.number, schema: schema)
        return try sqliteWork("making columns of `\(s.name)` searchable") {
            try withWriter { c, _ in
                guard let current = catalog.withLock({ $0[s.name] }), current === s else {
                    throw HybridStoreError(
                        .unknownCollection, "collection `\(s.name)` changed meanwhile; try again",
                        context: ["collection": s.name])
                }
                try c.transaction(immediate: true) {
                    try c.statement(SQL.setSchema).run([.integer(s.number), .text(schemaText)])
                    try c.execute(s.table.dropText)
                    try c.execute(table.createText!)
                    guard case .integer(let last)? = try c.statement(table.maxRow).scalar(),
                        case .integer(let total)? = try c.statement(table.count).scalar()
                    else { return }
                    let fill = try c.prepareOnce(table.indexTextRange)
                    let batch: Int64 = 20_000
                    var low: Int64 = 0
                    while low <= last {
                        try fill.run([.integer(low), .integer(low + batch - 1)])
                        low += batch
                        let counted = try c.prepareOnce(table.rowsBelow)
                        if let progress, case .integer(let done)? = try counted.scalar([.integer(low)]) {
                            progress(Int(done), Int(total))
                        }
                    }
                }
                c.evictStatements(containing: s.table.textName)
                let fresh = s.replacingSchema(schema)
                catalog.withLock { $0[s.name] = fresh }
                return fresh.handle
            }
        }
    }
}
