/*
 * tests/tools/tls_client.c — ringmail's own TLS client (tls_ctx_new_client + tls_session)
 * against ringmaild, for test_tls_client.py: EHLO and STARTTLS in plaintext, then the
 * handshake over the socket, EHLO inside TLS, QUIT.
 *
 *   tls_client PORT CA_FILE SERVER_NAME
 *
 * Prints one line "state=OPEN version=... group=... verify=OK sni=NAME ehlo=250 reason=..."
 * (the verification failure's reason last: it has spaces)
 * (or "state=FAILED error=..."); exits 0 when the handshake completed, 1 otherwise, 2 on a
 * usage or network problem. Every read is bounded by a 10 s socket timeout.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tls/tls_session.h"

struct tool {
    int fd;
    char plain[8192]; /* plaintext received through TLS */
    size_t plain_len;
};

static void tool_send(void *arg, const void *data, size_t len)
{
    const struct tool *t = arg;
    if (write(t->fd, data, len) != (ssize_t)len)
        perror("write");
}

static void tool_plaintext(void *arg, const char *data, size_t len)
{
    struct tool *t = arg;
    size_t room = sizeof(t->plain) - 1 - t->plain_len;
    size_t n = len < room ? len : room;
    memcpy(t->plain + t->plain_len, data, n);
    t->plain_len += n;
    t->plain[t->plain_len] = '\0';
}

/* A complete SMTP reply (its last line "NNN ...\r\n") in `buf`? Returns its code or 0. */
static int tool_reply_code(const char *buf)
{
    const char *line = buf, *end;
    while ((end = strstr(line, "\r\n"))) {
        if (end - line >= 4 && line[3] == ' ')
            return atoi(line);
        line = end + 2;
    }
    return 0;
}

/* Reads one plaintext reply from the socket, byte by byte so nothing after it is taken. */
static int tool_plain_reply(int fd)
{
    char buf[4096];
    size_t len = 0;
    int code = 0;
    while (!code && len < sizeof(buf) - 1 && read(fd, buf + len, 1) == 1) {
        buf[++len] = '\0';
        code = tool_reply_code(buf);
    }
    return code;
}

static enum tls_state tool_pump(struct tool *t, struct tls_session *s, int want_reply)
{
    char buf[16384];
    enum tls_state st = tls_session_state(s);
    while (st == TLS_HANDSHAKE || (want_reply && st == TLS_OPEN && !tool_reply_code(t->plain))) {
        ssize_t n = read(t->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        st = tls_session_feed(s, buf, (size_t)n);
    }
    return st;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: tls_client PORT CA_FILE SERVER_NAME\n");
        return 2;
    }
    struct tool t = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    struct timeval tv = {.tv_sec = 10};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    setsockopt(t.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(t.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || tool_plain_reply(t.fd) != 220) {
        perror("connect");
        return 2;
    }
    static const char ehlo[] = "EHLO tool.example\r\n", starttls[] = "STARTTLS\r\n";
    tool_send(&t, ehlo, strlen(ehlo));
    tool_plain_reply(t.fd);
    tool_send(&t, starttls, strlen(starttls));
    if (tool_plain_reply(t.fd) != 220) {
        fprintf(stderr, "STARTTLS refused\n");
        return 2;
    }

    char err[512];
    struct tls_settings set = {.ca_file = argv[2]};
    struct tls_ctx *ctx = tls_ctx_new_client(&set, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "client context: %s\n", err);
        return 2;
    }
    struct tls_session_io io = {&t, tool_send, tool_plaintext};
    struct tls_session *s = tls_session_new(ctx, &io, argv[3]);
    tls_session_start(s);
    enum tls_state st = tool_pump(&t, s, 0);
    if (st != TLS_OPEN) {
        printf("state=FAILED error=%s\n", tls_session_error(s));
    } else {
        struct tls_session_info i;
        tls_session_info(s, &i);
        tls_session_write(s, ehlo, strlen(ehlo));
        tool_pump(&t, s, 1);
        printf("state=OPEN version=%s group=%s verify=%s sni=%s ehlo=%d reason=%s\n", i.version,
               i.group, i.verify, argv[3], tool_reply_code(t.plain),
               i.verify_reason[0] ? i.verify_reason : "-");
        tls_session_write(s, "QUIT\r\n", 6);
        tls_session_shutdown(s);
    }
    tls_session_free(s);
    tls_ctx_unref(ctx);
    close(t.fd);
    return st == TLS_OPEN ? 0 : 1;
}
