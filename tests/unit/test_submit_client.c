/* cli/submit_client: the command line's SMTP client on the submission socket, against a
 * scripted server thread on a unix socket (replies split and multi-line, refusals, BDAT
 * chunk boundaries, malformed replies, no daemon), the -bs proxy, xtext and sendmail's
 * exit statuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/submit_client.h"
#include "util/buf.h"
#include "util/xtext.h"

/* One step of the server's script: the command it expects (a prefix) and what it answers
 * (sent as is; NULL = close the connection). */
struct step {
    const char *expect;
    const char *reply;
};

struct server {
    char dir[64], path[128];
    int listen_fd;
    const struct step *script;
    struct buf commands; /* every command line received, LF-terminated */
    struct buf data;     /* BDAT chunks joined */
    struct buf chunks;   /* "65536 4464L " */
    pthread_t thread;
};

static int server_line(int fd, char *line, size_t size)
{
    size_t n = 0;
    char c;
    while (n + 1 < size && read(fd, &c, 1) == 1) {
        line[n++] = c;
        if (c == '\n')
            break;
    }
    line[n] = '\0';
    return n > 0 && line[n - 1] == '\n' ? 0 : -1;
}

static void *server_run(void *arg)
{
    struct server *s = arg;
    int fd = accept(s->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    static const struct step end = {NULL, NULL};
    char line[4096];
    const struct step *st = s->script;
    if (st->expect == NULL) /* the greeting */
        st = st->reply && write(fd, st->reply, strlen(st->reply)) < 0 ? &end : st + 1;
    for (; st->expect; st++) {
        if (server_line(fd, line, sizeof(line)) < 0)
            break;
        buf_append(&s->commands, line, strlen(line) - 1); /* without the LF, CR kept */
        buf_append(&s->commands, "\n", 1);
        unsigned long size;
        if (sscanf(line, "BDAT %lu", &size) == 1) {
            buf_printf(&s->chunks, "%lu%s ", size, strstr(line, "LAST") ? "L" : "");
            char *chunk = malloc(size + 1);
            size_t got = 0;
            while (got < size) {
                ssize_t n = read(fd, chunk + got, size - got);
                if (n <= 0)
                    break;
                got += (size_t)n;
            }
            buf_append(&s->data, chunk, got);
            free(chunk);
        }
        if (!st->reply || write(fd, st->reply, strlen(st->reply)) < 0)
            break;
    }
    close(fd);
    return NULL;
}

static void server_start(struct server *s, const struct step *script)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->dir, "/tmp/submit-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, s->path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(s->listen_fd, 1), 0);
    s->script = script;
    assert_int_equal(pthread_create(&s->thread, NULL, server_run, s), 0);
}

/* Waits for the script to end; what it recorded stays until server_free(). */
static void server_stop(struct server *s)
{
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    unlink(s->path);
    rmdir(s->dir);
}

static void server_free(struct server *s)
{
    buf_free(&s->commands);
    buf_free(&s->data);
    buf_free(&s->chunks);
}

static char *text(const struct buf *b)
{
    static char out[8192];
    snprintf(out, sizeof(out), "%.*s", (int)b->len, b->data ? b->data : "");
    return out;
}

static const struct step session[] = {
    {NULL, "220-mx.test ESMTP\r\n220 ready\r\n"},
    {"EHLO", "250-mx.test hello\r\n250-CHUNKING\r\n250 DSN\r\n"},
    {"MAIL", "250 2.1.0 Sender ok\r\n"},
    {"RCPT", "250 2.1.5 ok\r\n"},
    {"RCPT", "550 5.1.1 <bad@example.com>... User unknown\r\n"},
    {"BDAT", "250 2.0.0 chunk ok\r\n"},
    {"BDAT", "250 2.0.0 0EmiqnH1h0010Oah Message accepted for delivery\r\n"},
    {"QUIT", "221 2.0.0 bye\r\n"},
    {NULL, NULL},
};

