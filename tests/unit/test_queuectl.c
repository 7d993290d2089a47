/* The queue tools' client: targets and filters, sendmail's hoststat rows, the control
 * protocol against a scripted server on a unix socket (requests, data lines, OK/ERR, a
 * daemon that closes without an answer, long target lists split over several requests),
 * and the offline operations on a spool of real qf files (hold, release, requeue rewrite
 * fields in place; delete removes qf and df; a held spool lock refuses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/queuectl.h"
#include "cli/spool_read.h"

static struct envelope_rcpt rcpts[] = {
    {.addr = "bob@example.org", .state = ENV_RCPT_PENDING},
    {.addr = "carol@Example.NET", .state = ENV_RCPT_DELIVERED},
};

static struct envelope msg = {
    .qid = "0a1B2c3D4e5F6g7H",
    .sender = "alice@client.test",
    .created = 1700000000,
    .rcpts = rcpts,
    .n_rcpts = 2,
};

static void test_targets(void **state)
{
    (void)state;
    assert_true(queuectl_target_valid("0a1B2c3D4e5F6g7H"));
    assert_true(queuectl_target_valid("ALL"));
    assert_true(queuectl_target_valid("Rexample.org"));
    assert_true(queuectl_target_valid("!Sclient"));
    assert_true(queuectl_target_valid("I6g7"));
    assert_false(queuectl_target_valid(""));
    assert_false(queuectl_target_valid("R"));
    assert_false(queuectl_target_valid("!"));
    assert_false(queuectl_target_valid("Xfoo"));
    assert_false(queuectl_target_valid("all"));
    assert_false(queuectl_target_valid("Ra b"));
    assert_false(queuectl_target_valid("Ra\nFLUSH"));
}

static void test_matches(void **state)
{
    (void)state;
    const char *id[] = {"0a1B2c3D4e5F6g7H"};
    assert_true(queuectl_matches(&msg, id, 1));
    const char *other[] = {"0a1B2c3D4e5F6g7J"};
    assert_false(queuectl_matches(&msg, other, 1));
    const char *all[] = {"ALL"};
    assert_true(queuectl_matches(&msg, all, 1));
    /* case-insensitive substrings; a delivered recipient no longer counts */
    const char *r[] = {"REXAMPLE.ORG"};
    assert_true(queuectl_matches(&msg, r, 1));
    const char *done[] = {"Rexample.net"};
    assert_false(queuectl_matches(&msg, done, 1));
    const char *neg[] = {"!Rexample.net"};
    assert_true(queuectl_matches(&msg, neg, 1));
    /* filters must all match, and a queue id given must be the message's */
    const char *both[] = {"Rexample.org", "SCLIENT.TEST"};
    assert_true(queuectl_matches(&msg, both, 2));
    const char *one_fails[] = {"Rexample.org", "Sother"};
    assert_false(queuectl_matches(&msg, one_fails, 2));
    const char *id_and[] = {"Sother", "0a1B2c3D4e5F6g7H"};
    assert_false(queuectl_matches(&msg, id_and, 2));
    const char *ids[] = {"0a1B2c3D4e5F6g7J", "0a1B2c3D4e5F6g7H", "Sclient"};
    assert_true(queuectl_matches(&msg, ids, 3));
    const char *idsub[] = {"I5f6G"};
    assert_true(queuectl_matches(&msg, idsub, 1));
    /* a filter-looking token is a filter even when it is 16 alphanumerics */
    const char *rlike[] = {"Rxxxxxxxxxxxxxxx"};
    assert_false(queuectl_matches(&msg, rlike, 1));
}

static char *hoststat_row(const char *row, time_t now, bool *ok)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    *ok = queuectl_hoststat_line(f, row, now);
    fclose(f);
    return s;
}

static void test_hoststat_rows(void **state)
{
    (void)state;
    bool ok;
    char *s = hoststat_row("mx.example.org\tdown\t1000\tDeferred: Connection refused by mx",
                           1000 + 3723, &ok);
    assert_true(ok);
    char want[256];
    snprintf(want, sizeof(want), " %-39s %12s %s\n", "mx.example.org", "01:02:03",
             "Deferred: Connection refu");
    assert_string_equal(s, want);
    free(s);
    s = hoststat_row("[192.0.2.1]\tup\t0\t", 2 * 86400 + 61, &ok);
    snprintf(want, sizeof(want), " %-39s %12s OK\n", "[192.0.2.1]", "2+00:01:01");
    assert_string_equal(s, want);
    free(s);
    s = hoststat_row("a\tdown\t5\t", 5, &ok);
    assert_non_null(strstr(s, "00:00:00 Deferred\n"));
    free(s);
    free(hoststat_row("a\tmaybe\t5\tx", 5, &ok));
    assert_false(ok);
    free(hoststat_row("a\tup\tsoon\tx", 5, &ok));
    assert_false(ok);
    free(hoststat_row("no tabs", 5, &ok));
    assert_false(ok);
}

