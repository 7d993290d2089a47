#include "compat/mc_m4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat/map_text.h"
#include "util/buf.h"
#include "util/fileset.h"

/* Limits that make every input end: real .mc files stay far below them. */
#define M4_MAX_INCLUDE_DEPTH 16
#define M4_MAX_NEST          64
#define M4_MAX_EXPANSION     (1024u * 1024) /* bytes of macro expansion in all */
#define M4_MAX_FRAMES        1024           /* pieces of input open at once */
#define M4_MAX_ARGS          64

/* A piece of input: a file, or text pushed back by a macro expansion (which keeps the
 * location of the call, so what it produces is reported where the .mc wrote it). */
struct m4_frame {
    char *data;
    size_t len, pos;
    struct mc_loc loc;
    bool is_file;
    struct m4_frame *next;
};

struct m4_macro {
    char *name, *body;
};

struct mc_m4 {
    const struct mc_m4_options *o;
    struct m4_frame *top;
    unsigned include_depth, n_frames;
    struct m4_macro *macros;
    size_t n_macros, cap_macros;
    struct map_strings files; /* names that locations point into */
    char lq, rq;
    bool no_comments; /* after cf.m4's changecom() */
    int divert;
    struct buf text; /* the output line being collected */
    struct mc_loc text_loc;
    size_t expanded;
    struct mc_m4_error *err;
};

enum m4_builtin {
    M4_DEFINE,
    M4_UNDEFINE,
    M4_IFDEF,
    M4_IFELSE,
    M4_INCLUDE,
    M4_SINCLUDE,
    M4_DIVERT,
    M4_CHANGEQUOTE,
    M4_NONE
};
static const char *const m4_builtin_names[] = {"define",  "undefine", "ifdef",  "ifelse",
                                               "include", "sinclude", "divert", "changequote"};