static void test_session(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, session);
    struct submit_reply reply, rcpt[2];
    bool no_daemon = true;
    char tbuf[8192] = "";
    FILE *transcript = fmemopen(tbuf, sizeof(tbuf), "w");
    struct submit_transcript t = {.verbose = transcript};
    struct submit_client *c = submit_connect(s.path, "mx.test", &t, &reply, &no_daemon);
    assert_non_null(c);
    assert_false(no_daemon);
    const char *rcpts[] = {"good@example.com", "bad@example.com"};
    struct submit_envelope env = {
        .sender = "alice@mx.test",
        .fullname = "Alice B. Cé",
        .notify = "SUCCESS,FAILURE",
        .ret = "HDRS",
        .envid = "job+2D1",
        .body = "8BITMIME",
        .size = 70000,
        .smtputf8 = true,
        .rcpts = rcpts,
        .n_rcpts = 2,
    };
    assert_int_equal(submit_envelope(c, &env, &reply, rcpt), 1);
    assert_int_equal(rcpt[0].code, 250);
    assert_int_equal(rcpt[1].code, 550);
    assert_string_equal(rcpt[1].text, "550 5.1.1 <bad@example.com>... User unknown");
    assert_int_equal(submit_exit_status(&rcpt[1]), EX_NOUSER);
    /* 70000 octets in uneven pieces: one full chunk, then the rest with LAST */
    char *msg = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        msg[i] = (char)('a' + i % 26);
    assert_int_equal(submit_write(c, msg, 1000, &reply), 0);
    assert_int_equal(submit_write(c, msg + 1000, 69000, &reply), 0);
    char qid[64];
    assert_int_equal(submit_finish(c, qid, sizeof(qid), &reply), 0);
    assert_string_equal(qid, "0EmiqnH1h0010Oah");
    submit_free(c);
    fclose(transcript);
    server_stop(&s);
    assert_string_equal(text(&s.chunks), "65536 4464L ");
    assert_int_equal(s.data.len, 70000);
    assert_memory_equal(s.data.data, msg, 70000);
    free(msg);
    assert_non_null(strstr(tbuf,
                           ">>> MAIL FROM:<alice@mx.test> SIZE=70000 BODY=8BITMIME "
                           "SMTPUTF8 RET=HDRS ENVID=job+2D1 FULLNAME=Alice+20B.+20C+C3+A9\n"));
    assert_non_null(strstr(tbuf, ">>> RCPT TO:<good@example.com> NOTIFY=SUCCESS,FAILURE\n"));
    assert_non_null(strstr(tbuf, "<<< 220-mx.test ESMTP\n<<< 220 ready\n"));
    assert_non_null(strstr(tbuf, ">>> BDAT 4464 LAST\n"));
    assert_non_null(strstr(tbuf, ">>> QUIT\n<<< 221 2.0.0 bye\n"));
    server_free(&s);
}

/* A reply split over several writes and a multi-line refusal of MAIL. */
static const struct step mail_refused[] = {
    {NULL, "220 mx.test\r\n"},
    {"EHLO", "250 mx.test\r\n"},
    {"MAIL", "553-5.1.8 first line\r\n553 5.1.8 Domain of sender does not exist\r\n"},
    {"QUIT", "221 bye\r\n"},
    {NULL, NULL},
};

static void test_mail_refused(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, mail_refused);
    struct submit_reply reply, rcpt[1];
    bool no_daemon;
    struct submit_client *c = submit_connect(s.path, "mx.test", NULL, &reply, &no_daemon);
    assert_non_null(c);
    const char *rcpts[] = {"bob@example.com"};
    struct submit_envelope env = {.sender = "", .rcpts = rcpts, .n_rcpts = 1};
    assert_int_equal(submit_envelope(c, &env, &reply, rcpt), -1);
    assert_int_equal(reply.code, 553);
    assert_string_equal(reply.text,
                        "553-5.1.8 first line\n553 5.1.8 Domain of sender does not exist");
    assert_int_equal(submit_exit_status(&reply), EX_UNAVAILABLE);
    submit_free(c);
    server_stop(&s);
    assert_non_null(strstr(text(&s.commands), "MAIL FROM:<>\r\nQUIT\r\n"));
    server_free(&s);
}

static const struct step garbage[] = {
    {NULL, "220 mx.test\r\n"},
    {"EHLO", "hello there\r\n"},
    {NULL, NULL},
};

static const struct step busy[] = {
    {NULL, "421 4.3.2 mx.test shutting down\r\n"},
    {NULL, NULL},
};

static const struct step dropped[] = {
    {NULL, "220 mx.test\r\n"},
    {"EHLO", "250 mx.test\r\n"},
    {"MAIL", "250 ok\r\n"},
    {"RCPT", "250 ok\r\n"},
    {"BDAT", NULL}, /* the daemon goes away mid-message */
    {NULL, NULL},
};

