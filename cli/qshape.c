/*
 * qshape's table (cli/qshape.h). The domain clean-up, the bucket arithmetic, the column
 * widths and the parent-domain rule follow Postfix's qshape.pl line by line, so its
 * readers (and their scripts) find what they expect; a sort of (domain, bucket) pairs
 * replaces the Perl hashes.
 */
#include "cli/qshape.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QSHAPE_MIN_WIDTH    80
#define QSHAPE_DOMAIN_WIDTH 18 /* qshape's $dwidth */
#define QSHAPE_MAX_BUCKETS  62 /* ages double: beyond this the headings overflow */

void qshape_defaults(struct qshape_options *o)
{
    *o = (struct qshape_options){
        .min_subdomains = 5, .buckets = 10, .bucket_minutes = 5, .width = QSHAPE_MIN_WIDTH};
}

static int qshape_number(const char *v, unsigned *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || n == 0 || n > 100000)
        return -1;
    *out = (unsigned)n;
    return 0;
}

int qshape_parse_args(int argc, char **argv, struct qshape_options *o, int *used, FILE *err)
{
    int i = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        for (const char *c = argv[i] + 1; *c; c++) {
            unsigned *target = *c == 'm'   ? &o->min_subdomains
                               : *c == 'b' ? &o->buckets
                               : *c == 't' ? &o->bucket_minutes
                               : *c == 'w' ? &o->width
                                           : NULL;
            if (target) {
                const char *v = c[1] ? c + 1 : i + 1 < argc ? argv[++i] : NULL;
                if (!v || qshape_number(v, target) < 0) {
                    fprintf(err, "qshape: -%c needs a positive number\n", *c);
                    return -1;
                }
                break;
            }
            if (*c == 's')
                o->senders = true;
            else if (*c == 'p')
                o->parents = true;
            else if (*c == 'l')
                o->linear = true;
            else {
                fprintf(err, "qshape: unknown option -%c\n", *c);
                return -1;
            }
        }
    }
    if (o->width < QSHAPE_MIN_WIDTH)
        o->width = QSHAPE_MIN_WIDTH;
    if (o->buckets > QSHAPE_MAX_BUCKETS)
        o->buckets = QSHAPE_MAX_BUCKETS;
    *used = i;
    return 0;
}

/* The bucket (1..buckets) of a message `age` seconds old: qshape's bucket(). */
static unsigned qshape_bucket(const struct qshape_options *o, time_t age)
{
    uint64_t tick = 60u * (uint64_t)o->bucket_minutes;
    uint64_t a = age > 0 ? (uint64_t)age : 0;
    if (a < tick)
        return 1;
    uint64_t b;
    if (o->linear) {
        b = a / tick + 1;
    } else {
        /* 2 + floor(log2(age / tick)) */
        b = 2;
        for (uint64_t limit = tick * 2; limit <= a && b < o->buckets; limit *= 2)
            b++;
    }
    return b < o->buckets ? (unsigned)b : o->buckets;
}

/* qshape's clean-up of an address into its domain, lower case: everything up to the last
 * '@' dropped, ".." made ".", one leading and one trailing dot dropped; the null sender
 * is MAILER-DAEMON. A new string, or NULL. */
static char *qshape_domain(const char *addr)
{
    if (!*addr)
        return strdup("MAILER-DAEMON");
    const char *at = strrchr(addr, '@');
    const char *s = at ? at + 1 : addr;
    size_t len = strlen(s);
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        d[n++] = (char)tolower((unsigned char)s[i]);
        if (s[i] == '.' && s[i + 1] == '.')
            i++;
    }
    d[n] = '\0';
    if (n > 1 && d[0] == '.') {
        memmove(d, d + 1, n--);
    }
    if (n > 1 && d[n - 1] == '.')
        d[--n] = '\0';
    return d;
}

/* qshape -p's parent: "a.b.example.com" -> ".b.example.com" -> ".example.com"; a top-level
 * domain is never one. A new string, NULL when there is none (errno untouched) or memory
 * ran out. */