/* --- a scripted control server --- */

struct server {
    char dir[64];
    char path[108];
    int fd;
    pthread_t thread;
    const char *replies[4]; /* one per connection, in order */
    char requests[4][QUEUECTL_LINE_MAX + 1];
    int served;
};

static void *server_run(void *arg)
{
    struct server *s = arg;
    for (int i = 0; i < 4 && s->replies[i]; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        size_t got = 0;
        while (got < QUEUECTL_LINE_MAX) {
            ssize_t r = read(c, s->requests[i] + got, 1);
            if (r <= 0 || s->requests[i][got] == '\n')
                break;
            got++;
        }
        s->requests[i][got] = '\0';
        ssize_t w = write(c, s->replies[i], strlen(s->replies[i]));
        (void)w;
        close(c);
        s->served++;
    }
    return NULL;
}

static void server_start(struct server *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/test_queuectl.XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/ctl", s->dir);
    s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, server_run, s), 0);
}

static void server_stop(struct server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    unlink(s->path);
    rmdir(s->dir);
}

static FILE *mem(char **buf, size_t *len)
{
    *buf = NULL;
    FILE *f = open_memstream(buf, len);
    assert_non_null(f);
    return f;
}

static void test_protocol_change_and_errors(void **state)
{
    (void)state;
    struct server s = {.replies = {"+ 0a1B2c3D4e5F6g7H held\n+ 0a1B2c3D4e5F6g7J held\nOK 2\n",
                                   "ERR 77 permission denied\n", "+ half an answer\n"}};
    server_start(&s);
    struct config cfg = {.control_socket = s.path, .spool = s.dir, .run_as = "nobody"};
    char *o, *e;
    size_t ol, el;
    FILE *out = mem(&o, &ol), *err = mem(&e, &el);
    const char *t[] = {"Rexample.org", "!Sbounce"};
    assert_int_equal(queuectl_change(&cfg, "q", QUEUECTL_HOLD, t, 2, out, err), EX_OK);
    assert_int_equal(queuectl_change(&cfg, "q", QUEUECTL_DELETE, t, 1, out, err), EX_NOPERM);
    assert_int_equal(queuectl_change(&cfg, "q", QUEUECTL_RELEASE, t, 1, out, err), EX_PROTOCOL);
    fclose(out);
    fclose(err);
    server_stop(&s);
    assert_string_equal(s.requests[0], "HOLD Rexample.org !Sbounce");
    assert_string_equal(s.requests[1], "DELETE Rexample.org");
    assert_string_equal(s.requests[2], "RELEASE Rexample.org");
    assert_string_equal(o, "0a1B2c3D4e5F6g7H held\n0a1B2c3D4e5F6g7J held\nhalf an answer\n");
    assert_non_null(strstr(e, "q: Placed on hold: 2 messages\n"));
    assert_non_null(strstr(e, "q: permission denied\n"));
    assert_non_null(strstr(e, "without an answer"));
    free(o);
    free(e);

    /* a target the protocol cannot carry is refused before anything is sent */
    out = mem(&o, &ol);
    err = mem(&e, &el);
    const char *bad[] = {"R a"};
    assert_int_equal(queuectl_change(&cfg, "q", QUEUECTL_HOLD, bad, 1, out, err), EX_USAGE);
    fclose(out);
    fclose(err);
    free(o);
    free(e);
}

static void test_long_target_lists_are_split(void **state)
{
    (void)state;
    struct server s = {.replies = {"OK 0\n", "OK 0\n"}};
    server_start(&s);
    struct config cfg = {.control_socket = s.path, .spool = s.dir};
    enum { N = 300 }; /* 300 ids of 16 octets and a space: more than 4096 octets */
    const char *t[N];
    for (int i = 0; i < N; i++)
        t[i] = "0a1B2c3D4e5F6g7H";
    char *o, *e;
    size_t ol, el;
    FILE *out = mem(&o, &ol), *err = mem(&e, &el);
    assert_int_equal(queuectl_change(&cfg, "q", QUEUECTL_REQUEUE, t, N, out, err), EX_OK);
    fclose(out);
    fclose(err);
    server_stop(&s);
    assert_int_equal(s.served, 2);
    size_t n0 = strlen(s.requests[0]), n1 = strlen(s.requests[1]);
    assert_true(n0 + 1 <= QUEUECTL_LINE_MAX);
    assert_true(!strncmp(s.requests[0], "REQUEUE ", 8) && !strncmp(s.requests[1], "REQUEUE ", 8));
    assert_int_equal((n0 - 7) / 17 + (n1 - 7) / 17, N);
    free(o);
    free(e);
}

