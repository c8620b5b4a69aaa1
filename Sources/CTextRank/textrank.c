// FTS5 auxiliary functions for keyword ranking (see ctextrank.h).
#include "ctextrank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/// BM25's term-frequency saturation and length normalisation, as FTS5's built-in bm25() uses them.
static const double k1 = 1.2;
static const double b = 0.75;

struct hs_doc_lengths {
    /// Tokens + 1 by row (0: not known; the ranking then asks FTS5).
    uint32_t *tokens;
    int64_t capacity;
};

hs_doc_lengths *hs_doc_lengths_create(void) {
    hs_doc_lengths *lengths = calloc(1, sizeof(hs_doc_lengths));
    return lengths;
}

void hs_doc_lengths_free(hs_doc_lengths *lengths) {
    if (lengths == NULL) return;
    free(lengths->tokens);
    free(lengths);
}

int hs_doc_lengths_set(hs_doc_lengths *lengths, int64_t row, int64_t tokens) {
    if (lengths == NULL || row < 0 || row >= ((int64_t)1 << 40)) return SQLITE_RANGE;
    if (row >= lengths->capacity) {
        int64_t capacity = lengths->capacity < 1024 ? 1024 : lengths->capacity;
        while (capacity <= row) capacity *= 2;
        uint32_t *grown = realloc(lengths->tokens, (size_t)capacity * sizeof(uint32_t));
        if (grown == NULL) return SQLITE_NOMEM;
        memset(grown + lengths->capacity, 0, (size_t)(capacity - lengths->capacity) * sizeof(uint32_t));
        lengths->tokens = grown;
        lengths->capacity = capacity;
    }
    lengths->tokens[row] = tokens < 0 ? 0 : tokens >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)tokens + 1;
    return SQLITE_OK;
}

const uint32_t *hs_doc_lengths_tokens(const hs_doc_lengths *lengths) { return lengths == NULL ? NULL : lengths->tokens; }

int64_t hs_doc_lengths_capacity(const hs_doc_lengths *lengths) { return lengths == NULL ? 0 : lengths->capacity; }

int hs_bind_doc_lengths(sqlite3_stmt *statement, int index, hs_doc_lengths *lengths) {
    return sqlite3_bind_pointer(statement, index, lengths, "hs_doc_lengths", NULL);
}

/// What BM25 needs once per query: the phrases' IDF and the corpus's average length.
typedef struct {
    int phrases;
    double avgTokens;
    double idf[];
} QueryStatistics;

static int countRow(const Fts5ExtensionApi *api, Fts5Context *fts, void *context) {
    (void)api;
    (void)fts;
    *(sqlite3_int64 *)context += 1;
    return SQLITE_OK;
}

static double idfOf(double rows, double docs) {
    double idf = log((rows - docs + 0.5) / (docs + 0.5));
    return idf <= 0.0 ? 1e-6 : idf;
}

/// The query's statistics: passed in (`rows, avgTokens, docs_0…`) or, with none, FTS5's own of the whole
/// table (its row count, total tokens, and each phrase's documents counted through xQueryPhrase), exactly
/// as the built-in bm25() computes them. Cached for the query.
static QueryStatistics *statisticsOf(const Fts5ExtensionApi *api, Fts5Context *fts, int nVal, sqlite3_value **args,
                                     int *rc) {
    QueryStatistics *stats = api->xGetAuxdata(fts, 0);
    if (stats != NULL) return stats;
    int phrases = api->xPhraseCount(fts);
    stats = sqlite3_malloc64(sizeof(QueryStatistics) + sizeof(double) * (sqlite3_uint64)(phrases > 0 ? phrases : 1));
    if (stats == NULL) {
        *rc = SQLITE_NOMEM;
        return NULL;
    }
    stats->phrases = phrases;
    if (nVal >= 2) {
        double rows = sqlite3_value_double(args[0]);
        stats->avgTokens = sqlite3_value_double(args[1]);
        for (int i = 0; i < phrases; i++) stats->idf[i] = idfOf(rows, 2 + i < nVal ? sqlite3_value_double(args[2 + i]) : 0);
    } else {
        sqlite3_int64 rows = 0, tokens = 0;
        *rc = api->xRowCount(fts, &rows);
        if (*rc == SQLITE_OK) *rc = api->xColumnTotalSize(fts, -1, &tokens);
        stats->avgTokens = rows > 0 ? (double)tokens / (double)rows : 0;
        for (int i = 0; *rc == SQLITE_OK && i < phrases; i++) {
            sqlite3_int64 docs = 0;
            *rc = api->xQueryPhrase(fts, i, &docs, countRow);
            stats->idf[i] = idfOf((double)rows, (double)docs);
        }
    }
    if (*rc == SQLITE_OK) *rc = api->xSetAuxdata(fts, stats, sqlite3_free);
    else sqlite3_free(stats);
    return *rc == SQLITE_OK ? stats : NULL;
}

