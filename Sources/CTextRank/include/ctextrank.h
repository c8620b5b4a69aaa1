#ifndef CTEXTRANK_H
#define CTEXTRANK_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/// Registers HybridStore's FTS5 functions on a connection (call once per connection):
///
/// - `hs_bm25(fts, lengths [, rows, avgTokens, docs_0, ..., docs_{p-1}])`: Okapi BM25 of the current row for
///   the query's p phrases, with the formula, constants (k1 = 1.2, b = 0.75) and sign of FTS5's built-in
///   `bm25()` (more negative is a better match). `lengths` is a `hs_doc_lengths` bound with
///   `hs_bind_doc_lengths` (or NULL): a row's length comes from it when known, else from FTS5's size record
///   (reading that record per row is most of what ranking costs). With only `lengths`, the corpus statistics
///   are FTS5's of the whole table, as `bm25()` uses; given, they are the caller's (a tenant's own rows, so
///   its scores reveal nothing of other tenants' rows).
/// - `hs_docsize_tokens(sz)` (a scalar function): the tokens of a row as its FTS5 `_docsize` record counts them,
///   over all columns (BM25's document length).
///
/// Returns an SQLite result code (SQLITE_OK, or an error when FTS5 is missing).
int hs_register_text_rank(sqlite3 *db);

/// Rows' token counts kept in memory for `hs_bm25`. Not thread-safe: the caller serializes `set` against
/// every statement that reads it (HybridStore: the collection's lock, shared by readers, exclusive by writers).
typedef struct hs_doc_lengths hs_doc_lengths;
hs_doc_lengths *hs_doc_lengths_create(void);
void hs_doc_lengths_free(hs_doc_lengths *lengths);
/// Records row `row`'s token count (a negative count forgets it); grows as needed. SQLITE_OK, SQLITE_NOMEM, or
/// SQLITE_RANGE for a row outside [0, 2^40).
int hs_doc_lengths_set(hs_doc_lengths *lengths, int64_t row, int64_t tokens);
/// Binds `lengths` as parameter `index` of a statement calling `hs_bm25` (SQLite's pointer passing).
int hs_bind_doc_lengths(sqlite3_stmt *statement, int index, hs_doc_lengths *lengths);

/// The raw token counts (tokens + 1 by row, 0 unknown) and their capacity, for `hs_postings_top`.
const uint32_t *hs_doc_lengths_tokens(const hs_doc_lengths *lengths);
int64_t hs_doc_lengths_capacity(const hs_doc_lengths *lengths);

/// The connection's fts5_api (NULL without FTS5).
fts5_api *hs_fts5_api(sqlite3 *db);

/// One of the connection's FTS5 tokenizers, created as a `tokenize` option names it ("porter unicode61": the
/// porter tokenizer over unicode61). Valid while the connection is open; close it before the connection.
typedef struct hs_tokenizer hs_tokenizer;
int hs_tokenizer_open(sqlite3 *db, const char *spec, hs_tokenizer **out);
void hs_tokenizer_close(hs_tokenizer *tokenizer);

/// Posting lists of a collection's searchable text: per term, the rows holding it (ascending) and how often,
/// tokenized by the FTS5 tokenizer the collection's index uses, so they hold what FTS5's index holds. Rows are
/// below 2^32. Not thread-safe: the caller serializes changes against reads (HybridStore: the collection's lock).
typedef struct hs_postings hs_postings;
hs_postings *hs_postings_create(void);
void hs_postings_free(hs_postings *p);
/// Bytes held.
size_t hs_postings_bytes(const hs_postings *p);
/// (Re)indexes a row from its searchable columns' text (`texts[c]` NULL for a NULL value): SQLITE_OK,
/// SQLITE_NOMEM, SQLITE_TOOBIG (a term more than 65,535 times in a row), SQLITE_RANGE (a row outside
/// [0, 2^32)) or the tokenizer's error; on an error the row is left out.
int hs_postings_index_row(hs_postings *p, hs_tokenizer *tokenizer, int64_t row, int columns, const char *const *texts,
                          const int *lengths);
/// Indexes every row a statement returns (bound, not yet stepped; columns `row, text_1, …, text_columns`).
/// SQLITE_OK or the first error (of stepping, or as `hs_postings_index_row`).
int hs_postings_index_statement(hs_postings *p, hs_tokenizer *tokenizer, sqlite3_stmt *statement, int columns);
/// Replaces each of `rows` in `into` by what `from` holds of it (nothing: the row is taken out). SQLITE_OK or
/// SQLITE_NOMEM (then `into` may hold some of the rows only: rebuild it).
int hs_postings_move_rows(hs_postings *into, const hs_postings *from, const int64_t *rows, int count);
/// Takes a row out (a no-op for a row not in).
void hs_postings_remove_row(hs_postings *p, int64_t row);
/// Tokenizes a query phrase: returns how many tokens it has (-1 on a tokenizer error) and, in `term`, the
/// first's id (-1 when no row holds it).
int hs_postings_query_term(const hs_postings *p, hs_tokenizer *tokenizer, const char *text, int n, int32_t *term);
/// Rows holding a term (0 for -1).
int64_t hs_postings_documents(const hs_postings *p, int32_t term);

#define HS_POSTINGS_MAX_PHRASES 16
/// The best `depth` rows by BM25 for a query of single-term phrases OR'ed (`terms`, -1 for a term no row
/// holds), over every row holding any, with the constants, IDF and summation order of `hs_bm25` and FTS5's
/// bm25(): `rows` and `avgTokens` are the corpus's rows and average tokens, each phrase's document count its
/// list's length, a row's length from `lengths`. Writes rows and scores (positive, higher better) best first,
/// ties by the lower row, into arrays of `depth`; `matches` gets the rows scored. Returns how many were
/// written, or a negative number: -1 bad arguments, -2 out of memory, -3 a matching row's length is not in
/// `lengths`.
int hs_postings_top(const hs_postings *p, const hs_doc_lengths *lengths, const int32_t *terms, int phrases,
                    double rows, double avgTokens, int depth, int64_t *outRows, double *outScores, int64_t *matches);

#endif
