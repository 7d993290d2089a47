#include "cli/maildrop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/submit_client.h"
#include "core/config.h"
#include "util/progpath.h"

/* The optional records: letter and field, in the order they are written. */
struct maildrop_field {
    char letter;
    size_t offset;
    const char *what;
};

static const struct maildrop_field maildrop_fields[] = {
    {'F', offsetof(struct maildrop_envelope, fullname), "full name"},
    {'N', offsetof(struct maildrop_envelope, notify), "DSN notify"},
    {'T', offsetof(struct maildrop_envelope, ret), "DSN ret"},
    {'V', offsetof(struct maildrop_envelope, envid), "envelope id"},
    {'B', offsetof(struct maildrop_envelope, body), "body type"},
};
#define MAILDROP_N_FIELDS (sizeof(maildrop_fields) / sizeof(maildrop_fields[0]))

static char **maildrop_field_at(struct maildrop_envelope *e, size_t i)
{
    return (char **)((char *)e + maildrop_fields[i].offset);
}

static const char *maildrop_field_get(const struct maildrop_envelope *e, size_t i)
{
    return *(char *const *)((const char *)e + maildrop_fields[i].offset);
}

void maildrop_envelope_free(struct maildrop_envelope *e)
{
    free(e->sender);
    for (size_t i = 0; i < MAILDROP_N_FIELDS; i++)
        free(*maildrop_field_at(e, i));
    for (size_t i = 0; i < e->n_rcpts; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
    memset(e, 0, sizeof(*e));
}

/* NULL when `v` may be a record value, else why not. */
static const char *maildrop_value_check(const char *v, size_t len, bool may_be_empty)
{
    if (len == 0 && !may_be_empty)
        return "empty value";
    if (len > MAILDROP_RECORD_MAX)
        return "value too long";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return "control character in the value";
    return NULL;
}

static int maildrop_put(struct buf *out, char letter, const char *v, bool may_be_empty,
                        const char *what, char *err, size_t errlen)
{
    const char *why = maildrop_value_check(v, strlen(v), may_be_empty);
    if (why) {
        snprintf(err, errlen, "%s: %s", what, why);
        return -1;
    }
    if (buf_printf(out, "%c%s\n", letter, v) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int maildrop_format_head(const struct maildrop_envelope *e, struct buf *out, char *err,
                         size_t errlen)
{
    if (e->n_rcpts == 0) {
        snprintf(err, errlen, "no recipients");
        return -1;
    }
    if (e->n_rcpts > MAILDROP_RCPTS_MAX) {
        snprintf(err, errlen, "too many recipients (at most %u)", MAILDROP_RCPTS_MAX);
        return -1;
    }
    if (buf_printf(out, "%s\n", MAILDROP_MAGIC) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (maildrop_put(out, 'S', e->sender ? e->sender : "", true, "sender", err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < MAILDROP_N_FIELDS; i++) {
        const char *v = maildrop_field_get(e, i);
        if (v && maildrop_put(out, maildrop_fields[i].letter, v, false, maildrop_fields[i].what,
                              err, errlen) < 0)
            return -1;
    }
    for (size_t i = 0; i < e->n_rcpts; i++)
        if (maildrop_put(out, 'R', e->rcpts[i], false, "recipient", err, errlen) < 0)
            return -1;
    if (buf_append(out, "\n", 1) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* One head line into `line` (without its LF): 1, or -1 with err (end of file, too long). */
static int maildrop_line(FILE *in, char *line, size_t *len, unsigned lineno, char *err,
                         size_t errlen)
{
    size_t n = 0;
    int c;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (n > MAILDROP_RECORD_MAX) {
            snprintf(err, errlen, "line %u: record too long", lineno);
            return -1;
        }
        line[n++] = (char)c;
    }
    if (c == EOF) {
        snprintf(err, errlen, "line %u: %s", lineno,
                 ferror(in) ? strerror(errno) : "the file ends inside the envelope");
        return -1;
    }
    line[n] = '\0';
    *len = n;
    return 1;
}

static int maildrop_bad(char *err, size_t errlen, unsigned lineno, const char *why)
{
    snprintf(err, errlen, "line %u: %s", lineno, why);
    return -1;
}

/* One record of the head (after the magic line) into `e`; 1 = the empty line ended it. */
static int maildrop_record(struct maildrop_envelope *e, const char *line, size_t len,
                           unsigned lineno, char *err, size_t errlen)
{
    if (len == 0)
        return e->n_rcpts ? 1 : maildrop_bad(err, errlen, lineno, "no recipient record");
    char letter = line[0];
    const char *v = line + 1;
    const char *why = maildrop_value_check(v, len - 1, letter == 'S');
    if (why)
        return maildrop_bad(err, errlen, lineno, why);
    if (!e->sender && letter != 'S')
        return maildrop_bad(err, errlen, lineno, "the sender record (S) must come first");
    char **slot = NULL;
    if (letter == 'S') {
        if (e->sender)
            return maildrop_bad(err, errlen, lineno, "a second sender record");
        slot = &e->sender;
    } else if (letter == 'R') {
        if (e->n_rcpts >= MAILDROP_RCPTS_MAX)
            return maildrop_bad(err, errlen, lineno, "too many recipients");
        char **grown = realloc(e->rcpts, (e->n_rcpts + 1) * sizeof(*grown));
        if (!grown)
            return maildrop_bad(err, errlen, lineno, "out of memory");
        e->rcpts = grown;
        e->rcpts[e->n_rcpts] = NULL;
        slot = &e->rcpts[e->n_rcpts++];
    } else {
        for (size_t i = 0; i < MAILDROP_N_FIELDS && !slot; i++)
            if (maildrop_fields[i].letter == letter)
                slot = maildrop_field_at(e, i);
        if (!slot)
            return maildrop_bad(err, errlen, lineno, "unknown record");
        if (e->n_rcpts)
            return maildrop_bad(err, errlen, lineno, "a record after the recipients");
        if (*slot)
            return maildrop_bad(err, errlen, lineno, "a record given twice");
    }
    if (!(*slot = strdup(v)))
        return maildrop_bad(err, errlen, lineno, "out of memory");
    return 0;
}

int maildrop_read_head(FILE *in, struct maildrop_envelope *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    char *line = malloc(MAILDROP_RECORD_MAX + 2);
    size_t len;
    int rc = line ? maildrop_line(in, line, &len, 1, err, errlen) : -1;
    if (!line)
        snprintf(err, errlen, "out of memory");
    else if (rc > 0 && strcmp(line, MAILDROP_MAGIC) != 0)
        rc = maildrop_bad(err, errlen, 1, "not a maildrop file (expected " MAILDROP_MAGIC ")");
    for (unsigned lineno = 2; rc == 0 || rc == 1; lineno++) {
        if ((rc = maildrop_line(in, line, &len, lineno, err, errlen)) < 0)
            break;
        if ((rc = maildrop_record(e, line, len, lineno, err, errlen)) != 0)
            break;
    }
    free(line);
    return rc == 1 ? 0 : -1;
}

bool maildrop_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAILDROP_NAME_MAX || name[0] == '.')
        return false;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int maildrop_create(const char *dir, struct maildrop_file *f, char *err, size_t errlen)
{
    f->fd = -1;
    f->name[0] = f->tmp[0] = '\0';
    if (dir[0] != '/') {
        snprintf(err, errlen, "maildrop %s: not an absolute path", dir);
        return -1;
    }
    /* O_PATH: the directory is write and search only for the maildrop group (1730). */
    if ((f->dirfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "maildrop %s: %s", dir, strerror(errno));
        return -1;
    }
    for (int tries = 0; tries < 8; tries++) {
        uint64_t r;
        if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
            break;
        snprintf(f->name, sizeof(f->name), "%lld.%ld.%016llx", (long long)time(NULL),
                 (long)getpid(), (unsigned long long)r);
        snprintf(f->tmp, sizeof(f->tmp), ".tmp-%s", f->name);
        f->fd =
            openat(f->dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (f->fd >= 0 || errno != EEXIST)
            break;
    }
    if (f->fd < 0) {
        snprintf(err, errlen, "maildrop %s: cannot create a file: %s", dir, strerror(errno));
        close(f->dirfd);
        f->dirfd = -1;
        f->tmp[0] = '\0';
        return -1;
    }
    return 0;
}

int maildrop_write(struct maildrop_file *f, const void *data, size_t len, char *err, size_t errlen)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(f->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "maildrop: write: %s", n < 0 ? strerror(errno) : "no space");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void maildrop_abort(struct maildrop_file *f)
{
    if (f->tmp[0] && f->dirfd >= 0)
        unlinkat(f->dirfd, f->tmp, 0);
    f->tmp[0] = '\0';
    if (f->fd >= 0)
        close(f->fd);
    if (f->dirfd >= 0)
        close(f->dirfd);
    f->fd = f->dirfd = -1;
}

int maildrop_commit(struct maildrop_file *f, char *err, size_t errlen)
{
    if (fsync(f->fd) < 0 || renameat(f->dirfd, f->tmp, f->dirfd, f->name) < 0) {
        snprintf(err, errlen, "maildrop: %s", strerror(errno));
        maildrop_abort(f);
        return -1;
    }
    f->tmp[0] = '\0';
    char path[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", f->dirfd);
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fsync(dfd >= 0 ? dfd : f->fd);
    if (rc < 0) {
        snprintf(err, errlen, "maildrop: fsync: %s", strerror(errno));
        unlinkat(f->dirfd, f->name, 0);
    }
    if (dfd >= 0)
        close(dfd);
    maildrop_abort(f);
    return rc;
}

int maildrop_postdrop_start(const char *config_path, pid_t *pid, char *err, size_t errlen)
{
    char prog[PATH_MAX];
    if (progpath_sibling("ringmail-postdrop", prog, sizeof(prog)) < 0) {
        snprintf(err, errlen, "cannot find ringmail-postdrop beside this program");
        return -1;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if ((*pid = fork()) < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (*pid == 0) {
        char *argv[] = {prog, config_path ? "-C" : NULL, (char *)config_path, NULL};
        if (dup2(fds[0], 0) < 0)
            _exit(EX_OSERR);
        execv(prog, argv);
        fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
        _exit(EX_OSERR);
    }
    close(fds[0]);
    return fds[1];
}

int maildrop_postdrop_finish(int fd, pid_t pid, char *err, size_t errlen)
{
    close(fd);
    int status;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        snprintf(err, errlen, "waitpid: %s", strerror(errno));
        return EX_OSERR;
    }
    if (WIFSIGNALED(status)) {
        snprintf(err, errlen, "ringmail-postdrop was killed by signal %d", WTERMSIG(status));
        return EX_TEMPFAIL;
    }
    return WEXITSTATUS(status);
}

/* The file to read: standard input when the pickup passed it (no second open, no search
 * permission needed on the maildrop directory), else the path (a bare name is looked up in
 * the maildrop). */
static int maildrop_open(const struct config *cfg, const char *path, FILE *err)
{
    struct stat st;
    if (fstat(0, &st) == 0 && S_ISREG(st.st_mode))
        return dup(0);
    char full[PATH_MAX];
    if (!strchr(path, '/')) {
        snprintf(full, sizeof(full), "%s/%s", cfg->maildrop, path);
        path = full;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        fprintf(err, "%s: %s\n", path, strerror(errno));
    return fd;
}

char *maildrop_sender_address(const char *given, const char *login, const char *hostname)
{
    char *out = NULL;
    if (strcmp(given, "<>") == 0)
        return strdup("");
    if (!*given)
        given = login;
    if (given && asprintf(&out, "%s%s%s", given, strchr(given, '@') ? "" : "@",
                          strchr(given, '@') ? "" : hostname) < 0)
        out = NULL;
    return out;
}

static bool maildrop_is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* The status for the recipients' replies when none was accepted: any 4xx means try the
 * whole file again later. */
static int maildrop_rcpts_status(const struct submit_reply *r, size_t n)
{
    int status = EX_UNAVAILABLE;
    for (size_t i = 0; i < n; i++) {
        if (r[i].code / 100 == 4 || r[i].code == 0)
            return EX_TEMPFAIL;
        status = submit_exit_status(&r[i]);
    }
    return status;
}

static int maildrop_send(const struct config *cfg, const char *name,
                         const struct maildrop_envelope *e, FILE *in, uint64_t size, FILE *err)
{
    struct submit_reply reply = {0};
    bool no_daemon = false;
    struct submit_client *c =
        submit_connect(cfg->submission_socket, cfg->hostname, NULL, &reply, &no_daemon);
    if (!c) {
        fprintf(err, "%s: %s\n", name, reply.text);
        return EX_TEMPFAIL;
    }
    const struct passwd *pw = getpwuid(getuid());
    char *sender = maildrop_sender_address(e->sender, pw ? pw->pw_name : NULL, cfg->hostname);
    if (!sender) {
        fprintf(err, "%s: the sender cannot be made (no passwd entry for uid %ld?)\n", name,
                (long)getuid());
        submit_free(c);
        return EX_TEMPFAIL;
    }
    bool utf8 = !maildrop_is_ascii(sender);
    for (size_t i = 0; i < e->n_rcpts; i++)
        utf8 = utf8 || !maildrop_is_ascii(e->rcpts[i]);
    struct submit_envelope env = {
        .sender = sender,
        .fullname = e->fullname,
        .maildrop = name,
        .notify = e->notify,
        .ret = e->ret,
        .envid = e->envid,
        .body = e->body,
        .size = size,
        .smtputf8 = utf8,
        .rcpts = (const char *const *)e->rcpts,
        .n_rcpts = e->n_rcpts,
    };
    struct submit_reply *rcpt = calloc(e->n_rcpts, sizeof(*rcpt));
    int accepted = rcpt ? submit_envelope(c, &env, &reply, rcpt) : -1;
    int status = EX_OK;
    if (!rcpt) {
        fprintf(err, "%s: out of memory\n", name);
        status = EX_TEMPFAIL;
    } else if (accepted < 0) {
        fprintf(err, "%s: MAIL refused: %s\n", name, reply.text);
        status = submit_exit_status(&reply);
    } else if ((size_t)accepted < e->n_rcpts) {
        for (size_t i = 0; i < e->n_rcpts; i++)
            if (rcpt[i].code / 100 != 2)
                fprintf(err, "%s: <%s>: %s\n", name, e->rcpts[i], rcpt[i].text);
        /* A recipient deferred now would be lost once the daemon removes the file. */
        status = maildrop_rcpts_status(rcpt, e->n_rcpts);
        if (accepted > 0 && status == EX_TEMPFAIL)
            fprintf(err, "%s: not submitted: will try again\n", name);
        else if (accepted > 0)
            status = EX_OK; /* refused for good: reported above, the rest go */
    }
    char chunk[SUBMIT_CHUNK];
    size_t n;
    while (status == EX_OK && (n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        if (submit_write(c, chunk, n, &reply) < 0)
            status = submit_exit_status(&reply);
    if (status == EX_OK && ferror(in)) {
        fprintf(err, "%s: read: %s\n", name, strerror(errno));
        status = EX_IOERR;
    }
    char qid[64] = "";
    if (status == EX_OK && submit_finish(c, qid, sizeof(qid), &reply) < 0)
        status = submit_exit_status(&reply);
    if (status != EX_OK && reply.code)
        fprintf(err, "%s: %s\n", name, reply.text);
    free(rcpt);
    free(sender);
    submit_free(c);
    return status;
}

int maildrop_submit_file(const struct config *cfg, const char *path, FILE *err)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (!maildrop_name_valid(name)) {
        fprintf(err, "%s: not a maildrop file name\n", path);
        return EX_USAGE;
    }
    int fd = maildrop_open(cfg, path, err);
    if (fd < 0)
        return EX_NOINPUT;
    struct stat st;
    FILE *in = NULL;
    int status = EX_OK;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        fprintf(err, "%s: not a regular file with one link\n", name);
        status = EX_NOINPUT;
    } else if (st.st_uid != getuid()) {
        fprintf(err, "%s: owned by uid %ld, not by the caller (uid %ld)\n", name, (long)st.st_uid,
                (long)getuid());
        status = EX_NOPERM;
    } else if (!(in = fdopen(fd, "r"))) {
        fprintf(err, "%s: %s\n", name, strerror(errno));
        status = EX_OSERR;
    }
    if (!in) {
        close(fd);
        return status;
    }
    char why[256];
    struct maildrop_envelope e;
    if (maildrop_read_head(in, &e, why, sizeof(why)) < 0) {
        fprintf(err, "%s: %s\n", name, why);
        status = EX_DATAERR;
    } else {
        long at = ftell(in);
        uint64_t size = at >= 0 && st.st_size > at ? (uint64_t)(st.st_size - at) : 0;
        status = maildrop_send(cfg, name, &e, in, size, err);
    }
    maildrop_envelope_free(&e);
    fclose(in);
    return status;
}
