/* newaliases (cli/newaliases.h): sendmail's counts, errors with file and line, and no signal
 * to a process that is not ringmaild. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/newaliases.h"

/* readaliases() counts the name and the right-hand side as written: leading white space
 * after the colon skipped, continuation lines joined with their own leading white space. */
static void test_counts(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "postmaster: root\n"
                       "\n"
                       "root:   admin@example.com, ops@example.com\n"
                       "list: a,\n"
                       "  b,\n"
                       "\tc\n";
    struct newaliases_stats st;
    char err[256];
    assert_int_equal(newaliases_count("aliases", text, strlen(text), &st, err, sizeof(err)), 0);
    assert_int_equal(st.aliases, 3);
    assert_int_equal(st.longest, 34); /* admin@example.com, ops@example.com */
    assert_int_equal(st.total, 14 + 38 + 12);
}

static void test_crlf_and_empty(void **state)
{
    (void)state;
    struct newaliases_stats st;
    char err[256];
    assert_int_equal(newaliases_count("aliases", "", 0, &st, err, sizeof(err)), 0);
    assert_int_equal(st.aliases, 0);
    assert_int_equal(st.total, 0);
    const char *crlf = "abuse: root\r\n";
    assert_int_equal(newaliases_count("aliases", crlf, strlen(crlf), &st, err, sizeof(err)), 0);
    assert_int_equal(st.aliases, 1);
    assert_int_equal(st.total, 9);
}

static void test_errors_name_line(void **state)
{
    (void)state;
    struct newaliases_stats st;
    char err[256];
    const char *nocolon = "root: a\nthis line has no colon\n";
    assert_int_equal(
        newaliases_count("/etc/aliases", nocolon, strlen(nocolon), &st, err, sizeof(err)), -1);
    assert_string_equal(err, "/etc/aliases:2: expected 'name: target, ...'");
    const char *twice = "root: a\n\nRoot: b\n";
    assert_int_equal(newaliases_count("/etc/aliases", twice, strlen(twice), &st, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "/etc/aliases:3: alias 'Root' is already defined at line 1");
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/test_newaliases.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int run_main(const char *aliases, const char *pid_file, char **out, char **err)
{
    char *words[] = {(char *)aliases};
    struct config cfg = {.pid_file = (char *)pid_file, .run_as = "nobody"};
    cfg.maps.aliases.v = words;
    cfg.maps.aliases.n = 1;
    size_t olen, elen;
    FILE *o = open_memstream(out, &olen), *e = open_memstream(err, &elen);
    int rc = newaliases_main(&cfg, o, e);
    fclose(o);
    fclose(e);
    return rc;
}

/* The pid file names this test program, not a ringmaild: it gets no SIGHUP. */
static void test_main(void **state)
{
    (void)state;
    char *aliases = write_temp("postmaster: root\nroot: admin\n");
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    char *pid_file = write_temp(pid);
    char *out, *err;
    assert_int_equal(run_main(aliases, pid_file, &out, &err), EX_OK);
    char expect[256];
    snprintf(expect, sizeof(expect),
             "%s: 2 aliases, longest 5 bytes, 23 bytes total\n"
             "ringmaild is not running: the aliases are read when it starts\n",
             aliases);
    assert_string_equal(out, expect);
    assert_string_equal(err, "");
    free(out);
    free(err);

    char *broken = write_temp("postmaster root\n");
    assert_int_equal(run_main(broken, pid_file, &out, &err), EX_DATAERR);
    assert_string_equal(out, "");
    snprintf(expect, sizeof(expect), "newaliases: %s:1: expected 'name: target, ...'\n", broken);
    assert_string_equal(err, expect);
    free(out);
    free(err);

    assert_int_equal(run_main("/nonexistent/aliases", pid_file, &out, &err), EX_NOINPUT);
    assert_non_null(strstr(err, "/nonexistent/aliases"));
    free(out);
    free(err);
    unlink(aliases);
    unlink(pid_file);
    unlink(broken);
    free(aliases);
    free(pid_file);
    free(broken);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_crlf_and_empty),
        cmocka_unit_test(test_errors_name_line),
        cmocka_unit_test(test_main),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
