#ifndef CTEXTRANK_H
#define CTEXTRANK_H

#include <sqlite3.h>

/// Registers HybridStore's FTS5 auxiliary functions on a connection (call once per connection):
///
/// - `hs_bm25(fts, rows, avgTokens, docs_0, ..., docs_{p-1})`: Okapi BM25 of the current row for the query's
///   p phrases (k1 = 1.2, b = 0.75, the formula and sign of FTS5's built-in `bm25()`: more negative is a
///   better match), computed from corpus statistics the caller passes instead of the whole table's: `rows`
///   documents, `avgTokens` tokens per document on average, `docs_i` documents holding phrase i. With a
///   tenant's own statistics, a tenant's scores reveal nothing of other tenants' rows.
/// - `hs_docsize_tokens(sz)` (a scalar function): the tokens of a row as its FTS5 `_docsize` record counts them,
///   over all columns (BM25's document length), for a scope's total.
///
/// Returns an SQLite result code (SQLITE_OK, or an error when FTS5 is missing).
int hs_register_text_rank(sqlite3 *db);

#endif