static void hs_bm25(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int nVal,
                    sqlite3_value **args) {
    if (nVal < 1) {
        sqlite3_result_error(ctx, "hs_bm25: expects the document lengths (or NULL), then optionally rows, average tokens and one document count per phrase", -1);
        return;
    }
    hs_doc_lengths *lengths = sqlite3_value_pointer(args[0], "hs_doc_lengths");
    int rc = SQLITE_OK;
    QueryStatistics *stats = statisticsOf(api, fts, nVal - 1, args + 1, &rc);
    if (stats == NULL) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    if (!(stats->avgTokens > 0)) {
        sqlite3_result_double(ctx, 0.0);
        return;
    }
    int phrases = stats->phrases;
    double stackFreq[16];
    double *freq = phrases <= 16 ? stackFreq : sqlite3_malloc64(sizeof(double) * (sqlite3_uint64)phrases);
    if (freq == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    memset(freq, 0, sizeof(double) * (size_t)(phrases > 0 ? phrases : 0));
    int instances = 0;
    rc = api->xInstCount(fts, &instances);
    for (int i = 0; rc == SQLITE_OK && i < instances; i++) {
        int phrase = 0, column = 0, offset = 0;
        rc = api->xInst(fts, i, &phrase, &column, &offset);
        if (rc == SQLITE_OK && phrase >= 0 && phrase < phrases) freq[phrase] += 1.0;
    }
    // The row's length: from the lengths kept in memory when known (FTS5 reads a size record per row, which
    // costs most of a ranking's time), else FTS5's.
    int tokens = 0;
    sqlite3_int64 row = api->xRowid(fts);
    if (lengths != NULL && row >= 0 && row < lengths->capacity && lengths->tokens[row] != 0) {
        tokens = (int)(lengths->tokens[row] - 1);
    } else if (rc == SQLITE_OK) {
        rc = api->xColumnSize(fts, -1, &tokens);
    }
    double score = 0.0;
    for (int i = 0; rc == SQLITE_OK && i < phrases; i++) {
        score += stats->idf[i] * ((freq[i] * (k1 + 1.0)) / (freq[i] + k1 * (1 - b + b * (double)tokens / stats->avgTokens)));
    }
    if (freq != stackFreq) sqlite3_free(freq);
    if (rc == SQLITE_OK) {
        sqlite3_result_double(ctx, -1.0 * score);
    } else {
        sqlite3_result_error_code(ctx, rc);
    }
}

/// `hs_docsize_tokens(sz)`: the token count an FTS5 `_docsize` record holds, summed over its columns. The record
/// is one SQLite varint per column (big-endian groups of 7 bits, high bit set on all but the last; a ninth
/// byte carries 8 bits). A malformed record (cut short) counts what it holds.
static void hs_docsize_tokens(sqlite3_context *ctx, int nVal, sqlite3_value **args) {
    (void)nVal;
    const unsigned char *bytes = sqlite3_value_blob(args[0]);
    int length = sqlite3_value_bytes(args[0]);
    sqlite3_int64 total = 0;
    int at = 0;
    while (bytes != NULL && at < length) {
        sqlite3_uint64 value = 0;
        for (int i = 0; i < 9 && at < length; i++) {
            unsigned char byte = bytes[at++];
            if (i == 8) {
                value = (value << 8) | byte;
                break;
            }
            value = (value << 7) | (byte & 0x7f);
            if ((byte & 0x80) == 0) break;
        }
        if (value > (sqlite3_uint64)0x7fffffff) value = 0x7fffffff;
        total += (sqlite3_int64)value;
    }
    sqlite3_result_int64(ctx, total);
}

/// The connection's fts5_api, fetched the documented way: `SELECT fts5(?1)` with a pointer bound as
/// "fts5_api_ptr".
fts5_api *hs_fts5_api(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *statement = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &statement, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_pointer(statement, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(statement);
    sqlite3_finalize(statement);
    return api;
}

int hs_register_text_rank(sqlite3 *db) {
    fts5_api *api = hs_fts5_api(db);
    if (api == NULL || api->iVersion < 2) return SQLITE_ERROR;
    int rc = api->xCreateFunction(api, "hs_bm25", NULL, hs_bm25, NULL);
    if (rc != SQLITE_OK) return rc;
    return sqlite3_create_function_v2(db, "hs_docsize_tokens", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                      NULL, hs_docsize_tokens, NULL, NULL, NULL);
}