static char *qshape_parent(const char *s, bool *oom)
{
    const char *p = *s == '.' ? s + 1 : s;
    const char *dot = strchr(p, '.');
    if (!dot || dot == p || !strchr(dot + 1, '.'))
        return NULL;
    size_t len = strlen(dot);
    char *r = malloc(len + 1);
    if (!r)
        *oom = true;
    else
        memcpy(r, dot, len + 1);
    return r;
}

struct qshape_pair {
    char *domain;
    unsigned bucket;
};

struct qshape_row {
    const char *domain;
    uint64_t *count; /* [0] total, [1..buckets] per bucket */
    unsigned sub;    /* subdomains seen (parent rows) */
};

struct qshape_acc {
    struct qshape_pair *v;
    size_t n, cap;
};

static int qshape_add(struct qshape_acc *a, char *domain, unsigned bucket)
{
    if (!domain)
        return -1;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct qshape_pair *v = realloc(a->v, cap * sizeof(*v));
        if (!v) {
            free(domain);
            return -1;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = (struct qshape_pair){domain, bucket};
    return 0;
}

/* One address: its domain and, with -p, each parent domain. */
static int qshape_add_addr(struct qshape_acc *a, const struct qshape_options *o, const char *addr,
                           unsigned bucket)
{
    char *d = qshape_domain(addr);
    if (qshape_add(a, d, bucket) < 0)
        return -1;
    bool oom = false;
    for (const char *p = d; o->parents;) {
        char *up = qshape_parent(p, &oom);
        if (!up)
            break;
        if (qshape_add(a, up, bucket) < 0)
            return -1;
        p = up;
    }
    return oom ? -1 : 0;
}

static int qshape_pair_cmp(const void *x, const void *y)
{
    return strcmp(((const struct qshape_pair *)x)->domain, ((const struct qshape_pair *)y)->domain);
}

static int qshape_row_cmp(const void *x, const void *y)
{
    const struct qshape_row *a = x, *b = y;
    if (a->count[0] != b->count[0])
        return a->count[0] > b->count[0] ? -1 : 1;
    size_t la = strlen(a->domain), lb = strlen(b->domain);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a->domain, b->domain);
}

static int qshape_row_find(const void *key, const void *row)
{
    return strcmp(key, ((const struct qshape_row *)row)->domain);
}

/* qshape's pdomain(): the domain right-aligned in `dw` columns (its tail after '+' or
 * ".+" when longer), then the columns. */
static void qshape_line(FILE *out, const char *domain, unsigned dw, const unsigned *widths,
                        char cells[][24], unsigned ncols)
{
    size_t len = strlen(domain);
    if (len > dw) {
        bool parent = domain[0] == '.';
        size_t keep = dw - (parent ? 2 : 1);
        fprintf(out, "%s%s", parent ? ".+" : "+", domain + len - keep);
    } else {
        fprintf(out, "%*s", (int)dw, domain);
    }
    for (unsigned i = 0; i < ncols; i++)
        fprintf(out, "%*s", (int)widths[i], cells[i]);
    fputc('\n', out);
}

static void qshape_counts(const uint64_t *count, unsigned ncols, char cells[][24])
{
    for (unsigned i = 0; i < ncols; i++)
        snprintf(cells[i], sizeof(cells[i]), "%llu", (unsigned long long)count[i]);
}

