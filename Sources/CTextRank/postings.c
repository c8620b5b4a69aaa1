// Posting lists of a collection's searchable text in memory, for the keyword arm's top-k (see ctextrank.h).
#include "ctextrank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/// BM25's constants and IDF, exactly as `hs_bm25` (textrank.c) and FTS5's bm25() use them.
static const double k1 = 1.2;
static const double b = 0.75;

static double idfOf(double rows, double docs) {
    double idf = log((rows - docs + 0.5) / (docs + 0.5));
    return idf <= 0.0 ? 1e-6 : idf;
}

typedef struct {
    uint32_t *rows;  // ascending
    uint16_t *freqs; // the term's instances in the row
    uint32_t count, capacity;
} PostingList;

struct hs_postings {
    // The term dictionary: bytes in an arena, found by open addressing on a hash of the bytes.
    char *arena;
    size_t arenaUsed, arenaCapacity;
    size_t *termOffset;
    uint32_t *termLength;
    PostingList *lists;
    uint32_t termCount, termCapacity;
    int32_t *slots; // term id or -1; capacity a power of two, at most half full
    uint32_t slotCapacity;
    // Each row's distinct terms (to take them out when the row changes or goes): [count, term…] or NULL.
    uint32_t **forward;
    int64_t rowCapacity;
    size_t postingBytes, forwardBytes;
};

struct hs_tokenizer {
    fts5_tokenizer api;
    Fts5Tokenizer *instance;
};

hs_postings *hs_postings_create(void) { return calloc(1, sizeof(hs_postings)); }

void hs_postings_free(hs_postings *p) {
    if (p == NULL) return;
    for (uint32_t t = 0; t < p->termCount; t++) {
        free(p->lists[t].rows);
        free(p->lists[t].freqs);
    }
    for (int64_t r = 0; r < p->rowCapacity; r++) free(p->forward[r]);
    free(p->forward);
    free(p->lists);
    free(p->termOffset);
    free(p->termLength);
    free(p->slots);
    free(p->arena);
    free(p);
}

size_t hs_postings_bytes(const hs_postings *p) {
    if (p == NULL) return 0;
    return sizeof(*p) + p->arenaCapacity + (size_t)p->termCapacity * (sizeof(size_t) + sizeof(uint32_t) + sizeof(PostingList)) +
           (size_t)p->slotCapacity * sizeof(int32_t) + (size_t)p->rowCapacity * sizeof(uint32_t *) + p->postingBytes +
           p->forwardBytes;
}

