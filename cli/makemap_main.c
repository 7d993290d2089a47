/*
 * ringmail-makemap — sendmail's `makemap [-N] [-c N] [-d] [-e] [-f] [-l] [-o] [-r] [-s]
 * [-t delim] [-u] [-v] type name < source`, for scripts and habits that run it.
 *
 * ringmaild reads sendmail's maps as text (docs/config.md, maps), so there is no database to
 * build. makemap checks the source with the parser the daemon uses for the kind of map its
 * name says (access, mailertable, virtusertable, genericstable, aliases; domaintable,
 * authinfo and others as "key value" lines), errors naming the line, and then:
 *   - standard input is the file `name` itself (makemap hash /etc/mail/access <
 *     /etc/mail/access): nothing to write; it says the daemon reads the text directly;
 *   - otherwise `name` (without a .db suffix) is replaced by the source, atomically (a
 *     temporary file beside it, fsync, rename, fsync of the directory), keeping the old
 *     file's mode and owner, so `makemap hash /etc/mail/access < access.new` still installs
 *     the map; -o appends the source to the existing map instead.
 * -u prints the named map as "key<TAB>value" lines (-t's delimiter instead of TAB); -t
 * makes the source's first delimiter on each line the separator (written as a TAB); -l
 * lists the accepted types. -N, -c, -d, -e, -f, -r and -s change nothing for a text map and
 * are accepted (-v says so). The daemon reads a changed map at its next reload (SIGHUP).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "compat/map_access.h"
#include "compat/map_aliases.h"
#include "compat/map_simple.h"
#include "compat/map_text.h"
#include "util/buf.h"
#include "util/fileset.h"

enum makemap_kind {
    KIND_ACCESS,
    KIND_MAILERTABLE,
    KIND_VIRTUSERTABLE,
    KIND_GENERICSTABLE,
    KIND_ALIASES,
    KIND_KEY_VALUE
};

struct makemap_opts {
    bool append, unmap, verbose, list;
    char delim; /* '\0' = white space */
    char ignored[16];
    size_t n_ignored;
};

static const char *const makemap_types[] = {"hash", "btree", "dbm", "implicit", "cdb"};

static enum makemap_kind makemap_kind_of(const char *name)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", name);
    const char *base = basename(copy);
    static const struct {
        const char *prefix;
        enum makemap_kind kind;
    } kinds[] = {{"access", KIND_ACCESS},
                 {"mailertable", KIND_MAILERTABLE},
                 {"virtusertable", KIND_VIRTUSERTABLE},
                 {"genericstable", KIND_GENERICSTABLE}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strncasecmp(base, kinds[i].prefix, strlen(kinds[i].prefix)) == 0)
            return kinds[i].kind;
    return strcasestr(base, "aliases") ? KIND_ALIASES : KIND_KEY_VALUE;
}

static const char *makemap_kind_name(enum makemap_kind k)
{
    static const char *const names[] = {"access",        "mailertable", "virtusertable",
                                        "genericstable", "aliases",     "key/value"};
    return names[k];
}

/* domaintable, authinfo and the rest: each line a key and a value. */
static int makemap_key_value_line(void *ctx, struct map_reader *r, char *line, unsigned lineno)
{
    size_t *n = ctx;
    char *key, *value;
    map_split(line, &key, &value);
    if (!*value)
        return map_fail(r, lineno, "no value for key '%s'", key);
    (*n)++;
    return 0;
}

/* Checks `text` as a map of `kind`: the number of entries, or -1 with "file:line: why". */
static long makemap_check(enum makemap_kind kind, const char *file, const char *text, size_t len,
                          char *err, size_t errlen)
{
    long n = -1;
    if (kind == KIND_ACCESS) {
        struct access_map m = {0};
        if (access_parse(file, text, len, &m, err, errlen) == 0)
            n = (long)m.n;
        access_free(&m);
    } else if (kind == KIND_ALIASES) {
        struct alias_map m = {0};
        if (aliases_parse(file, text, len, &m, err, errlen) == 0)
            n = (long)m.n;
        aliases_free(&m);
    } else if (kind == KIND_KEY_VALUE) {
        size_t count = 0;
        if (map_each_line(file, text, len, false, err, errlen, makemap_key_value_line, &count) == 0)
            n = (long)count;
    } else {
        struct map_simple m = {0};
        enum map_simple_kind sk = kind == KIND_MAILERTABLE     ? MAP_MAILERTABLE
                                  : kind == KIND_VIRTUSERTABLE ? MAP_VIRTUSERTABLE
                                                               : MAP_GENERICSTABLE;
        if (map_simple_parse(sk, file, text, len, &m, err, errlen) == 0)
            n = (long)m.n;
        map_simple_free(&m);
    }
    return n;
}

