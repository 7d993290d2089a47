#include "core/local_forward.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat/alias_expand.h"
#include "compat/map_aliases.h"
#include "delivery/local_proto.h"
#include "util/log.h"

#define LF_MARK     "#\x1einclude "
#define LF_MARK_LEN (sizeof(LF_MARK) - 1)

struct lf_section {
    int err;
    const char *path;
    size_t path_len;
    const char *text;
    size_t len;
};

/* The section at `p` (a line start): the text after it, or NULL at the end or when the rest
 * is not a well-formed section (then the engine defers what it names: EAGAIN). */
static const char *lf_section(const char *p, struct lf_section *s)
{
    if (strncmp(p, LF_MARK, LF_MARK_LEN) != 0)
        return NULL;
    p += LF_MARK_LEN;
    char *end;
    if (*p < '0' || *p > '9')
        return NULL;
    unsigned long err = strtoul(p, &end, 10);
    if (*end != ' ' || err > 4095 || end[1] < '0' || end[1] > '9')
        return NULL;
    unsigned long long len = strtoull(end + 1, &end, 10);
    const char *nl = *end == ' ' ? strchr(end + 1, '\n') : NULL;
    if (!nl || nl == end + 1 || len >= LOCAL_FORWARD_MAX || strnlen(nl + 1, len + 1) != len + 1 ||
        nl[1 + len] != '\n')
        return NULL;
    *s = (struct lf_section){.err = (int)err,
                             .path = end + 1,
                             .path_len = (size_t)(nl - end - 1),
                             .text = nl + 1,
                             .len = (size_t)len};
    return nl + 1 + len + 1;
}

size_t local_forward_text_len(const char *packed)
{
    if (strncmp(packed, LF_MARK, LF_MARK_LEN) == 0)
        return 0;
    const char *first = strstr(packed, "\n" LF_MARK);
    return first ? (size_t)(first + 1 - packed) : strlen(packed);
}

static bool lf_find(const char *packed, const char *path, struct lf_section *s)
{
    size_t pl = strlen(path);
    for (const char *p = packed + local_forward_text_len(packed); (p = lf_section(p, s));)
        if (s->path_len == pl && memcmp(s->path, path, pl) == 0)
            return true;
    return false;
}

int local_forward_include(const char *packed, const char *path, char **text, size_t *len)
{
    struct lf_section s;
    if (!lf_find(packed, path, &s))
        return EAGAIN;
    if (s.err)
        return s.err;
    if (!(*text = malloc(s.len + 1)))
        return ENOMEM;
    memcpy(*text, s.text, s.len);
    (*text)[s.len] = '\0';
    *len = s.len;
    return 0;
}

const char *local_forward_unsafe(const char *path, const struct stat *st, bool must_own,
                                 uid_t owner)
{
    if (S_ISLNK(st->st_mode))
        return "a symbolic link";
    if (!S_ISREG(st->st_mode))
        return "not a regular file";
    if (must_own && st->st_uid != owner)
        return "not owned by the user";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "group or world writable";
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *slash = strrchr(dir, '/'); slash; slash = strrchr(dir, '/')) {
        *slash = '\0';
        struct stat ds;
        if (stat(dir[0] ? dir : "/", &ds) < 0)
            return "its directory cannot be checked";
        if ((ds.st_mode & (S_IWGRP | S_IWOTH)) && !(ds.st_mode & S_ISVTX))
            return "in a group or world writable directory";
    }
    return NULL;
}

/* Reads the :include: file `path` as the user, with sendmail's include() rules: 0 with its
 * text in buf[0..*got) (cut at a NUL byte), or the errno to hand on (logged). */