static void test_flush_hoststat_watch(void **state)
{
    (void)state;
    struct server s = {.replies = {"OK 3 messages scheduled\n",
                                   "+ mx.example.org\tdown\t0\t421 busy\nOK\n",
                                   "+ line one\n+ line two\nOK\n"}};
    server_start(&s);
    struct config cfg = {.control_socket = s.path, .spool = s.dir};
    char *o, *e;
    size_t ol, el;
    FILE *out = mem(&o, &ol), *err = mem(&e, &el);
    struct sendmail_queue_filter f[] = {{'R', false, "example.org"}, {'I', true, "abc"}};
    struct sendmail_args a = {.progname = "sendmail", .queue_filters = f, .n_queue_filters = 2};
    assert_int_equal(queuectl_flush(&cfg, &a, out, err), EX_OK);
    assert_int_equal(queuectl_hoststat(&cfg, false, out, err), EX_OK);
    assert_int_equal(queuectl_watch(&cfg, "0a1B2c3D4e5F6g7H", out), EX_OK);
    fclose(out);
    fclose(err);
    server_stop(&s);
    assert_string_equal(s.requests[0], "FLUSH Rexample.org !Iabc");
    assert_string_equal(s.requests[1], "HOSTSTAT");
    assert_string_equal(s.requests[2], "WATCH 0a1B2c3D4e5F6g7H");
    /* sendmail -q says nothing on success; hoststat has sendmail's heading */
    assert_non_null(strstr(o, " -------------- Hostname --------------- How long ago "
                              "---------Results---------\n mx.example.org"));
    assert_non_null(strstr(o, " 421 busy\nline one\nline two\n"));
    assert_string_equal(e, "");
    free(o);
    free(e);

    /* white space cannot be sent in a filter */
    struct sendmail_queue_filter sp[] = {{'S', false, "a b"}};
    struct sendmail_args b = {.progname = "sendmail", .queue_filters = sp, .n_queue_filters = 1};
    out = mem(&o, &ol);
    err = mem(&e, &el);
    assert_int_equal(queuectl_flush(&cfg, &b, out, err), EX_USAGE);
    fclose(out);
    fclose(err);
    free(o);
    free(e);
}

/* --- offline: the daemon is down --- */

struct spool {
    char dir[64];
    char ctl[96];
    struct config cfg;
};

static void spool_put(struct spool *sp, const char *sub, const char *qid, time_t next,
                      const char *reason)
{
    struct envelope e = msg;
    memcpy(e.qid, qid, QID_LEN + 1);
    e.next_attempt = next;
    e.attempts = 3;
    e.last_reason = (char *)reason;
    struct buf b = {0};
    assert_int_equal(envelope_write(&e, &b), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", sp->dir, sub);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%s/qf%s", sp->dir, sub, qid);
    FILE *f = fopen(path, "w");
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s/df%s", sp->dir, sub, qid);
    f = fopen(path, "w");
    fclose(f);
    buf_free(&b);
}

static void spool_setup(struct spool *sp)
{
    snprintf(sp->dir, sizeof(sp->dir), "/tmp/test_queuectl.XXXXXX");
    assert_non_null(mkdtemp(sp->dir));
    snprintf(sp->ctl, sizeof(sp->ctl), "%s/no-daemon.ctl", sp->dir);
    struct passwd *pw = getpwuid(geteuid());
    assert_non_null(pw);
    sp->cfg = (struct config){.control_socket = sp->ctl, .spool = sp->dir, .run_as = pw->pw_name};
    spool_put(sp, "3", "0a1B2c3D4e5F6g7A", 1700003600, "Deferred: 451 try later");
    spool_put(sp, "a", "0a1B2c3D4e5F6g7B", ENVELOPE_NEXT_HELD, NULL);
}

static void spool_teardown(struct spool *sp)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", sp->dir);
    assert_int_equal(system(cmd), 0);
}

static const struct envelope *find(struct spool_read_list *l, const char *qid)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->msgs[i].env.qid, qid))
            return &l->msgs[i].env;
    return NULL;
}

static int change(struct spool *sp, enum queuectl_op op, const char *target, char **o)
{
    size_t ol;
    char *e;
    size_t el;
    FILE *out = mem(o, &ol), *err = mem(&e, &el);
    int rc = queuectl_change(&sp->cfg, "q", op, &target, 1, out, err);
    fclose(out);
    fclose(err);
    free(e);
    return rc;
}