/* -t: the first delimiter of each line becomes a TAB, the separator the daemon reads. */
static void makemap_delimit(char *text, size_t len, char delim)
{
    bool first = true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            first = true;
        else if (first && text[i] == delim) {
            text[i] = '\t';
            first = false;
        }
    }
}

static int makemap_read_stdin(struct buf *in)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (buf_append(in, chunk, n) < 0) {
            fprintf(stderr, "makemap: the source is larger than %u octets\n", MAP_FILE_MAX);
            return EX_DATAERR;
        }
    if (ferror(stdin)) {
        fprintf(stderr, "makemap: reading the source: %s\n", strerror(errno));
        return EX_IOERR;
    }
    return EX_OK;
}

/* Replaces `name` with `data`: a temporary file beside it, renamed over it. */
static int makemap_install(const char *name, const char *data, size_t len)
{
    char dir_copy[PATH_MAX], base_copy[PATH_MAX], tmp[PATH_MAX + 32];
    snprintf(dir_copy, sizeof(dir_copy), "%s", name);
    snprintf(base_copy, sizeof(base_copy), "%s", name);
    const char *dir = dirname(dir_copy);
    snprintf(tmp, sizeof(tmp), "%s/.%s.makemap.%ld", dir, basename(base_copy), (long)getpid());
    struct stat old;
    bool had = stat(name, &old) == 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  had ? old.st_mode & 07777 : 0644);
    if (fd < 0) {
        fprintf(stderr, "makemap: %s: %s\n", tmp, strerror(errno));
        return EX_CANTCREAT;
    }
    bool ok = true;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    if (ok && had && (fchown(fd, old.st_uid, old.st_gid) < 0 || fchmod(fd, old.st_mode & 07777)))
        ok = geteuid() != 0; /* keeping another owner needs root; ours is fine otherwise */
    ok = ok && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, name) < 0) {
        fprintf(stderr, "makemap: %s: %s\n", name, strerror(ok ? errno : saved));
        unlink(tmp);
        return EX_CANTCREAT;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return EX_OK;
}

/* -u: the map as "key<delim>value" lines. */
static int makemap_unmap(enum makemap_kind kind, const char *name, char delim)
{
    char *data = NULL;
    size_t len = 0;
    char err[1024];
    if (fileset_read(NULL, name, MAP_FILE_MAX, &data, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "makemap: %s\n", err);
        return EX_NOINPUT;
    }
    struct map_reader r;
    struct buf line;
    unsigned lineno;
    int rc;
    map_reader_init(&r, name, data, len, err, sizeof(err));
    buf_init(&line, 0);
    while ((rc = map_next_line(&r, kind == KIND_ALIASES, &line, &lineno)) > 0) {
        char *key, *value;
        char *colon = kind == KIND_ALIASES ? strchr(line.data, ':') : NULL;
        if (colon) {
            *colon = ' ';
            char *end = colon;
            while (end > line.data && (end[-1] == ' ' || end[-1] == '\t'))
                *--end = ' ';
        }
        map_split(line.data, &key, &value);
        printf("%s%c%s\n", key, delim ? delim : '\t', value);
    }
    buf_free(&line);
    free(data);
    if (rc < 0) {
        fprintf(stderr, "makemap: %s\n", err);
        return EX_DATAERR;
    }
    return EX_OK;
}

static int makemap_usage(void)
{
    fprintf(stderr, "usage: makemap [-N] [-c cachesize] [-d] [-e] [-f] [-l] [-o] [-r] [-s] "
                    "[-t delimiter] [-u] [-v] type mapname\n");
    return EX_USAGE;
}

