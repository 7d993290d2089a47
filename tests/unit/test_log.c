/* util/log: the ident is copied, targets can change, and log_limited() writes one line per
 * interval and key group, then the count of the others. stderr is captured in a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static int saved_stderr = -1;
static FILE *capture;

static int capture_start(void **state)
{
    (void)state;
    capture = tmpfile();
    if (!capture)
        return -1;
    saved_stderr = dup(STDERR_FILENO);
    if (saved_stderr < 0 || dup2(fileno(capture), STDERR_FILENO) < 0)
        return -1;
    log_configure("ringmaild", LOG_TO_STDERR);
    return 0;
}

static int capture_stop(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    fclose(capture);
    return 0;
}

/* Everything written to stderr since capture_start(), NUL-terminated (caller frees). */
static char *captured(void)
{
    long len = lseek(fileno(capture), 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(capture), text, (size_t)len, 0), len);
    return text;
}

static unsigned count_lines(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* openlog(3) keeps the pointer it is given: an ident from a configuration that a reload
 * frees must be copied. */
static void test_ident_is_copied(void **state)
{
    (void)state;
    char ident[16] = "sm-mta";
    log_configure(ident, LOG_TO_STDERR);
    strcpy(ident, "XXXXXX");
    log_info("hello");
    char *text = captured();
    char want[64];
    snprintf(want, sizeof(want), " sm-mta[%ld]: hello\n", (long)getpid());
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "XXXXXX"));
    free(text);
}

static void test_configure_again_renames(void **state)
{
    (void)state;
    log_configure("first", LOG_TO_STDERR);
    log_warn("one");
    log_configure("second", LOG_TO_STDERR);
    log_info("two");
    log_configure(NULL, LOG_TO_STDERR); /* keeps "second" */
    log_error("three");
    char *text = captured();
    assert_non_null(strstr(text, " first["));
    assert_non_null(strstr(text, "]: warning: one\n"));
    assert_non_null(strstr(text, " second["));
    assert_int_equal(count_lines(text, " second["), 2);
    assert_non_null(strstr(text, "]: error: three\n"));
    free(text);
}

/* Both targets: the line still reaches stderr (the terminal of a daemon about to detach);
 * no targets at all is taken as stderr, never as nowhere. */
static void test_both_targets_and_none(void **state)
{
    (void)state;
    log_configure("both", LOG_TO_STDERR | LOG_TO_SYSLOG);
    log_info("to both");
    log_configure("none", 0);
    log_info("to none");
    log_close();
    log_info("closed");
    char *text = captured();
    assert_non_null(strstr(text, " both["));
    assert_non_null(strstr(text, "]: to both\n"));
    assert_non_null(strstr(text, " none["));
    assert_non_null(strstr(text, "]: to none\n"));
    assert_non_null(strstr(text, "]: closed\n"));
    free(text);
}

/* log.format: json makes each line one object on stderr, with the level as a member and no
 * stamp in front; back to text, the next line is text again. */
static void test_json_format(void **state)
{
    (void)state;
    enum log_format f;
    assert_true(log_format_parse("json", &f) && f == LOG_FORMAT_JSON);
    assert_true(log_format_parse("text", &f) && f == LOG_FORMAT_TEXT);
    assert_false(log_format_parse("JSON", &f));
    log_configure("sm-mta", LOG_TO_STDERR);
    log_set_format(LOG_FORMAT_JSON);
    log_warn("Q1234567890ab: a=<b, c>, d=\"e\"");
    log_set_format(LOG_FORMAT_TEXT);
    log_info("plain");
    char *text = captured();
    assert_int_equal(text[0], '{');
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[-1], '}');
    assert_non_null(strstr(text, "\"ident\":\"sm-mta\",\"pid\":"));
    assert_non_null(
        strstr(text, ",\"level\":\"warning\",\"qid\":\"Q1234567890ab\",\"a\":\"<b, c>\","
                     "\"d\":\"\\\"e\\\"\",\"msg\":\"Q1234567890ab: a=<b, c>, d=\\\"e\\\"\"}\n"));
    assert_non_null(strstr(nl + 1, " sm-mta["));
    assert_non_null(strstr(nl + 1, "]: plain\n"));
    free(text);
}