static int m4_fail(struct mc_m4 *m, struct mc_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int m4_fail(struct mc_m4 *m, struct mc_loc loc, const char *fmt, ...)
{
    va_list ap;
    snprintf(m->err->file, sizeof(m->err->file), "%s", loc.file);
    m->err->line = loc.line;
    va_start(ap, fmt);
    vsnprintf(m->err->msg, sizeof(m->err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int m4_push(struct mc_m4 *m, char *data, size_t len, struct mc_loc loc, bool is_file)
{
    struct m4_frame *f = m->n_frames < M4_MAX_FRAMES ? calloc(1, sizeof(*f)) : NULL;
    if (!f) {
        free(data);
        return m4_fail(m, loc,
                       m->n_frames < M4_MAX_FRAMES
                           ? "out of memory"
                           : "macros expand inside each other too deeply (recursion?)");
    }
    *f = (struct m4_frame){data, len, 0, loc, is_file, m->top};
    m->top = f;
    m->n_frames++;
    return 0;
}

static void m4_pop(struct mc_m4 *m)
{
    struct m4_frame *f = m->top;
    m->top = f->next;
    m->n_frames--;
    if (f->is_file)
        m->include_depth--;
    free(f->data);
    free(f);
}

static int m4_getc(struct mc_m4 *m)
{
    while (m->top && m->top->pos >= m->top->len)
        m4_pop(m);
    if (!m->top)
        return EOF;
    struct m4_frame *f = m->top;
    unsigned char c = (unsigned char)f->data[f->pos++];
    if (f->is_file && c == '\n')
        f->loc.line++;
    return c;
}

/* Only ever after a successful m4_getc: the character came from the top frame. */
static void m4_ungetc(struct mc_m4 *m)
{
    struct m4_frame *f = m->top;
    f->pos--;
    if (f->is_file && f->data[f->pos] == '\n')
        f->loc.line--;
}

static int m4_peek(struct mc_m4 *m)
{
    int c = m4_getc(m);
    if (c != EOF)
        m4_ungetc(m);
    return c;
}

static struct mc_loc m4_loc(struct mc_m4 *m)
{
    m4_peek(m);
    return m->top ? m->top->loc : (struct mc_loc){m->files.n ? m->files.v[0] : "-", 0};
}

static struct m4_macro *m4_find(const struct mc_m4 *m, const char *name)
{
    for (size_t i = 0; i < m->n_macros; i++)
        if (strcmp(m->macros[i].name, name) == 0)
            return &m->macros[i];
    return NULL;
}

bool mc_m4_is_defined(const struct mc_m4 *m, const char *name)
{
    return m4_find(m, name) != NULL;
}

int mc_m4_define(struct mc_m4 *m, const char *name, const char *value)
{
    struct m4_macro *d = m4_find(m, name);
    char *body = strdup(value);
    if (!body)
        return -1;
    if (d) {
        free(d->body);
        d->body = body;
        return 0;
    }
    if (map_grow((void **)&m->macros, &m->cap_macros, m->n_macros, sizeof(*m->macros)) < 0 ||
        !(m->macros[m->n_macros].name = strdup(name))) {
        free(body);
        return -1;
    }
    m->macros[m->n_macros++].body = body;
    return 0;
}

int mc_m4_push_text(struct mc_m4 *m, const char *text)
{
    char *copy = strdup(text);
    return copy ? m4_push(m, copy, strlen(copy), m4_loc(m), false) : -1;
}

/* Appends `text` expanded into b; `depth` bounds macros that name each other. */
static int m4_expand_into(const struct mc_m4 *m, const char *text, struct buf *b, int depth)
{
    int quote = 0, rc = 0;
    for (const char *p = text; *p && rc == 0;) {
        /* the outermost pair of quotes goes; nested ones stay, as m4 strips one level */
        if (*p == m->lq && quote++ == 0) {
            p++;
            continue;
        }
        if (*p == m->rq && quote > 0 && --quote == 0) {
            p++;
            continue;
        }
        if (quote == 0 && (isalpha((unsigned char)*p) || *p == '_')) {
            const char *start = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            char word[256];
            snprintf(word, sizeof(word), "%.*s", (int)(p - start), start);
            const struct m4_macro *d = depth < 8 ? m4_find(m, word) : NULL;
            rc = d ? m4_expand_into(m, d->body, b, depth + 1)
                   : buf_append(b, start, (size_t)(p - start));
            continue;
        }
        rc = buf_append(b, p++, 1);
    }
    return rc;
}

char *mc_m4_expand_value(const struct mc_m4 *m, const char *text)
{
    struct buf b;
    buf_init(&b, 1024 * 1024);
    if (m4_expand_into(m, text, &b, 0) < 0 || buf_append(&b, "", 1) < 0) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void m4_undefine(struct mc_m4 *m, const char *name)
{
    struct m4_macro *d = m4_find(m, name);
    if (!d)
        return;
    free(d->name);
    free(d->body);
    *d = m->macros[--m->n_macros];
}

static int m4_emit(struct mc_m4 *m, struct mc_event *ev)
{
    enum mc_verdict v = m->o->on_event(m->o->ctx, m, ev);
    if (v == MC_STOP) {
        m->err->msg[0] = '\0';
        return -1;
    }
    return v == MC_SKIP ? 1 : 0;
}

/* Output text: collected a line at a time, dropped under divert(-1). */
static int m4_text(struct mc_m4 *m, const char *s, size_t n)
{
    if (m->divert < 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            size_t j = 0;
            while (j < m->text.len && isspace((unsigned char)m->text.data[j]))
                j++;
            int rc = 0;
            if (j < m->text.len && buf_append(&m->text, "", 1) == 0) {
                char *args[1] = {m->text.data + j};
                struct mc_event ev = {MC_TEXT, m->text_loc, "", args, 1, false, false};
                rc = m4_emit(m, &ev);
            }
            m->text.len = 0;
            if (rc < 0)
                return -1;
            continue;
        }
        if (m->text.len == 0)
            m->text_loc = m4_loc(m);
        if (buf_append(&m->text, &s[i], 1) < 0)
            return m4_fail(m, m->text_loc, "output line too long");
    }
    return 0;
}

static int m4_put(struct mc_m4 *m, struct buf *arg, const char *s, size_t n)
{
    if (!arg)
        return m4_text(m, s, n);
    return buf_append(arg, s, n) < 0 ? m4_fail(m, m4_loc(m), "argument too long") : 0;
}

static int m4_quoted(struct mc_m4 *m, struct buf *arg)
{
    struct mc_loc start = m4_loc(m);
    for (int depth = 1;;) {
        int c = m4_getc(m);
        if (c == EOF)
            return m4_fail(m, start, "unbalanced quotes: the %c opened here is never closed",
                           m->lq);
        if (c == m->rq && --depth == 0)
            return 0;
        if (c == m->lq)
            depth++;
        char ch = (char)c;
        if (m4_put(m, arg, &ch, 1) < 0)
            return -1;
    }
}

static int m4_scan(struct mc_m4 *m, struct buf *arg, unsigned nest);

static void m4_free_args(char **args, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(args[i]);
}

/* After name '(' : the arguments, leading white space skipped as m4 does. */
static int m4_collect(struct mc_m4 *m, const char *name, struct mc_loc loc, unsigned nest,
                      char **args, size_t *nargs)
{
    if (nest >= M4_MAX_NEST)
        return m4_fail(m, loc, "%s(: arguments nested too deeply", name);
    m4_getc(m); /* '(' */
    for (;;) {
        int c;
        while ((c = m4_peek(m)) == ' ' || c == '\t' || c == '\n' || c == '\r')
            m4_getc(m);
        struct buf a;
        buf_init(&a, 0);
        int end = m4_scan(m, &a, nest + 1);
        if (end == 0)
            m4_fail(m, loc, "unbalanced parentheses: the ( of %s( is never closed", name);
        if (end > 0 && *nargs == M4_MAX_ARGS)
            end = m4_fail(m, loc, "%s(: more than %d arguments", name, M4_MAX_ARGS);
        if (end > 0 && buf_append(&a, "", 1) < 0)
            end = m4_fail(m, loc, "out of memory");
        if (end <= 0) {
            buf_free(&a);
            return -1;
        }
        args[(*nargs)++] = a.data ? a.data : strdup("");
        if (!args[*nargs - 1])
            return m4_fail(m, loc, "out of memory");
        if (end == ')')
            return 0;
    }
}

/* A user macro's body with $0-$9, $#, $* and $@ replaced. */
static int m4_expand(struct mc_m4 *m, const char *name, const char *body, char **args, size_t nargs,
                     struct mc_loc loc)
{
    struct buf b;
    buf_init(&b, 0);
    int rc = 0;
    for (const char *p = body; *p && rc == 0; p++) {
        if (p[0] != '$' || !(isdigit((unsigned char)p[1]) || (p[1] && strchr("#*@", p[1])))) {
            rc = buf_append(&b, p, 1);
            continue;
        }
        p++;
        if (*p == '#') {
            rc = buf_printf(&b, "%zu", nargs);
        } else if (*p == '*' || *p == '@') {
            for (size_t i = 0; i < nargs && rc == 0; i++)
                rc = *p == '@' ? buf_printf(&b, "%s`%s'", i ? "," : "", args[i])
                               : buf_printf(&b, "%s%s", i ? "," : "", args[i]);
        } else {
            size_t i = (size_t)(*p - '0');
            rc = buf_printf(&b, "%s", i == 0 ? name : i <= nargs ? args[i - 1] : "");
        }
    }
    m->expanded += b.len;
    if (rc == 0 && m->expanded > M4_MAX_EXPANSION)
        rc = m4_fail(m, loc, "the expansion of %s does not end (macro recursion?)", name);
    else if (rc < 0)
        rc = m4_fail(m, loc, "out of memory");
    if (rc < 0) {
        buf_free(&b);
        return -1;
    }
    return b.len ? m4_push(m, b.data, b.len, loc, false) : 0;
}

/* The directory part of `file` joined with `name` into out. */
static void m4_sibling(const char *file, const char *name, char *out, size_t outlen)
{
    const char *slash = strrchr(file, '/');
    snprintf(out, outlen, "%.*s%s", slash ? (int)(slash - file + 1) : 0, file, name);
}

/* Where include(name) is: next to the including file, then in each -I directory. */
static bool m4_resolve(struct mc_m4 *m, const char *name, const char *from, char *out,
                       size_t outlen)
{
    if (name[0] == '/') {
        snprintf(out, outlen, "%s%s", m->o->root ? m->o->root : "", name);
        return access(out, R_OK) == 0;
    }
    m4_sibling(from, name, out, outlen);
    if (access(out, R_OK) == 0)
        return true;
    for (size_t i = 0; i < m->o->n_include_dirs; i++) {
        snprintf(out, outlen, "%s/%s", m->o->include_dirs[i], name);
        if (access(out, R_OK) == 0)
            return true;
    }
    return false;
}

static int m4_open(struct mc_m4 *m, const char *path, const char *data, size_t len,
                   struct mc_loc at)
{
    if (m->include_depth >= M4_MAX_INCLUDE_DEPTH)
        return m4_fail(m, at, "includes nested more than %d deep (an include loop?)",
                       M4_MAX_INCLUDE_DEPTH);
    char *copy = NULL, why[512];
    size_t n = len;
    if (data) {
        if ((copy = malloc(len + 1)) != NULL)
            memcpy(copy, data, len);
    } else if (fileset_read(NULL, path, MAP_FILE_MAX, &copy, &n, why, sizeof(why)) < 0) {
        return m4_fail(m, at, "%s", why);
    }
    if (!copy || map_strings_add(&m->files, path) < 0) {
        free(copy);
        return m4_fail(m, at, "out of memory");
    }
    m->include_depth++;
    return m4_push(m, copy, n, (struct mc_loc){m->files.v[m->files.n - 1], 1}, true);
}

static int m4_include(struct mc_m4 *m, enum m4_builtin b, char **args, size_t nargs,
                      struct mc_loc loc)
{
    char path[4096];
    const char *name = nargs ? args[0] : "";
    bool found = *name && m4_resolve(m, name, loc.file, path, sizeof(path));
    char *evargs[1] = {found ? path : (char *)name};
    struct mc_event ev = {MC_INCLUDE, loc, m4_builtin_names[b], evargs, 1, true, !found};
    int rc = m4_emit(m, &ev);
    if (rc != 0 || !found)
        return rc < 0 ? -1 : 0;
    return m4_open(m, path, NULL, 0, loc);
}

/* m4's ifelse: (a, b, then, a2, b2, then2, ..., else). */
static const char *m4_ifelse(char **args, size_t nargs)
{
    size_t i = 0;
    while (nargs - i >= 3) {
        if (strcmp(args[i], args[i + 1]) == 0)
            return args[i + 2];
        i += 3;
    }
    return nargs - i == 1 ? args[i] : "";
}

static int m4_builtin(struct mc_m4 *m, enum m4_builtin b, char **args, size_t nargs,
                      struct mc_loc loc)
{
    const char *push = NULL;
    switch (b) {
    case M4_DEFINE:
    case M4_UNDEFINE: {
        if (b == M4_DEFINE ? mc_m4_define(m, args[0], nargs > 1 ? args[1] : "") < 0 : 0)
            return m4_fail(m, loc, "out of memory");
        if (b == M4_UNDEFINE)
            m4_undefine(m, args[0]);
        char *value[1] = {nargs > 1 ? args[1] : (char *)""};
        struct mc_event ev = {
            b == M4_DEFINE ? MC_DEFINE : MC_UNDEFINE, loc, args[0], value, 1, true, false};
        return m4_emit(m, &ev) < 0 ? -1 : 0;
    }
    case M4_IFDEF:
        push = m4_find(m, args[0]) ? (nargs > 1 ? args[1] : "") : (nargs > 2 ? args[2] : "");
        break;
    case M4_IFELSE:
        push = m4_ifelse(args, nargs);
        break;
    case M4_INCLUDE:
    case M4_SINCLUDE:
        return m4_include(m, b, args, nargs, loc);
    case M4_DIVERT:
        m->divert = nargs && *args[0] ? atoi(args[0]) : 0;
        return 0;
    case M4_CHANGEQUOTE:
        if (nargs == 0 || (nargs == 1 && !*args[0])) {
            m->lq = '`', m->rq = '\'';
            return 0;
        }
        if (strlen(args[0]) != 1 || (nargs > 1 && strlen(args[1]) != 1))
            return m4_fail(m, loc, "changequote: only single-character quotes are supported");
        m->lq = args[0][0];
        m->rq = nargs > 1 ? args[1][0] : '\'';
        return 0;
    case M4_NONE:
        break;
    }
    size_t n = strlen(push);
    char *copy = strdup(push);
    if (!copy)
        return m4_fail(m, loc, "out of memory");
    return n ? m4_push(m, copy, n, loc, false) : (free(copy), 0);
}

static enum m4_builtin m4_builtin_of(const char *word)
{
    for (size_t i = 0; i < M4_NONE; i++)
        if (strcmp(word, m4_builtin_names[i]) == 0)
            return (enum m4_builtin)i;
    return M4_NONE;
}

static int m4_word(struct mc_m4 *m, const char *word, struct mc_loc loc, struct buf *arg,
                   unsigned nest)
{
    if (strcmp(word, "dnl") == 0) {
        int c;
        while ((c = m4_getc(m)) != EOF && c != '\n')
            ;
        return 0;
    }
    enum m4_builtin b = m4_builtin_of(word);
    const struct m4_macro *user = m4_find(m, word);
    bool parens = m4_peek(m) == '(';
    /* m4 leaves define & co. alone without arguments; so do we. */
    bool call =
        b != M4_NONE
            ? parens
            : user || (!arg && (parens || (m->o->is_bare_macro && m->o->is_bare_macro(word))));
    if (!call)
        return m4_put(m, arg, word, strlen(word));
    char *args[M4_MAX_ARGS];
    size_t nargs = 0;
    int rc = parens ? m4_collect(m, word, loc, nest, args, &nargs) : 0;
    if (rc == 0) {
        if (b != M4_NONE) {
            rc = m4_builtin(m, b, args, nargs, loc);
        } else if (user) {
            char *body = strdup(user->body); /* the call may redefine it */
            rc = body ? m4_expand(m, word, body, args, nargs, loc) : m4_fail(m, loc, "no memory");
            free(body);
        } else {
            struct mc_event ev = {MC_CALL, loc, word, args, nargs, parens, false};
            rc = m4_emit(m, &ev) < 0 ? -1 : 0;
        }
    }
    m4_free_args(args, nargs);
    return rc;
}

/* Text mode (arg NULL): to the end of input; 0, or -1. Argument mode: to the ',' or ')'
 * that ends the argument, which is returned; 0 at end of input (unbalanced). */
static int m4_scan(struct mc_m4 *m, struct buf *arg, unsigned nest)
{
    int paren = 0;
    for (;;) {
        struct mc_loc loc = m4_loc(m);
        int c = m4_getc(m);
        if (c == EOF)
            return 0;
        char ch = (char)c;
        int rc = 0;
        if (ch == m->lq) {
            rc = m4_quoted(m, arg);
        } else if (ch == '#' && !m->no_comments) {
            /* Comments pass through m4 untouched: kept in arguments, dropped from output
             * (sendmail.cf comments mean nothing to the translation). */
            do {
                rc = arg ? m4_put(m, arg, &ch, 1) : 0;
            } while (rc == 0 && (c = m4_peek(m)) != EOF && c != '\n' && (ch = (char)m4_getc(m)));
        } else if (isalpha((unsigned char)ch) || ch == '_') {
            char word[256];
            size_t n = 0;
            word[n++] = ch;
            while ((c = m4_peek(m)) != EOF && (isalnum(c) || c == '_') && n < sizeof(word) - 1)
                word[n++] = (char)m4_getc(m);
            word[n] = '\0';
            rc = m4_word(m, word, loc, arg, nest);
        } else if (arg && paren == 0 && (ch == ',' || ch == ')')) {
            return ch;
        } else {
            if (arg && ch == '(')
                paren++;
            else if (arg && ch == ')')
                paren--;
            rc = m4_put(m, arg, &ch, 1);
        }
        if (rc < 0)
            return -1;
    }
}

static int m4_run(const char *name, const char *data, size_t len, const struct mc_m4_options *o,
                  struct mc_m4_error *err)
{
    struct mc_m4 m = {.o = o, .lq = '`', .rq = '\'', .err = err};
    buf_init(&m.text, 1024 * 1024);
    memset(err, 0, sizeof(*err));
    int rc = 0;
    for (const char *const *p = o->predefined; rc == 0 && p && p[0] && p[1]; p += 2)
        if (mc_m4_define(&m, p[0], p[1]) < 0)
            rc = m4_fail(&m, (struct mc_loc){name, 0}, "out of memory");
    if (rc == 0)
        rc = m4_open(&m, name, data, len, (struct mc_loc){name, 0});
    if (rc == 0)
        rc = m4_scan(&m, NULL, 0);
    if (rc == 0)
        rc = m4_text(&m, "\n", 1); /* a last line without its newline */
    while (m.top)
        m4_pop(&m);
    for (size_t i = 0; i < m.n_macros; i++) {
        free(m.macros[i].name);
        free(m.macros[i].body);
    }
    free(m.macros);
    buf_free(&m.text);
    map_strings_free(&m.files);
    return rc < 0 ? -1 : 0;
}

int mc_m4_read_file(const char *path, const struct mc_m4_options *o, struct mc_m4_error *err)
{
    return m4_run(path, NULL, 0, o, err);
}

int mc_m4_read_mem(const char *name, const char *data, size_t len, const struct mc_m4_options *o,
                   struct mc_m4_error *err)
{
    return m4_run(name, data, len, o, err);
}

void mc_m4_no_comments(struct mc_m4 *m)
{
    m->no_comments = true;
}
