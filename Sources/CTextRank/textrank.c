// FTS5 auxiliary functions for keyword ranking under caller-supplied corpus statistics (see ctextrank.h).
#include "ctextrank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/// BM25's term-frequency saturation and length normalisation, as FTS5's built-in bm25() uses them.
static const double k1 = 1.2;
static const double b = 0.75;

static void hs_bm25(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int nVal,
                    sqlite3_value **args) {
    int phrases = api->xPhraseCount(fts);
    if (nVal != 2 + phrases) {
        sqlite3_result_error(ctx, "hs_bm25: expects rows, average tokens and one document count per phrase", -1);
        return;
    }
    double rows = sqlite3_value_double(args[0]);
    double avgTokens = sqlite3_value_double(args[1]);
    if (!(rows > 0) || !(avgTokens > 0)) {
        sqlite3_result_double(ctx, 0.0);
        return;
    }
    double stackFreq[16];
    double *freq = phrases <= 16 ? stackFreq : sqlite3_malloc64(sizeof(double) * (sqlite3_uint64)phrases);
    if (freq == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    memset(freq, 0, sizeof(double) * (size_t)phrases);
    int instances = 0;
    int rc = api->xInstCount(fts, &instances);
    for (int i = 0; rc == SQLITE_OK && i < instances; i++) {
        int phrase = 0, column = 0, offset = 0;
        rc = api->xInst(fts, i, &phrase, &column, &offset);
        if (rc == SQLITE_OK && phrase >= 0 && phrase < phrases) freq[phrase] += 1.0;
    }
    int tokens = 0;
    if (rc == SQLITE_OK) rc = api->xColumnSize(fts, -1, &tokens);
    double score = 0.0;
    for (int i = 0; rc == SQLITE_OK && i < phrases; i++) {
        double docs = sqlite3_value_double(args[2 + i]);
        double idf = log((rows - docs + 0.5) / (docs + 0.5));
        if (idf <= 0.0) idf = 1e-6;
        score += idf * (freq[i] * (k1 + 1.0)) / (freq[i] + k1 * (1.0 - b + b * (double)tokens / avgTokens));
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
        int i = 0;
        for (; i < 9 && at < length; i++) {
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
static fts5_api *fts5_of(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *statement = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &statement, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_pointer(statement, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(statement);
    sqlite3_finalize(statement);
    return api;
}

int hs_register_text_rank(sqlite3 *db) {
    fts5_api *api = fts5_of(db);
    if (api == NULL || api->iVersion < 2) return SQLITE_ERROR;
    int rc = api->xCreateFunction(api, "hs_bm25", NULL, hs_bm25, NULL);
    if (rc != SQLITE_OK) return rc;
    return sqlite3_create_function_v2(db, "hs_docsize_tokens", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                      NULL, hs_docsize_tokens, NULL, NULL, NULL);
}
