#include "cli/submit_client.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "util/xtext.h"

#define SUBMIT_LINE_MAX  2048 /* a reply line; RFC 5321 says 512 */
#define SUBMIT_LINES_MAX 100

struct submit_client {
    int fd;
    bool broken; /* the session cannot go on: no QUIT */
    const struct submit_transcript *t;
    char in[4096];
    size_t in_len, in_off;
    char *chunk; /* SUBMIT_CHUNK octets */
    size_t chunk_len;
};

static void submit_say(struct submit_reply *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void submit_say(struct submit_reply *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->code = code;
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
}

static void submit_log(const struct submit_client *c, const char *dir, const char *line, size_t len)
{
    if (!c->t)
        return;
    if (c->t->verbose)
        fprintf(c->t->verbose, "%s %.*s\n", dir, (int)len, line);
    if (c->t->xlog)
        fprintf(c->t->xlog, "%ld %s %.*s\n", (long)getpid(), dir, (int)len, line);
}

static int submit_send(struct submit_client *c, const void *data, size_t len,
                       struct submit_reply *r)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->broken = true;
            submit_say(r, 0, "lost the connection to the mail daemon: %s",
                       n < 0 ? strerror(errno) : "closed");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One command line (without CRLF). */
static int submit_cmd(struct submit_client *c, const char *line, struct submit_reply *r)
{
    size_t len = strlen(line);
    submit_log(c, ">>>", line, len);
    char buf[SUBMIT_LINE_MAX + 2];
    if (len > SUBMIT_LINE_MAX) {
        submit_say(r, 0, "command too long (%zu octets)", len);
        return -1;
    }
    memcpy(buf, line, len);
    memcpy(buf + len, "\r\n", 2);
    return submit_send(c, buf, len + 2, r);
}

/* The next line (without CRLF; a bare LF ends one too) into `line`. */
static int submit_line(struct submit_client *c, char *line, size_t *len, struct submit_reply *r)
{
    *len = 0;
    for (;;) {
        while (c->in_off < c->in_len) {
            char ch = c->in[c->in_off++];
            if (ch == '\n') {
                if (*len > 0 && line[*len - 1] == '\r')
                    (*len)--;
                return 0;
            }
            if (*len >= SUBMIT_LINE_MAX) {
                c->broken = true;
                submit_say(r, 0, "the mail daemon sent a reply line longer than %d octets",
                           SUBMIT_LINE_MAX);
                return -1;
            }
            line[(*len)++] = ch;
        }
        ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->broken = true;
            submit_say(r, 0, "lost the connection to the mail daemon: %s",
                       n < 0 ? (errno == EAGAIN ? "timed out" : strerror(errno)) : "closed");
            return -1;
        }
        c->in_len = (size_t)n;
        c->in_off = 0;
    }
}

/* A whole reply: "ddd-text" lines then "ddd text". */
static int submit_reply_read(struct submit_client *c, struct submit_reply *r)
{
    char line[SUBMIT_LINE_MAX + 1];
    size_t len, used = 0;
    r->text[0] = '\0';
    for (int lines = 0;; lines++) {
        if (submit_line(c, line, &len, r) < 0)
            return -1;
        submit_log(c, "<<<", line, len);
        if (len < 3 || !isdigit((unsigned char)line[0]) || line[0] < '2' || line[0] > '5' ||
            !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
            (len > 3 && line[3] != ' ' && line[3] != '-') || lines >= SUBMIT_LINES_MAX) {
            c->broken = true;
            submit_say(r, 0, "the mail daemon sent a malformed reply: %.*s", (int)len, line);
            return -1;
        }
        int n = snprintf(r->text + used, sizeof(r->text) - used, "%s%.*s", used ? "\n" : "",
                         (int)len, line);
        if (n > 0)
            used = used + (size_t)n < sizeof(r->text) ? used + (size_t)n : sizeof(r->text) - 1;
        if (len == 3 || line[3] == ' ') {
            r->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
            return 0;
        }
    }
}

/* A command whose reply must be 2xx; -1 otherwise (the reply says why). */
static int submit_exchange(struct submit_client *c, const char *line, struct submit_reply *r)
{
    if (submit_cmd(c, line, r) < 0 || submit_reply_read(c, r) < 0)
        return -1;
    if (r->code == 421)
        c->broken = true;
    return r->code / 100 == 2 ? 0 : -1;
}

