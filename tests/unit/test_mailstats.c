/* The statistics file (queue/mailstats.h) and its mailstats(8) layout (cli/stats_print.h):
 * made from a touched file, counted into from threads at once, reset while counted into,
 * reopened, and refused when it is not ours. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/stats_print.h"
#include "queue/mailstats.h"

#define EVENTS 20000

static char test_dir[] = "/tmp/ringmail-mailstats-XXXXXX";

static void test_path(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", test_dir, name);
}

/* A touched file, as an operator makes one to start counting. */
static void test_touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    close(fd);
}

static const struct mailstats_row *test_row(const struct mailstats_snapshot *snap, const char *name)
{
    const struct mailstats_row *found = NULL;
    for (size_t i = 0; i < snap->n_rows; i++)
        if (strcmp(snap->rows[i].name, name) == 0) {
            assert_null(found); /* one slot per mailer */
            found = &snap->rows[i];
        }
    return found;
}

static struct mailstats *test_open(const char *path, enum mailstats_mode mode)
{
    char err[512];
    struct mailstats *s;
    int rc = mailstats_open(path, mode, &s, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    return s;
}

static void test_create(void **state)
{
    (void)state;
    char path[256], err[512];
    struct mailstats *s;
    test_path(path, sizeof(path), "create");
    assert_int_equal(mailstats_open(path, MAILSTATS_COUNT, &s, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "No such file or directory"));
    test_touch(path);
    /* ringmail-stats on a touched file: zeros since now, and the file left as it is */
    s = test_open(path, MAILSTATS_READ);
    struct mailstats_snapshot snap;
    mailstats_snapshot(s, false, &snap);
    assert_int_equal(snap.n_rows, 0);
    assert_true(snap.since >= time(NULL) - 5);
    mailstats_close(s);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    /* the engine lays it out: sendmail's mailer numbers first */
    s = test_open(path, MAILSTATS_COUNT);
    mailstats_snapshot(s, false, &snap);
    assert_true(snap.n_rows >= 9);
    assert_string_equal(snap.rows[0].name, "prog");
    assert_string_equal(snap.rows[3].name, "local");
    assert_int_equal(test_row(&snap, "esmtp")->number, 5);
    assert_int_equal(test_row(&snap, "relay")->number, 8);
    assert_int_equal(snap.conn_from, 0);
    mailstats_close(s);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 0);
}

struct test_counter {
    struct mailstats *s;
    const char *new_mailer;
};

static void *test_count(void *arg)
{
    struct test_counter *c = arg;
    for (int i = 0; i < EVENTS; i++) {
        mailstats_add_msg(c->s, MAILSTATS_FROM, "esmtp", 1500); /* 2K, rounded up */
        mailstats_add_msg(c->s, MAILSTATS_TO, c->new_mailer, 1000);
        mailstats_add_conn(c->s, MAILSTATS_CONN_FROM);
    }
    return NULL;
}

/* Two threads at once, one naming a mailer the file has no slot for yet: no count lost, one
 * slot for it; then reopened, the counts are there. */
static void test_threads(void **state)
{
    (void)state;
    char path[256];
    test_path(path, sizeof(path), "threads");
    test_touch(path);
    struct mailstats *s = test_open(path, MAILSTATS_COUNT);
    struct test_counter c = {s, "procmail"};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, test_count, &c), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    mailstats_add_msg(s, MAILSTATS_REJECT, "esmtp", 0);
    mailstats_add_msg(s, MAILSTATS_DISCARD, "local", 0);
    mailstats_add_msg(s, MAILSTATS_QUARANTINE, "local", 0);
    mailstats_add_conn(s, MAILSTATS_CONN_TO);
    mailstats_add_conn(s, MAILSTATS_CONN_REJECT);
    mailstats_close(s);

    s = test_open(path, MAILSTATS_READ);
    struct mailstats_snapshot snap;
    mailstats_snapshot(s, false, &snap);
    mailstats_close(s);
    const struct mailstats_row *esmtp = test_row(&snap, "esmtp"),
                               *proc = test_row(&snap, "procmail");
    assert_non_null(proc);
    assert_int_equal(esmtp->msgsfr, 2 * EVENTS);
    assert_int_equal(esmtp->kbytes_from, 4 * EVENTS);
    assert_int_equal(esmtp->msgsto, 0);
    assert_int_equal(esmtp->msgsrej, 1);
    assert_int_equal(proc->msgsto, 2 * EVENTS);
    assert_int_equal(proc->kbytes_to, 2 * EVENTS);
    assert_int_equal(proc->number, 11); /* the first slot after the named ones */
    assert_int_equal(test_row(&snap, "local")->msgsdis, 1);
    assert_int_equal(test_row(&snap, "local")->msgsqur, 1);
    assert_int_equal(snap.conn_from, 2 * EVENTS);
    assert_int_equal(snap.conn_to, 1);
    assert_int_equal(snap.conn_rejected, 1);
}

/* ringmail-stats -p while the engine counts: what the resets took and what is left add up to
 * every event, and the period starts anew. */
