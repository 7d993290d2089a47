/*
 * core/local_forward: the :include: files of a .forward, read by the agent as the user with
 * sendmail's include() rules and handed to the engine inside the .forward's text. The engine
 * (core/localrcpt.c's forward hook) then expands them as it expands the aliases' files:
 * their addresses and programs are the user's, a missing or unsafe file bounces that
 * target, nested files are followed and a file that includes itself is no loop of mail.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/local_agent.h"
#include "core/local_forward.h"
#include "core/localrcpt.h"

static char dir[] = "/tmp/ringmail-local-forward-XXXXXX";

static void put(const char *name, mode_t mode, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    char text[512];
    snprintf(text, sizeof(text), "bob, :include:%s/nested\n\"|/usr/bin/vacation alice\"", dir);
    put("list", 0644, text); /* no final newline: the section must still end its last line */
    snprintf(text, sizeof(text), "carol\n:include:%s/list\n", dir);
    put("nested", 0600, text);
    put("writable", 0664, "mallory\n");
    char big[LOCAL_FORWARD_MAX + 16];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put("big", 0644, big);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"list", "nested", "writable", "big"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

/* The .forward as the agent sends it. */
static void pack(char *text, size_t size, const char *forward)
{
    size_t len = (size_t)snprintf(text, size, "%s", forward);
    assert_true(local_forward_add_includes("Q1", text, &len, size));
    assert_int_equal(len, strlen(text));
}

static void test_agent_reads_includes(void **state)
{
    (void)state;
    static char text[LOCAL_FORWARD_MAX];
    char fwd[512], path[256];
    snprintf(fwd, sizeof(fwd),
             "\\alice, :include:%s/list\n:include:%s/writable, :include:%s/missing, "
             ":include:%s/big",
             dir, dir, dir, dir);
    pack(text, sizeof(text), fwd);
    /* the .forward's own text comes first, as it was, with its last line ended */
    assert_int_equal(local_forward_text_len(text), strlen(fwd) + 1);
    assert_memory_equal(text, fwd, strlen(fwd));

    char *got = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/list", dir);
    assert_int_equal(local_forward_include(text, path, &got, &len), 0);
    assert_int_equal(len, strlen(got));
    assert_non_null(strstr(got, "bob, :include:"));
    free(got);
    snprintf(path, sizeof(path), "%s/nested", dir); /* named by list: followed too */
    assert_int_equal(local_forward_include(text, path, &got, &len), 0);
    assert_string_equal(strtok(got, "\n"), "carol");
    free(got);
    snprintf(path, sizeof(path), "%s/writable", dir); /* group-writable: sendmail's EPERM */
    assert_int_equal(local_forward_include(text, path, &got, &len), EPERM);
    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(local_forward_include(text, path, &got, &len), ENOENT);
    snprintf(path, sizeof(path), "%s/big", dir); /* does not fit the reply: deferred */
    assert_int_equal(local_forward_include(text, path, &got, &len), EFBIG);
    assert_int_equal(local_forward_include(text, "/etc/other", &got, &len), EAGAIN);

    /* the agent's check that the .forward names a program sees the included ones */
    assert_true(
        local_agent_forward_names(text, strlen(text), LOCAL_OP_PROGRAM, "/usr/bin/vacation alice"));
    assert_false(local_agent_forward_names(text, strlen(text), LOCAL_OP_PROGRAM, "/bin/evil"));
}

static void test_plain_forward_unchanged(void **state)
{
    (void)state;
    char text[64];
    pack(text, sizeof(text), "bob, carol");
    assert_string_equal(text, "bob, carol");
    assert_int_equal(local_forward_text_len(text), strlen(text));
    char bad[64];
    size_t len = (size_t)snprintf(bad, sizeof(bad), "bob\n#\x1einclude 0 3 /x\nevil\n");
    assert_false(local_forward_add_includes("Q1", bad, &len, sizeof(bad)));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The engine's side: the forward hook expands the included lists as the user's. */
static void test_engine_expands_includes(void **state)
{
    (void)state;
    static char text[LOCAL_FORWARD_MAX];
    char fwd[512];
    snprintf(fwd, sizeof(fwd), "\\alice, :include:%s/list, :include:%s/writable\n", dir, dir);
    pack(text, sizeof(text), fwd);
    static char *users[] = {"alice", "bob", "carol", "mallory"};
    qsort(users, 4, sizeof(users[0]), cmp_str);
    static char *domains[] = {"mx.example.org"};
    struct config c = {
        .hostname = "mx.example.org", .local_domains = domains, .n_local_domains = 1};
    c.map.users = users;
    c.map.n_users = 4;
    struct qmgr_local_settings qs;
    struct route lmtp = {0};
    char err[128];
    assert_int_equal(localrcpt_qmgr_settings(&c, &qs, &lmtp, err, sizeof(err)), 0);
    struct qmgr_local_targets t = {0};
    assert_int_equal(qs.forward(qs.arg, "alice", NULL, text, &t), 0);
    bool alice = false, bob = false, carol = false, prog = false, unsafe = false;
    for (size_t i = 0; i < t.n; i++) {
        const struct qmgr_local_target *x = &t.v[i];
        alice |= x->kind == QMGR_LOCAL_MAILBOX && strcmp(x->value, "alice") == 0 && x->no_forward;
        bob |= x->kind == QMGR_LOCAL_MAILBOX && strcmp(x->value, "bob") == 0;
        carol |= x->kind == QMGR_LOCAL_MAILBOX && strcmp(x->value, "carol") == 0;
        prog |= x->kind == QMGR_LOCAL_PROGRAM && strcmp(x->value, "/usr/bin/vacation alice") == 0;
        unsafe |= x->kind == QMGR_LOCAL_ERROR && strcmp(x->status, "5.2.4") == 0;
        assert_false(x->kind == QMGR_LOCAL_MAILBOX && strcmp(x->value, "mallory") == 0);
        assert_false(x->kind == QMGR_LOCAL_ERROR && x->status[0] == '4');
    }
    assert_true(alice && bob && carol && prog && unsafe);
    assert_int_equal(t.n, 5);
    qmgr_local_targets_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_reads_includes),
        cmocka_unit_test(test_plain_forward_unchanged),
        cmocka_unit_test(test_engine_expands_includes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