static int submit_open_socket(const char *path, struct submit_reply *r, bool *no_daemon)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    *no_daemon = false;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        submit_say(r, 0, "%s: socket path too long", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        submit_say(r, 0, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval tv = {.tv_sec = SUBMIT_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        /* What a daemon that is not running leaves behind: no socket, or a stale one. */
        *no_daemon = e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK || e == ENOTDIR;
        submit_say(r, 0, "cannot connect to the mail daemon at %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

struct submit_client *submit_connect(const char *path, const char *helo,
                                     const struct submit_transcript *t, struct submit_reply *reply,
                                     bool *no_daemon)
{
    int fd = submit_open_socket(path, reply, no_daemon);
    if (fd < 0)
        return NULL;
    struct submit_client *c = calloc(1, sizeof(*c));
    if (!c || !(c->chunk = malloc(SUBMIT_CHUNK))) {
        submit_say(reply, 0, "out of memory");
        free(c);
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->t = t;
    char line[SUBMIT_LINE_MAX];
    snprintf(line, sizeof(line), "EHLO %s", helo);
    if (submit_reply_read(c, reply) < 0 || reply->code != 220 ||
        submit_exchange(c, line, reply) < 0) {
        submit_free(c);
        return NULL;
    }
    return c;
}

/* " KEY=value" (xtext-encoded with `xtext`), or " KEY" when `value` is NULL, appended to
 * `line` (of `size`); -1 if it does not fit. */
static int submit_param(char *line, size_t size, const char *key, const char *value, bool xtext)
{
    size_t used = strlen(line);
    int n = snprintf(line + used, size - used, " %s%s", key, value ? "=" : "");
    if (n < 0 || (size_t)n >= size - used)
        return -1;
    if (!value)
        return 0;
    used += (size_t)n;
    size_t need = xtext ? xtext_encode(value, line + used, size - used)
                        : (size_t)snprintf(line + used, size - used, "%s", value);
    return need < size - used ? 0 : -1;
}

int submit_envelope(struct submit_client *c, const struct submit_envelope *env,
                    struct submit_reply *reply, struct submit_reply *rcpt_replies)
{
    char line[SUBMIT_LINE_MAX];
    char size[24];
    snprintf(line, sizeof(line), "MAIL FROM:<%s>", env->sender);
    snprintf(size, sizeof(size), "%llu", (unsigned long long)env->size);
    if ((env->size && submit_param(line, sizeof(line), "SIZE", size, false) < 0) ||
        (env->body && submit_param(line, sizeof(line), "BODY", env->body, false) < 0) ||
        (env->smtputf8 && submit_param(line, sizeof(line), "SMTPUTF8", NULL, false) < 0) ||
        (env->ret && submit_param(line, sizeof(line), "RET", env->ret, false) < 0) ||
        (env->envid && submit_param(line, sizeof(line), "ENVID", env->envid, false) < 0) ||
        (env->fullname && submit_param(line, sizeof(line), "FULLNAME", env->fullname, true) < 0) ||
        (env->maildrop &&
         submit_param(line, sizeof(line), "XMAILDROP", env->maildrop, false) < 0)) {
        submit_say(reply, 553, "553 5.1.7 the sender's MAIL command is too long");
        return -1;
    }
    if (submit_exchange(c, line, reply) < 0)
        return -1;
    int accepted = 0;
    for (size_t i = 0; i < env->n_rcpts; i++) {
        snprintf(line, sizeof(line), "RCPT TO:<%s>", env->rcpts[i]);
        if (strlen(line) + 1 >= sizeof(line) ||
            (env->notify && submit_param(line, sizeof(line), "NOTIFY", env->notify, false) < 0)) {
            submit_say(&rcpt_replies[i], 553, "553 5.1.3 recipient address too long");
            continue;
        }
        if (submit_exchange(c, line, &rcpt_replies[i]) == 0)
            accepted++;
        else if (c->broken) {
            *reply = rcpt_replies[i];
            return -1;
        }
    }
    return accepted;
}

static int submit_chunk(struct submit_client *c, bool last, struct submit_reply *reply)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "BDAT %zu%s", c->chunk_len, last ? " LAST" : "");
    size_t len = strlen(cmd);
    submit_log(c, ">>>", cmd, len);
    memcpy(cmd + len, "\r\n", 2);
    if (submit_send(c, cmd, len + 2, reply) < 0 ||
        submit_send(c, c->chunk, c->chunk_len, reply) < 0 || submit_reply_read(c, reply) < 0)
        return -1;
    c->chunk_len = 0;
    if (reply->code / 100 != 2) {
        /* After a refused chunk the transaction is over (RFC 3030 2): nothing more to say. */
        c->broken = true;
        return -1;
    }
    return 0;
}

int submit_write(struct submit_client *c, const void *data, size_t len, struct submit_reply *reply)
{
    const char *p = data;
    while (len > 0) {
        size_t n = SUBMIT_CHUNK - c->chunk_len;
        if (n > len)
            n = len;
        memcpy(c->chunk + c->chunk_len, p, n);
        c->chunk_len += n;
        p += n;
        len -= n;
        if (c->chunk_len == SUBMIT_CHUNK && submit_chunk(c, false, reply) < 0)
            return -1;
    }
    return 0;
}

int submit_finish(struct submit_client *c, char *qid, size_t qidlen, struct submit_reply *reply)
{
    if (submit_chunk(c, true, reply) < 0)
        return -1;
    /* "250 2.0.0 <qid> Message accepted for delivery" (sendmail: without the brackets). */
    const char *p = reply->text + 4;
    if (strncmp(p, "2.0.0 ", 6) == 0)
        p += 6;
    if (*p == '<')
        p++;
    size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    if (n >= qidlen)
        n = 0;
    memcpy(qid, p, n);
    qid[n] = '\0';
    return 0;
}

void submit_free(struct submit_client *c)
{
    if (!c)
        return;
    if (!c->broken) {
        struct submit_reply ignored;
        submit_exchange(c, "QUIT", &ignored);
    }
    close(c->fd);
    free(c->chunk);
    free(c);
}

/* Copies what `from` has into `to`; 0 at the end of input, -1 on an error, else 1. */
static int submit_pump(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -1;
    if (n == 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += w;
    }
    return 1;
}

int submit_proxy(const char *path, int in_fd, int out_fd, struct submit_reply *reply,
                 bool *no_daemon)
{
    int fd = submit_open_socket(path, reply, no_daemon);
    if (fd < 0)
        return -1;
    /* The daemon's own timeouts bound an idle session; no timeout of ours on top. */
    struct timeval none = {0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
    struct pollfd p[2] = {{.fd = in_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    int status = 0;
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            status = -2;
            break;
        }
        if (p[1].revents) {
            int r = submit_pump(fd, out_fd);
            if (r <= 0) {
                status = r < 0 && errno != ECONNRESET ? -2 : 0;
                break;
            }
        }
        if (p[0].revents) {
            int r = submit_pump(in_fd, fd);
            if (r < 0) {
                status = -2;
                break;
            }
            if (r == 0) {
                shutdown(fd, SHUT_WR);
                p[0].fd = -1; /* poll ignores it from now on */
            }
        }
    }
    if (status < 0)
        submit_say(reply, 0, "relaying the SMTP session: %s", strerror(errno));
    close(fd);
    return status;
}

/* sendmail's dsntoexitstat() for a 5.x.y status. */
static int submit_dsn_status(int subject, int detail)
{
    switch (subject) {
    case 1: /* addressing */
        switch (detail) {
        case 1:
        case 6:
            return EX_NOUSER;
        case 2:
            return EX_NOHOST;
        case 3:
            return EX_USAGE;
        case 5:
            return EX_OK;
        case 0:
            return EX_DATAERR;
        default:
            return EX_UNAVAILABLE;
        }
    case 2: /* mailbox */
        return detail == 3 ? EX_DATAERR : EX_UNAVAILABLE;
    case 3: /* mail system */
        return EX_OSERR;
    case 4: /* network and routing */
        return detail == 4                                 ? EX_PROTOCOL
               : detail == 1 || detail == 3 || detail == 5 ? EX_TEMPFAIL
                                                           : EX_IOERR;
    case 5: /* protocol */
        return EX_PROTOCOL;
    case 7: /* security */
        return EX_DATAERR;
    default:
        return EX_UNAVAILABLE;
    }
}

int submit_exit_status(const struct submit_reply *reply)
{
    if (reply->code / 100 == 2)
        return EX_OK;
    if (reply->code / 100 != 5)
        return EX_TEMPFAIL;
    int subject, detail;
    char cls;
    if (strlen(reply->text) > 4 &&
        sscanf(reply->text + 4, "%c.%d.%d", &cls, &subject, &detail) == 3 && cls == '5')
        return submit_dsn_status(subject, detail);
    return EX_UNAVAILABLE;
}