static void test_offline_operations(void **state)
{
    (void)state;
    struct spool sp = {0};
    spool_setup(&sp);
    char *o;
    /* hold: only the message not already held */
    assert_int_equal(change(&sp, QUEUECTL_HOLD, "ALL", &o), EX_OK);
    assert_string_equal(o, "0a1B2c3D4e5F6g7A held\n");
    free(o);
    struct spool_read_list l;
    char why[256];
    assert_int_equal(spool_read_all(sp.dir, &l, why, sizeof(why)), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(find(&l, "0a1B2c3D4e5F6g7A")->next_attempt, ENVELOPE_NEXT_HELD);
    assert_int_equal(find(&l, "0a1B2c3D4e5F6g7A")->attempts, 3);
    spool_read_list_free(&l);

    /* release by id */
    assert_int_equal(change(&sp, QUEUECTL_RELEASE, "0a1B2c3D4e5F6g7B", &o), EX_OK);
    assert_string_equal(o, "0a1B2c3D4e5F6g7B released\n");
    free(o);
    assert_int_equal(spool_read_all(sp.dir, &l, why, sizeof(why)), 0);
    assert_int_equal(find(&l, "0a1B2c3D4e5F6g7B")->next_attempt, 0);
    spool_read_list_free(&l);

    /* requeue: due now (held or not), attempts kept, the reason cleared */
    assert_int_equal(change(&sp, QUEUECTL_REQUEUE, "I6g7A", &o), EX_OK);
    assert_string_equal(o, "0a1B2c3D4e5F6g7A requeued\n");
    free(o);
    assert_int_equal(spool_read_all(sp.dir, &l, why, sizeof(why)), 0);
    const struct envelope *a = find(&l, "0a1B2c3D4e5F6g7A");
    assert_int_equal(a->next_attempt, 0);
    assert_int_equal(a->attempts, 3);
    assert_true(a->last_reason == NULL || a->last_reason[0] == '\0');
    spool_read_list_free(&l);

    /* delete: qf and df gone */
    assert_int_equal(change(&sp, QUEUECTL_DELETE, "0a1B2c3D4e5F6g7B", &o), EX_OK);
    assert_string_equal(o, "0a1B2c3D4e5F6g7B deleted\n");
    free(o);
    char path[256];
    snprintf(path, sizeof(path), "%s/a/df0a1B2c3D4e5F6g7B", sp.dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/a/qf0a1B2c3D4e5F6g7B", sp.dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(spool_read_all(sp.dir, &l, why, sizeof(why)), 0);
    assert_int_equal(l.n, 1);
    spool_read_list_free(&l);

    /* a running daemon that does not answer holds the lock: nothing is touched */
    snprintf(path, sizeof(path), "%s/ringmail.lock", sp.dir);
    int lock = open(path, O_RDWR);
    assert_true(lock >= 0);
    assert_int_equal(flock(lock, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(change(&sp, QUEUECTL_DELETE, "ALL", &o), EX_TEMPFAIL);
    free(o);
    close(lock);
    assert_int_equal(spool_read_all(sp.dir, &l, why, sizeof(why)), 0);
    assert_int_equal(l.n, 1);
    spool_read_list_free(&l);

    /* flush and hoststat need the daemon */
    char *e;
    size_t el, ol;
    FILE *out = mem(&o, &ol), *err = mem(&e, &el);
    assert_int_equal(queuectl_flush_filters(&sp.cfg, "q", NULL, 0, false, out, err),
                     EX_UNAVAILABLE);
    assert_int_equal(queuectl_hoststat(&sp.cfg, true, out, err), EX_UNAVAILABLE);
    fclose(out);
    fclose(err);
    assert_non_null(strstr(e, "q: ringmaild is not running"));
    free(o);
    free(e);
    spool_teardown(&sp);
}

/* Who may read and change the spool (its mode is 0700): root and the run-as user. */
static void test_who_may(void **state)
{
    (void)state;
    struct passwd *nobody = getpwnam("nobody");
    assert_non_null(nobody);
    assert_true(spool_read_allowed("nobody", 0));
    assert_true(spool_read_allowed("nobody", nobody->pw_uid));
    assert_false(spool_read_allowed("root", nobody->pw_uid));
    assert_false(spool_read_allowed("no-such-user-here", nobody->pw_uid));
    assert_false(spool_read_allowed(NULL, nobody->pw_uid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_matches),
        cmocka_unit_test(test_hoststat_rows),
        cmocka_unit_test(test_protocol_change_and_errors),
        cmocka_unit_test(test_long_target_lists_are_split),
        cmocka_unit_test(test_flush_hoststat_watch),
        cmocka_unit_test(test_offline_operations),
        cmocka_unit_test(test_who_may),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