static void test_one_line_per_interval_then_the_count(void **state)
{
    (void)state;
    static struct log_limit lim = LOG_LIMIT_INIT(10000);
    assert_true(log_limited_at(&lim, 1000, LOG_LVL_INFO, "a", "refused [%s]", "192.0.2.1"));
    for (unsigned i = 0; i < 1234; i++)
        assert_false(log_limited_at(&lim, 1000 + i, LOG_LVL_INFO, "a", "refused [%s]", "x"));
    /* not before the interval is over */
    assert_false(log_limited_at(&lim, 10999, LOG_LVL_INFO, "a", "refused [%s]", "y"));
    assert_true(log_limited_at(&lim, 11000, LOG_LVL_INFO, "a", "refused [%s]", "192.0.2.3"));
    char *text = captured();
    const char *first = strstr(text, "]: refused [192.0.2.1]\n");
    const char *count =
        strstr(text, "]: 1235 more like this were not logged in 10 s: refused [192.0.2.1]\n");
    const char *again = strstr(text, "]: refused [192.0.2.3]\n");
    assert_non_null(first);
    assert_non_null(count);
    assert_non_null(again);
    assert_true(first < count && count < again); /* the count comes before the new line */
    assert_int_equal(count_lines(text, "refused"), 3);
    free(text);
}

static void test_keys_do_not_hide_each_other(void **state)
{
    (void)state;
    static struct log_limit lim = LOG_LIMIT_INIT(10000);
    /* "192.0.2.1" and "192.0.2.2" fall into different groups (FNV-1a mod 64) */
    assert_true(log_limited_at(&lim, 0, LOG_LVL_WARN, "192.0.2.1", "from one"));
    assert_true(log_limited_at(&lim, 1, LOG_LVL_WARN, "192.0.2.2", "from two"));
    assert_false(log_limited_at(&lim, 2, LOG_LVL_WARN, "192.0.2.1", "from one"));
    log_limit_flush(&lim);
    char *text = captured();
    assert_non_null(strstr(text, "]: warning: from one\n"));
    assert_non_null(strstr(text, "]: warning: from two\n"));
    /* the count keeps the level; an interval with nothing held back writes no count */
    assert_non_null(
        strstr(text, "]: warning: 1 more like this were not logged in 1 s: from one\n"));
    assert_int_equal(count_lines(text, "more like this"), 1);
    free(text);
}

/* A count goes out with the next call through the limit once its interval is over, even
 * when that call is for another group; a line from a slightly earlier clock is "within". */
static void test_count_with_other_traffic_and_skewed_clocks(void **state)
{
    (void)state;
    static struct log_limit lim = LOG_LIMIT_INIT(1000);
    assert_true(log_limited_at(&lim, 5000, LOG_LVL_INFO, "192.0.2.1", "held"));
    assert_false(log_limited_at(&lim, 4990, LOG_LVL_INFO, "192.0.2.1", "held"));
    assert_false(log_limited_at(&lim, 5500, LOG_LVL_INFO, "192.0.2.1", "held"));
    assert_true(log_limited_at(&lim, 6000, LOG_LVL_INFO, "192.0.2.2", "other"));
    char *text = captured();
    assert_non_null(strstr(text, "]: 2 more like this were not logged in 1 s: held\n"));
    free(text);
    /* the flush leaves nothing to say twice */
    log_limit_flush(&lim);
    log_limit_flush(&lim);
    text = captured();
    assert_int_equal(count_lines(text, "more like this"), 1);
    free(text);
}

struct hammer {
    struct log_limit *lim;
    unsigned written;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    for (unsigned i = 0; i < 1000; i++)
        h->written += log_limited_at(h->lim, 42, LOG_LVL_INFO, "", "busy");
    return NULL;
}

/* Workers are threads: one line and an exact count, however the calls interleave. */
static void test_threads(void **state)
{
    (void)state;
    static struct log_limit lim = LOG_LIMIT_INIT(10000);
    struct hammer h[4];
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        h[i] = (struct hammer){&lim, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    unsigned written = 0;
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        written += h[i].written;
    }
    assert_int_equal(written, 1);
    log_limit_flush(&lim);
    char *text = captured();
    assert_int_equal(count_lines(text, "]: busy\n"), 1);
    assert_non_null(strstr(text, "]: 3999 more like this were not logged in 1 s: busy\n"));
    free(text);
}

static void test_below_level_is_neither_written_nor_counted(void **state)
{
    (void)state;
    static struct log_limit lim = LOG_LIMIT_INIT(10000);
    assert_false(log_limited_at(&lim, 0, LOG_LVL_DEBUG, "", "quiet"));
    assert_true(log_limited_at(&lim, 1, LOG_LVL_INFO, "", "loud"));
    log_limit_flush(&lim);
    char *text = captured();
    assert_null(strstr(text, "quiet"));
    assert_null(strstr(text, "more like this"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ident_is_copied, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_configure_again_renames, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_both_targets_and_none, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_json_format, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_one_line_per_interval_then_the_count, capture_start,
                                        capture_stop),
        cmocka_unit_test_setup_teardown(test_keys_do_not_hide_each_other, capture_start,
                                        capture_stop),
        cmocka_unit_test_setup_teardown(test_count_with_other_traffic_and_skewed_clocks,
                                        capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_threads, capture_start, capture_stop),
        cmocka_unit_test_setup_teardown(test_below_level_is_neither_written_nor_counted,
                                        capture_start, capture_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