static int makemap_parse_args(int argc, char **argv, struct makemap_opts *o)
{
    int opt;
    while ((opt = getopt(argc, argv, "Nc:deflorst:uvC:D:")) != -1) {
        switch (opt) {
        case 'l':
            o->list = true;
            break;
        case 'o':
            o->append = true;
            break;
        case 'u':
            o->unmap = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 't':
            if (strlen(optarg) != 1 || optarg[0] == '\n') {
                fprintf(stderr, "makemap: -t needs one character\n");
                return -1;
            }
            o->delim = optarg[0];
            break;
        case 'N':
        case 'c':
        case 'd':
        case 'e':
        case 'f':
        case 'r':
        case 's':
        case 'C':
        case 'D':
            if (o->n_ignored < sizeof(o->ignored) / sizeof(o->ignored[0]))
                o->ignored[o->n_ignored++] = (char)opt;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static bool makemap_type_known(const char *type)
{
    for (size_t i = 0; i < sizeof(makemap_types) / sizeof(makemap_types[0]); i++)
        if (strcmp(type, makemap_types[i]) == 0)
            return true;
    return false;
}

/* The source, checked, then installed unless it already is `name`. */
static int makemap_build(const struct makemap_opts *o, enum makemap_kind kind, const char *name)
{
    struct stat in_st, name_st;
    bool same = fstat(0, &in_st) == 0 && stat(name, &name_st) == 0 &&
                in_st.st_dev == name_st.st_dev && in_st.st_ino == name_st.st_ino;
    struct buf text;
    buf_init(&text, MAP_FILE_MAX);
    if (o->append && !same) {
        char *old = NULL;
        size_t len = 0;
        char err[1024];
        int rc = fileset_read(NULL, name, MAP_FILE_MAX, &old, &len, err, sizeof(err));
        if (rc < 0 && rc != -ENOENT) {
            fprintf(stderr, "makemap: %s\n", err);
            return EX_NOINPUT;
        }
        if (rc == 0 && (buf_append(&text, old, len) < 0 ||
                        (len && old[len - 1] != '\n' && buf_append(&text, "\n", 1) < 0))) {
            free(old);
            buf_free(&text);
            fprintf(stderr, "makemap: %s is larger than %u octets\n", name, MAP_FILE_MAX);
            return EX_DATAERR;
        }
        free(old);
    }
    int status = makemap_read_stdin(&text);
    if (status == EX_OK && o->delim)
        makemap_delimit(text.data, text.len, o->delim);
    char err[1024];
    const char *label = same ? name : o->append ? name : "stdin";
    long n = status == EX_OK ? makemap_check(kind, label, text.data ? text.data : "", text.len, err,
                                             sizeof(err))
                             : 0;
    if (status == EX_OK && n < 0) {
        fprintf(stderr, "makemap: %s\n", err);
        status = EX_DATAERR;
    }
    if (status == EX_OK && same && !o->delim) {
        printf("makemap: %s: %ld entries, checked as a %s map; ringmaild reads this text file "
               "directly, no database to build\n",
               name, n, makemap_kind_name(kind));
    } else if (status == EX_OK) {
        status = makemap_install(name, text.data ? text.data : "", text.len);
        if (status == EX_OK)
            printf("makemap: %s: %ld entries, checked as a %s map and written; ringmaild reads "
                   "it as text at its next reload (SIGHUP)\n",
                   name, n, makemap_kind_name(kind));
    }
    buf_free(&text);
    return status;
}

int main(int argc, char **argv)
{
    struct makemap_opts o = {0};
    if (makemap_parse_args(argc, argv, &o) < 0)
        return makemap_usage();
    if (o.list) {
        for (size_t i = 0; i < sizeof(makemap_types) / sizeof(makemap_types[0]); i++)
            printf("%s\n", makemap_types[i]);
        return EX_OK;
    }
    if (argc - optind != 2)
        return makemap_usage();
    const char *type = argv[optind];
    if (!makemap_type_known(type)) {
        fprintf(stderr, "makemap: Unknown database type %s\n", type);
        return EX_USAGE;
    }
    char name[PATH_MAX];
    snprintf(name, sizeof(name), "%s", argv[optind + 1]);
    size_t nl = strlen(name);
    if (nl > 3 && strcmp(name + nl - 3, ".db") == 0) {
        name[nl - 3] = '\0';
        if (o.verbose)
            printf("makemap: %s: the text map is %s (ringmaild reads no .db)\n", argv[optind + 1],
                   name);
    }
    for (size_t i = 0; o.verbose && i < o.n_ignored; i++)
        printf("makemap: -%c changes nothing for a text map: ignored\n", o.ignored[i]);
    enum makemap_kind kind = makemap_kind_of(name);
    if (o.verbose)
        printf("makemap: %s: checked as %s (type %s is read as text)\n", name,
               makemap_kind_name(kind), type);
    if (!o.unmap && isatty(STDIN_FILENO)) {
        fprintf(stderr, "makemap: the map's source is read from standard input\n");
        return makemap_usage();
    }
    return o.unmap ? makemap_unmap(kind, name, o.delim) : makemap_build(&o, kind, name);
}