static uint64_t hashOf(const char *bytes, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)bytes[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/// The slot holding `bytes`, or the empty slot where it would go.
static uint32_t slotOf(const hs_postings *p, const char *bytes, int n) {
    uint32_t mask = p->slotCapacity - 1;
    uint32_t i = (uint32_t)hashOf(bytes, n) & mask;
    while (p->slots[i] >= 0) {
        int32_t t = p->slots[i];
        if (p->termLength[t] == (uint32_t)n && memcmp(p->arena + p->termOffset[t], bytes, (size_t)n) == 0) return i;
        i = (i + 1) & mask;
    }
    return i;
}

int32_t hs_postings_term(const hs_postings *p, const char *bytes, int n) {
    if (p == NULL || p->slotCapacity == 0 || n < 0) return -1;
    return p->slots[slotOf(p, bytes, n)];
}

static int growSlots(hs_postings *p) {
    uint32_t capacity = p->slotCapacity == 0 ? 1024 : p->slotCapacity * 2;
    int32_t *slots = malloc(sizeof(int32_t) * capacity);
    if (slots == NULL) return SQLITE_NOMEM;
    memset(slots, 0xff, sizeof(int32_t) * capacity);
    free(p->slots);
    p->slots = slots;
    p->slotCapacity = capacity;
    for (uint32_t t = 0; t < p->termCount; t++) p->slots[slotOf(p, p->arena + p->termOffset[t], (int)p->termLength[t])] = (int32_t)t;
    return SQLITE_OK;
}

/// The id of term `bytes`, added when new; -1 when memory ran out.
static int32_t internTerm(hs_postings *p, const char *bytes, int n) {
    if ((p->termCount + 1) * 2 > p->slotCapacity && growSlots(p) != SQLITE_OK) return -1;
    uint32_t slot = slotOf(p, bytes, n);
    if (p->slots[slot] >= 0) return p->slots[slot];
    if (p->termCount >= (uint32_t)INT32_MAX) return -1;
    if (p->arenaUsed + (size_t)n > p->arenaCapacity) {
        size_t capacity = p->arenaCapacity < 4096 ? 4096 : p->arenaCapacity;
        while (capacity < p->arenaUsed + (size_t)n) capacity *= 2;
        char *arena = realloc(p->arena, capacity);
        if (arena == NULL) return -1;
        p->arena = arena;
        p->arenaCapacity = capacity;
    }
    if (p->termCount == p->termCapacity) {
        uint32_t capacity = p->termCapacity < 256 ? 256 : p->termCapacity * 2;
        size_t *offsets = realloc(p->termOffset, sizeof(size_t) * capacity);
        if (offsets == NULL) return -1;
        p->termOffset = offsets;
        uint32_t *lengths = realloc(p->termLength, sizeof(uint32_t) * capacity);
        if (lengths == NULL) return -1;
        p->termLength = lengths;
        PostingList *lists = realloc(p->lists, sizeof(PostingList) * capacity);
        if (lists == NULL) return -1;
        p->lists = lists;
        p->termCapacity = capacity;
    }
    int32_t t = (int32_t)p->termCount++;
    memcpy(p->arena + p->arenaUsed, bytes, (size_t)n);
    p->termOffset[t] = p->arenaUsed;
    p->termLength[t] = (uint32_t)n;
    p->arenaUsed += (size_t)n;
    memset(&p->lists[t], 0, sizeof(PostingList));
    p->slots[slot] = t;
    return t;
}

/// Index of `row` in the list, or of where it would go.
static uint32_t positionOf(const PostingList *list, uint32_t row) {
    uint32_t lo = 0, hi = list->count;
    if (hi > 0 && list->rows[hi - 1] < row) return hi;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (list->rows[mid] < row) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int addPosting(hs_postings *p, int32_t term, uint32_t row, uint32_t freq) {
    if (freq > UINT16_MAX) return SQLITE_TOOBIG; // a count the list cannot hold: the caller ranks in SQLite
    PostingList *list = &p->lists[term];
    if (list->count == list->capacity) {
        uint32_t capacity = list->capacity < 4 ? 4 : list->capacity + list->capacity / 2;
        uint32_t *rows = realloc(list->rows, sizeof(uint32_t) * capacity);
        if (rows == NULL) return SQLITE_NOMEM;
        list->rows = rows;
        uint16_t *freqs = realloc(list->freqs, sizeof(uint16_t) * capacity);
        if (freqs == NULL) return SQLITE_NOMEM;
        list->freqs = freqs;
        p->postingBytes += (size_t)(capacity - list->capacity) * (sizeof(uint32_t) + sizeof(uint16_t));
        list->capacity = capacity;
    }
    uint32_t at = positionOf(list, row);
    if (at < list->count && list->rows[at] == row) {
        list->freqs[at] = (uint16_t)freq;
        return SQLITE_OK;
    }
    memmove(list->rows + at + 1, list->rows + at, sizeof(uint32_t) * (list->count - at));
    memmove(list->freqs + at + 1, list->freqs + at, sizeof(uint16_t) * (list->count - at));
    list->rows[at] = row;
    list->freqs[at] = (uint16_t)freq;
    list->count++;
    return SQLITE_OK;
}

static void removePosting(hs_postings *p, int32_t term, uint32_t row) {
    PostingList *list = &p->lists[term];
    uint32_t at = positionOf(list, row);
    if (at >= list->count || list->rows[at] != row) return;
    memmove(list->rows + at, list->rows + at + 1, sizeof(uint32_t) * (list->count - at - 1));
    memmove(list->freqs + at, list->freqs + at + 1, sizeof(uint16_t) * (list->count - at - 1));
    list->count--;
}

void hs_postings_remove_row(hs_postings *p, int64_t row) {
    if (p == NULL || row < 0 || row >= p->rowCapacity || p->forward[row] == NULL) return;
    uint32_t *terms = p->forward[row];
    for (uint32_t i = 1; i <= terms[0]; i++) removePosting(p, (int32_t)terms[i], (uint32_t)row);
    p->forwardBytes -= sizeof(uint32_t) * (terms[0] + 1);
    free(terms);
    p->forward[row] = NULL;
}

/// Makes room in the per-row table for `row`.
static int reserveRow(hs_postings *p, int64_t row) {
    if (row < p->rowCapacity) return SQLITE_OK;
    int64_t capacity = p->rowCapacity < 1024 ? 1024 : p->rowCapacity;
    while (capacity <= row) capacity *= 2;
    uint32_t **forward = realloc(p->forward, sizeof(uint32_t *) * (size_t)capacity);
    if (forward == NULL) return SQLITE_NOMEM;
    memset(forward + p->rowCapacity, 0, sizeof(uint32_t *) * (size_t)(capacity - p->rowCapacity));
    p->forward = forward;
    p->rowCapacity = capacity;
    return SQLITE_OK;
}

int hs_tokenizer_open(sqlite3 *db, const char *spec, hs_tokenizer **out) {
    *out = NULL;
    fts5_api *api = hs_fts5_api(db);
    if (api == NULL) return SQLITE_ERROR;
    // The spec is FTS5's `tokenize` option as HybridStore writes it: space-separated barewords.
    char buffer[256];
    size_t n = strlen(spec);
    if (n >= sizeof(buffer)) return SQLITE_RANGE;
    memcpy(buffer, spec, n + 1);
    const char *words[16];
    int count = 0;
    char *save = NULL;
    for (char *at = strtok_r(buffer, " ", &save); at != NULL && count < 16; at = strtok_r(NULL, " ", &save)) words[count++] = at;
    if (count == 0) return SQLITE_ERROR;
    hs_tokenizer *tokenizer = calloc(1, sizeof(hs_tokenizer));
    if (tokenizer == NULL) return SQLITE_NOMEM;
    void *context = NULL;
    int rc = api->xFindTokenizer(api, words[0], &context, &tokenizer->api);
    if (rc == SQLITE_OK) rc = tokenizer->api.xCreate(context, words + 1, count - 1, &tokenizer->instance);
    if (rc != SQLITE_OK) {
        free(tokenizer);
        return rc;
    }
    *out = tokenizer;
    return SQLITE_OK;
}

void hs_tokenizer_close(hs_tokenizer *tokenizer) {
    if (tokenizer == NULL) return;
    tokenizer->api.xDelete(tokenizer->instance);
    free(tokenizer);
}

/// A row's terms while it is tokenized: term id and instances, then sorted and merged.
typedef struct {
    hs_postings *postings;
    uint64_t *entries; // term << 32 | 1 per token
    uint32_t count, capacity;
    int rc;
} RowTokens;

static int collectToken(void *context, int flags, const char *token, int n, int start, int end) {
    (void)flags;
    (void)start;
    (void)end;
    RowTokens *tokens = context;
    // Colocated tokens (synonyms) are indexed like any other; none of FTS5's built-in tokenizers makes them.
    int32_t term = internTerm(tokens->postings, token, n);
    if (term < 0) return tokens->rc = SQLITE_NOMEM;
    if (tokens->count == tokens->capacity) {
        uint32_t capacity = tokens->capacity < 64 ? 64 : tokens->capacity * 2;
        uint64_t *entries = realloc(tokens->entries, sizeof(uint64_t) * capacity);
        if (entries == NULL) return tokens->rc = SQLITE_NOMEM;
        tokens->entries = entries;
        tokens->capacity = capacity;
    }
    tokens->entries[tokens->count++] = (uint64_t)term;
    return SQLITE_OK;
}

static int compareEntries(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

int hs_postings_index_row(hs_postings *p, hs_tokenizer *tokenizer, int64_t row, int columns, const char *const *texts,
                          const int *lengths) {
    if (p == NULL || tokenizer == NULL || row < 0 || row > (int64_t)UINT32_MAX) return SQLITE_RANGE;
    hs_postings_remove_row(p, row);
    if (reserveRow(p, row) != SQLITE_OK) return SQLITE_NOMEM;
    RowTokens tokens = {p, NULL, 0, 0, SQLITE_OK};
    int rc = SQLITE_OK;
    for (int c = 0; rc == SQLITE_OK && c < columns; c++) {
        if (texts[c] == NULL) continue;
        rc = tokenizer->api.xTokenize(tokenizer->instance, &tokens, FTS5_TOKENIZE_DOCUMENT, texts[c], lengths[c],
                                      collectToken);
        if (tokens.rc != SQLITE_OK) rc = tokens.rc;
    }
    if (rc == SQLITE_OK && tokens.count > 0) {
        qsort(tokens.entries, tokens.count, sizeof(uint64_t), compareEntries);
        uint32_t distinct = 0;
        for (uint32_t i = 0; i < tokens.count; i++)
            if (i == 0 || tokens.entries[i] != tokens.entries[i - 1]) distinct++;
        uint32_t *forward = malloc(sizeof(uint32_t) * (distinct + 1));
        if (forward == NULL) rc = SQLITE_NOMEM;
        else {
            forward[0] = 0;
            p->forward[row] = forward;
            p->forwardBytes += sizeof(uint32_t) * (distinct + 1);
            for (uint32_t i = 0; rc == SQLITE_OK && i < tokens.count;) {
                uint32_t j = i;
                while (j < tokens.count && tokens.entries[j] == tokens.entries[i]) j++;
                int32_t term = (int32_t)tokens.entries[i];
                rc = addPosting(p, term, (uint32_t)row, j - i);
                if (rc == SQLITE_OK) forward[++forward[0]] = (uint32_t)term;
                i = j;
            }
        }
    }
    free(tokens.entries);
    if (rc != SQLITE_OK) hs_postings_remove_row(p, row);
    return rc;
}

typedef struct {
    const hs_postings *postings;
    int tokens;
    int32_t term;
} QueryTokens;

static int lookupToken(void *context, int flags, const char *token, int n, int start, int end) {
    (void)flags;
    (void)start;
    (void)end;
    QueryTokens *q = context;
    if (q->tokens++ == 0) q->term = hs_postings_term(q->postings, token, n);
    return SQLITE_OK;
}

int hs_postings_query_term(const hs_postings *p, hs_tokenizer *tokenizer, const char *text, int n, int32_t *term) {
    QueryTokens q = {p, 0, -1};
    int rc = tokenizer->api.xTokenize(tokenizer->instance, &q, FTS5_TOKENIZE_QUERY, text, n, lookupToken);
    *term = q.term;
    return rc == SQLITE_OK ? q.tokens : -1;
}

int64_t hs_postings_documents(const hs_postings *p, int32_t term) {
    if (p == NULL || term < 0 || (uint32_t)term >= p->termCount) return 0;
    return p->lists[term].count;
}

/// "a ranks before b": higher score, then lower row.
static int before(double scoreA, uint32_t rowA, double scoreB, uint32_t rowB) {
    return scoreA > scoreB || (scoreA == scoreB && rowA < rowB);
}

/// Sifts the heap's root down (the root is the worst kept).
static void siftDown(double *scores, uint32_t *rows, int count, int at) {
    for (;;) {
        int worst = at, l = 2 * at + 1, r = l + 1;
        if (l < count && before(scores[worst], rows[worst], scores[l], rows[l])) worst = l;
        if (r < count && before(scores[worst], rows[worst], scores[r], rows[r])) worst = r;
        if (worst == at) return;
        double s = scores[at];
        scores[at] = scores[worst];
        scores[worst] = s;
        uint32_t w = rows[at];
        rows[at] = rows[worst];
        rows[worst] = w;
        at = worst;
    }
}

int hs_postings_top(const hs_postings *p, const hs_doc_lengths *lengths, const int32_t *terms, int phrases,
                    double rows, double avgTokens, int depth, int64_t *outRows, double *outScores, int64_t *matches) {
    *matches = 0;
    if (phrases < 1 || phrases > HS_POSTINGS_MAX_PHRASES || depth < 1) return -1;
    double idf[HS_POSTINGS_MAX_PHRASES];
    const PostingList *lists[HS_POSTINGS_MAX_PHRASES];
    uint32_t at[HS_POSTINGS_MAX_PHRASES];
    for (int i = 0; i < phrases; i++) {
        lists[i] = terms[i] >= 0 && (uint32_t)terms[i] < p->termCount ? &p->lists[terms[i]] : NULL;
        idf[i] = idfOf(rows, lists[i] != NULL ? (double)lists[i]->count : 0);
        at[i] = 0;
    }
    double *heapScores = malloc(sizeof(double) * (size_t)depth);
    uint32_t *heapRows = malloc(sizeof(uint32_t) * (size_t)depth);
    if (heapScores == NULL || heapRows == NULL) {
        free(heapScores);
        free(heapRows);
        return -2;
    }
    int kept = 0;
    int64_t matched = 0;
    int failed = 0;
    const uint32_t *known = hs_doc_lengths_tokens(lengths);
    int64_t knownCount = hs_doc_lengths_capacity(lengths);
    for (;;) {
        // The next row in any list: rows are merged in ascending order across the phrases.
        uint32_t row = UINT32_MAX;
        int any = 0;
        for (int i = 0; i < phrases; i++) {
            if (lists[i] != NULL && at[i] < lists[i]->count && (!any || lists[i]->rows[at[i]] < row)) {
                row = lists[i]->rows[at[i]];
                any = 1;
            }
        }
        if (!any) break;
        if ((int64_t)row >= knownCount || known[row] == 0) {
            failed = 1; // a length not in memory: the caller ranks in SQLite instead
            break;
        }
        double tokens = (double)(known[row] - 1);
        // Summed in phrase order from 0, as hs_bm25 sums it (a phrase absent from the row adds +0.0).
        double score = 0.0;
        for (int i = 0; i < phrases; i++) {
            if (lists[i] != NULL && at[i] < lists[i]->count && lists[i]->rows[at[i]] == row) {
                double freq = (double)lists[i]->freqs[at[i]];
                score += idf[i] * ((freq * (k1 + 1.0)) / (freq + k1 * (1 - b + b * tokens / avgTokens)));
                at[i]++;
            }
        }
        matched++;
        if (kept < depth) {
            // Insert, keeping the worst at the root.
            int i = kept++;
            heapScores[i] = score;
            heapRows[i] = row;
            while (i > 0) {
                int parent = (i - 1) / 2;
                if (!before(heapScores[parent], heapRows[parent], heapScores[i], heapRows[i])) break;
                double s = heapScores[i];
                heapScores[i] = heapScores[parent];
                heapScores[parent] = s;
                uint32_t w = heapRows[i];
                heapRows[i] = heapRows[parent];
                heapRows[parent] = w;
                i = parent;
            }
        } else if (before(score, row, heapScores[0], heapRows[0])) {
            heapScores[0] = score;
            heapRows[0] = row;
            siftDown(heapScores, heapRows, kept, 0);
        }
    }
    if (failed) {
        free(heapScores);
        free(heapRows);
        return -3;
    }
    // Pop worst first into the back of the output: best first.
    int count = kept;
    while (kept > 0) {
        outRows[kept - 1] = heapRows[0];
        outScores[kept - 1] = heapScores[0];
        kept--;
        heapScores[0] = heapScores[kept];
        heapRows[0] = heapRows[kept];
        siftDown(heapScores, heapRows, kept, 0);
    }
    free(heapScores);
    free(heapRows);
    *matches = matched;
    return count;
}

int hs_postings_index_statement(hs_postings *p, hs_tokenizer *tokenizer, sqlite3_stmt *statement, int columns) {
    enum { maxColumns = 64 };
    if (columns < 0 || columns > maxColumns) return SQLITE_RANGE;
    const char *texts[maxColumns];
    int lengths[maxColumns];
    int rc;
    while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
        int64_t row = sqlite3_column_int64(statement, 0);
        for (int c = 0; c < columns; c++) {
            texts[c] = (const char *)sqlite3_column_text(statement, c + 1);
            lengths[c] = sqlite3_column_bytes(statement, c + 1);
        }
        int indexed = hs_postings_index_row(p, tokenizer, row, columns, texts, lengths);
        if (indexed != SQLITE_OK) return indexed;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int hs_postings_move_rows(hs_postings *into, const hs_postings *from, const int64_t *rows, int count) {
    for (int i = 0; i < count; i++) {
        int64_t row = rows[i];
        hs_postings_remove_row(into, row);
        if (row < 0 || row >= from->rowCapacity || from->forward[row] == NULL) continue;
        if (reserveRow(into, row) != SQLITE_OK) return SQLITE_NOMEM;
        const uint32_t *terms = from->forward[row];
        uint32_t *forward = malloc(sizeof(uint32_t) * (terms[0] + 1));
        if (forward == NULL) return SQLITE_NOMEM;
        forward[0] = 0;
        into->forward[row] = forward;
        into->forwardBytes += sizeof(uint32_t) * (terms[0] + 1);
        for (uint32_t j = 1; j <= terms[0]; j++) {
            const PostingList *list = &from->lists[terms[j]];
            uint32_t at = positionOf(list, (uint32_t)row);
            if (at >= list->count || list->rows[at] != (uint32_t)row) continue;
            int32_t term = internTerm(into, from->arena + from->termOffset[terms[j]], (int)from->termLength[terms[j]]);
            if (term < 0) return SQLITE_NOMEM;
            int rc = addPosting(into, term, (uint32_t)row, list->freqs[at]);
            if (rc != SQLITE_OK) return rc;
            forward[++forward[0]] = (uint32_t)term;
        }
    }
    return SQLITE_OK;
}