static void test_bad_sessions(void **state)
{
    (void)state;
    struct server s;
    struct submit_reply reply;
    bool no_daemon = true;
    server_start(&s, garbage);
    assert_null(submit_connect(s.path, "mx.test", NULL, &reply, &no_daemon));
    assert_false(no_daemon);
    assert_int_equal(reply.code, 0);
    assert_non_null(strstr(reply.text, "malformed reply: hello there"));
    server_stop(&s);
    server_free(&s);

    server_start(&s, busy);
    assert_null(submit_connect(s.path, "mx.test", NULL, &reply, &no_daemon));
    assert_int_equal(reply.code, 421);
    assert_int_equal(submit_exit_status(&reply), EX_TEMPFAIL);
    server_stop(&s);
    server_free(&s);

    server_start(&s, dropped);
    struct submit_client *c = submit_connect(s.path, "mx.test", NULL, &reply, &no_daemon);
    assert_non_null(c);
    const char *rcpts[] = {"bob@example.com"};
    struct submit_envelope env = {.sender = "a@b", .rcpts = rcpts, .n_rcpts = 1};
    struct submit_reply rcpt[1];
    assert_int_equal(submit_envelope(c, &env, &reply, rcpt), 1);
    assert_int_equal(submit_write(c, "x\r\n", 3, &reply), 0);
    char qid[64];
    assert_int_equal(submit_finish(c, qid, sizeof(qid), &reply), -1);
    assert_int_equal(reply.code, 0);
    assert_int_equal(submit_exit_status(&reply), EX_TEMPFAIL);
    submit_free(c); /* no QUIT on a broken session */
    server_stop(&s);
    assert_null(strstr(text(&s.commands), "QUIT"));
    server_free(&s);
}

static void test_no_daemon(void **state)
{
    (void)state;
    struct submit_reply reply;
    bool no_daemon = false;
    assert_null(submit_connect("/nonexistent/ringmail.sock", "h", NULL, &reply, &no_daemon));
    assert_true(no_daemon);
    assert_non_null(strstr(reply.text, "No such file or directory"));
    /* a socket nobody listens on any more (a daemon killed without cleanup) */
    char dir[] = "/tmp/submit-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/sock", dir);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    no_daemon = false;
    assert_null(submit_connect(path, "h", NULL, &reply, &no_daemon));
    assert_true(no_daemon);
    assert_int_equal(submit_proxy(path, 0, 1, &reply, &no_daemon), -1);
    assert_true(no_daemon);
    unlink(path);
    rmdir(dir);
}

static const struct step proxied[] = {
    {NULL, "220 mx.test\r\n"},
    {"EHLO", "250 mx.test\r\n"},
    {"QUIT", "221 bye\r\n"},
    {NULL, NULL},
};

static void test_proxy(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, proxied);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    /* both commands at once and then the end of input: the replies must still come back */
    assert_int_equal(write(in[1], "EHLO x\r\nQUIT\r\n", 14), 14);
    close(in[1]);
    struct submit_reply reply;
    bool no_daemon;
    assert_int_equal(submit_proxy(s.path, in[0], out[1], &reply, &no_daemon), 0);
    close(out[1]);
    char got[256] = "";
    ssize_t n = read(out[0], got, sizeof(got) - 1);
    assert_true(n > 0);
    assert_string_equal(got, "220 mx.test\r\n250 mx.test\r\n221 bye\r\n");
    close(in[0]);
    close(out[0]);
    server_stop(&s);
    assert_string_equal(text(&s.commands), "EHLO x\r\nQUIT\r\n");
    server_free(&s);
}

static void test_xtext(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(xtext_encode("a+b=c d\x01~", out, sizeof(out)), 17);
    assert_string_equal(out, "a+2Bb+3Dc+20d+01~");
    /* cut short: terminated, the length it needs still returned */
    assert_int_equal(xtext_encode("a b", out, 3), 5);
    assert_string_equal(out, "a");
}

static void test_exit_status(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *text;
        int status;
    } cases[] = {
        {250, "250 2.0.0 ok", EX_OK},
        {451, "451 4.3.0 later", EX_TEMPFAIL},
        {550, "550 5.1.1 <x>... User unknown", EX_NOUSER},
        {553, "553 5.1.3 bad syntax", EX_USAGE},
        {550, "550 5.1.2 no host", EX_NOHOST},
        {552, "552 5.2.3 too big", EX_DATAERR},
        {550, "550 5.7.1 denied", EX_DATAERR},
        {554, "554 5.3.4 too big for system", EX_OSERR},
        {501, "501 5.5.4 bad param", EX_PROTOCOL},
        {550, "550 no enhanced code", EX_UNAVAILABLE},
        {0, "connection lost", EX_TEMPFAIL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct submit_reply r = {.code = cases[i].code};
        snprintf(r.text, sizeof(r.text), "%s", cases[i].text);
        assert_int_equal(submit_exit_status(&r), cases[i].status);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session),      cmocka_unit_test(test_mail_refused),
        cmocka_unit_test(test_bad_sessions), cmocka_unit_test(test_no_daemon),
        cmocka_unit_test(test_proxy),        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_exit_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