static void test_reset(void **state)
{
    (void)state;
    char path[256];
    test_path(path, sizeof(path), "reset");
    test_touch(path);
    struct mailstats *engine = test_open(path, MAILSTATS_COUNT);
    struct mailstats *cli = test_open(path, MAILSTATS_RESET);
    struct test_counter c = {engine, "relay"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, test_count, &c), 0);
    uint64_t taken_from = 0, taken_to = 0, taken_conn = 0;
    struct mailstats_snapshot snap;
    for (int i = 0; i < 50; i++) {
        mailstats_snapshot(cli, true, &snap);
        taken_from += test_row(&snap, "esmtp")->msgsfr;
        taken_to += test_row(&snap, "relay") ? test_row(&snap, "relay")->msgsto : 0;
        taken_conn += snap.conn_from;
        usleep(100);
    }
    pthread_join(t, NULL);
    mailstats_snapshot(cli, false, &snap);
    assert_int_equal(taken_from + test_row(&snap, "esmtp")->msgsfr, EVENTS);
    assert_int_equal(taken_to + test_row(&snap, "relay")->msgsto, EVENTS);
    assert_int_equal(taken_conn + snap.conn_from, EVENTS);
    mailstats_snapshot(cli, true, &snap);
    mailstats_snapshot(cli, false, &snap);
    assert_int_equal(test_row(&snap, "esmtp")->msgsfr, 0);
    assert_int_equal(snap.conn_from, 0);
    assert_true(snap.since >= time(NULL) - 5);
    mailstats_close(cli);
    mailstats_close(engine);
}

/* A file that is not ours, or no longer whole, is refused in mailstats' words. */
static void test_refused(void **state)
{
    (void)state;
    char path[256], err[512];
    test_path(path, sizeof(path), "refused");
    test_touch(path);
    mailstats_close(test_open(path, MAILSTATS_COUNT));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct mailstats *s;

    uint32_t version = 99; /* after the 8-byte magic */
    assert_int_equal(pwrite(fd, &version, sizeof(version), 8), sizeof(version));
    assert_int_equal(mailstats_open(path, MAILSTATS_READ, &s, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "incompatible"));
    assert_non_null(strstr(err, "version (99)"));
    /* the engine does not count into it either */
    assert_int_equal(mailstats_open(path, MAILSTATS_COUNT, &s, err, sizeof(err)), -EPROTO);

    version = MAILSTATS_VERSION;
    assert_int_equal(pwrite(fd, &version, sizeof(version), 8), sizeof(version));
    assert_int_equal(ftruncate(fd, st.st_size / 2), 0);
    assert_int_equal(mailstats_open(path, MAILSTATS_READ, &s, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "file size changed"));

    assert_int_equal(pwrite(fd, "sendmail", 8, 0), 8);
    assert_int_equal(mailstats_open(path, MAILSTATS_READ, &s, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "incorrect magic number in"));
    close(fd);
}

/* The engine's installed file: nothing counted without one; counted once attached. */
static void test_attach(void **state)
{
    (void)state;
    char path[256];
    test_path(path, sizeof(path), "attach");
    mailstats_attach(path); /* does not exist: not counting */
    assert_false(mailstats_attached());
    mailstats_msg(MAILSTATS_FROM, "esmtp", 10);
    test_touch(path);
    mailstats_attach(path);
    assert_true(mailstats_attached());
    mailstats_msg(MAILSTATS_FROM, "local", 2001);
    mailstats_conn(MAILSTATS_CONN_FROM);
    mailstats_detach();
    assert_false(mailstats_attached());
    struct mailstats *s = test_open(path, MAILSTATS_READ);
    struct mailstats_snapshot snap;
    mailstats_snapshot(s, false, &snap);
    mailstats_close(s);
    assert_int_equal(test_row(&snap, "local")->msgsfr, 1);
    assert_int_equal(test_row(&snap, "local")->kbytes_from, 3);
    assert_int_equal(test_row(&snap, "esmtp")->msgsfr, 0);
    assert_int_equal(snap.conn_from, 1);
}

static char *test_printed(const struct mailstats_snapshot *snap, struct stats_print_opts *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    stats_print(f, snap, o);
    fclose(f);
    return text;
}

/* mailstats' columns exactly; a mailer with nothing counted is not shown. */
static void test_print(void **state)
{
    (void)state;
    struct mailstats_snapshot snap = {
        .since = 1000, .conn_from = 4, .conn_to = 1, .conn_rejected = 2, .n_rows = 3};
    snap.rows[0] =
        (struct mailstats_row){.number = 3, .name = "local", .msgsto = 2, .kbytes_to = 3};
    snap.rows[1] = (struct mailstats_row){.number = 4, .name = "smtp"};
    snap.rows[2] = (struct mailstats_row){
        .number = 5, .name = "esmtp", .msgsfr = 3, .kbytes_from = 5, .msgsrej = 1, .msgsqur = 7};
    setenv("TZ", "UTC", 1);
    struct stats_print_opts o = {.names = true};
    char *text = test_printed(&snap, &o);
    assert_string_equal(
        text, "Statistics from Thu Jan  1 00:16:40 1970\n"
              " M   msgsfr  bytes_from   msgsto    bytes_to  msgsrej msgsdis msgsqur  Mailer\n"
              " 3        0          0K        2          3K        0       0       0  local\n"
              " 5        3          5K        0          0K        1       0       7  esmtp\n"
              "=====================================================================\n"
              " T        3          5K        2          3K        1       0       7\n"
              " C        4                    1                    2\n");
    free(text);
    o = (struct stats_print_opts){.names = false, .program = true, .now = 2000};
    text = test_printed(&snap, &o);
    assert_string_equal(text,
                        "1000 2000\n"
                        " 3        0          0        2          3        0       0       0\n"
                        " 5        3          5        0          0        1       0       7\n"
                        " T        3          5        2          3        1       0       7\n"
                        " C        4        1      2\n");
    free(text);
}

static int test_setup(void **state)
{
    (void)state;
    return mkdtemp(test_dir) ? 0 : -1;
}

static int test_teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"create", "threads", "reset", "refused", "attach"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        test_path(path, sizeof(path), names[i]);
        unlink(path);
    }
    return rmdir(test_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_reset),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_attach), cmocka_unit_test(test_print),
    };
    return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