static int qshape_table(FILE *out, const struct qshape_options *o, struct qshape_acc *acc,
                        const uint64_t *total)
{
    unsigned ncols = o->buckets + 1;
    char heads[QSHAPE_MAX_BUCKETS + 1][24], cells[QSHAPE_MAX_BUCKETS + 1][24];
    unsigned widths[QSHAPE_MAX_BUCKETS + 1];
    /* qshape's results(): headings T, then each bucket's limit, the last one "N+" */
    uint64_t t = 0;
    int dw = (int)o->width;
    for (unsigned i = 0; i < ncols; i++) {
        if (i == 0)
            snprintf(heads[i], sizeof(heads[i]), "T");
        else if (i < o->buckets)
            snprintf(heads[i], sizeof(heads[i]), "%llu", (unsigned long long)t);
        else
            snprintf(heads[i], sizeof(heads[i]), "%llu+", (unsigned long long)t);
        if (i + 1 < o->buckets)
            t += t && !o->linear ? t : o->bucket_minutes;
        char c[24];
        snprintf(c, sizeof(c), "%llu", (unsigned long long)total[i]);
        size_t l = strlen(c) > strlen(heads[i]) ? strlen(c) : strlen(heads[i]);
        widths[i] = l > 2 ? (unsigned)l + 1 : 3;
        dw -= (int)widths[i];
    }
    if (dw < QSHAPE_DOMAIN_WIDTH)
        dw = QSHAPE_DOMAIN_WIDTH;

    /* group the (domain, bucket) pairs into rows */
    if (acc->n > 1)
        qsort(acc->v, acc->n, sizeof(acc->v[0]), qshape_pair_cmp);
    size_t nrows = 0;
    for (size_t i = 0; i < acc->n; i++)
        nrows += i == 0 || strcmp(acc->v[i].domain, acc->v[i - 1].domain) != 0;
    struct qshape_row *rows = calloc(nrows ? nrows : 1, sizeof(*rows));
    uint64_t *counts = calloc((nrows ? nrows : 1) * ncols, sizeof(*counts));
    if (!rows || !counts) {
        free(rows);
        free(counts);
        return -1;
    }
    size_t r = 0;
    for (size_t i = 0; i < acc->n; i++) {
        if (i > 0 && strcmp(acc->v[i].domain, acc->v[i - 1].domain) != 0)
            r++;
        rows[r].domain = acc->v[i].domain;
        rows[r].count = counts + r * ncols;
        rows[r].count[0]++;
        rows[r].count[acc->v[i].bucket]++;
    }
    /* a parent row counts its distinct children (qshape's %sub) */
    bool oom = false;
    for (size_t i = 0; o->parents && i < nrows; i++) {
        char *up = qshape_parent(rows[i].domain, &oom);
        if (!up)
            continue;
        struct qshape_row *p = bsearch(up, rows, nrows, sizeof(*rows), qshape_row_find);
        if (p)
            p->sub++;
        free(up);
    }
    if (nrows > 1)
        qsort(rows, nrows, sizeof(*rows), qshape_row_cmp);

    qshape_line(out, "", (unsigned)dw, widths, heads, ncols);
    qshape_counts(total, ncols, cells);
    qshape_line(out, "TOTAL", (unsigned)dw, widths, cells, ncols);
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].domain[0] == '.' && rows[i].sub < o->min_subdomains)
            continue;
        qshape_counts(rows[i].count, ncols, cells);
        qshape_line(out, rows[i].domain, (unsigned)dw, widths, cells, ncols);
    }
    free(rows);
    free(counts);
    return oom ? -1 : 0;
}

int qshape_print(FILE *out, const struct qshape_options *o, const struct envelope *const *msgs,
                 size_t n, time_t now)
{
    struct qshape_acc acc = {0};
    uint64_t total[QSHAPE_MAX_BUCKETS + 1] = {0};
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        const struct envelope *e = msgs[i];
        unsigned b = qshape_bucket(o, now - e->created);
        size_t open = 0;
        for (size_t k = 0; k < e->n_rcpts; k++)
            open += envelope_rcpt_open(e->rcpts[k].state);
        if (open == 0)
            continue;
        if (o->senders) {
            total[0]++;
            total[b]++;
            r = qshape_add_addr(&acc, o, e->sender ? e->sender : "", b);
            continue;
        }
        for (size_t k = 0; r == 0 && k < e->n_rcpts; k++) {
            if (!envelope_rcpt_open(e->rcpts[k].state))
                continue;
            total[0]++;
            total[b]++;
            r = qshape_add_addr(&acc, o, e->rcpts[k].addr ? e->rcpts[k].addr : "", b);
        }
    }
    if (r == 0)
        r = qshape_table(out, o, &acc, total);
    for (size_t i = 0; i < acc.n; i++)
        free(acc.v[i].domain);
    free(acc.v);
    return r;
}