static int lf_read(const char *qid, const char *path, char *buf, size_t size, size_t *got)
{
    const char *why = NULL;
    int err = 0;
    struct stat st;
    int fd = path[0] == '/' ? open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) : -1;
    if (path[0] != '/') {
        why = "not an absolute path";
        err = ENOENT;
    } else if (fd < 0 || fstat(fd, &st) < 0) {
        err = errno;
        why = strerror(err);
    } else if ((why = local_forward_unsafe(path, &st, false, 0))) {
        err = EPERM; /* safefile's answer: the target bounces */
    }
    size_t len = 0;
    ssize_t n = 1;
    while (!err && len < size && (n = read(fd, buf + len, size - len)) != 0)
        if (n > 0)
            len += (size_t)n;
        else if (errno != EINTR)
            why = strerror(err = errno);
    if (!err && len >= size) {
        err = EFBIG;
        why = "too large";
    }
    if (fd >= 0)
        close(fd);
    if (err) {
        log_info("%s: :include:%s not used: %s", qid, path, why);
        return err;
    }
    const char *nul = memchr(buf, '\0', len);
    *got = nul ? (size_t)(nul - buf) : len;
    return 0;
}

struct lf_pack {
    const char *qid;
    char *text;
    size_t len, size;
};

/* Appends one section (a final newline before the first); one without the file's text
 * (*err becomes EFBIG) when the text does not fit. Offset of the text in *at. False when
 * even that does not fit (logged). */
static bool lf_append(struct lf_pack *pk, const char *path, int *err, const char *body, size_t blen,
                      size_t *at)
{
    bool nl = pk->len > 0 && pk->text[pk->len - 1] != '\n';
    for (;;) {
        char head[PATH_MAX + 64];
        int hl = snprintf(head, sizeof(head), LF_MARK "%d %zu %s\n", *err, *err ? 0 : blen, path);
        size_t need = nl + (size_t)hl + (*err ? 0 : blen) + 1;
        if (hl > 0 && (size_t)hl < sizeof(head) && need < pk->size - pk->len) {
            char *p = pk->text + pk->len;
            if (nl)
                *p++ = '\n';
            memcpy(p, head, (size_t)hl);
            p += hl;
            *at = (size_t)(p - pk->text);
            if (!*err) {
                memcpy(p, body, blen);
                p += blen;
            }
            *p++ = '\n';
            *p = '\0';
            pk->len = (size_t)(p - pk->text);
            return true;
        }
        if (*err) {
            log_info("%s: :include:%s not used: no room left for the .forward's files", pk->qid,
                     path);
            return false;
        }
        log_info("%s: :include:%s not used: the .forward and its files pass %d bytes", pk->qid,
                 path, LOCAL_FORWARD_MAX);
        *err = EFBIG; /* deferred: perhaps a smaller file next time */
    }
}

/* The :include: targets of one list, then theirs: each path once (the engine expands a file
 * once per recipient), no deeper than the engine would go. */
static bool lf_walk(struct lf_pack *pk, const char *text, size_t len, unsigned depth)
{
    struct alias_list list = {0};
    bool room = true;
    if (aliases_parse_targets(".forward", text, len, &list) < 0)
        log_warn("%s: reading the .forward's :include: files: out of memory", pk->qid);
    for (size_t i = 0; room && i < list.n; i++) {
        const char *path = list.v[i].value;
        struct lf_section seen;
        if (list.v[i].kind != ALIAS_INCLUDE || depth >= ALIAS_EXPAND_DEPTH_MAX ||
            lf_find(pk->text, path, &seen))
            continue;
        static char body[LOCAL_FORWARD_MAX]; /* copied out before the next read */
        size_t blen = 0, at = 0;
        int err = lf_read(pk->qid, path, body, sizeof(body), &blen);
        room = lf_append(pk, path, &err, body, blen, &at);
        if (room && !err)
            room = lf_walk(pk, pk->text + at, blen, depth + 1);
    }
    alias_list_free(&list);
    return room;
}

bool local_forward_add_includes(const char *qid, char *text, size_t *len, size_t size)
{
    if (memchr(text, LF_MARK[1], *len)) {
        log_info("%s: forward not followed: it holds the byte 0x1e", qid);
        return false;
    }
    struct lf_pack pk = {.qid = qid, .text = text, .len = *len, .size = size};
    lf_walk(&pk, text, *len, 0);
    *len = pk.len;
    return true;
}
