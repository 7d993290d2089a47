/* policy/sasl: sendmail's AuthOptions letters and the offer (auth.mechanisms intersected
 * with what the real Cyrus SASL library offers under a test Sendmail.conf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sasl/sasl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/sasl.h"

static char test_dir[] = "/tmp/ringmail-sasl-XXXXXX";

static void test_option_flags(void **state)
{
    (void)state;
    assert_int_equal(sasl_option_flags(NULL), 0);
    assert_int_equal(sasl_option_flags("A"), 0); /* the client's letter */
    assert_int_equal(sasl_option_flags("Ap"), SASL_SEC_NOPLAINTEXT);
    assert_int_equal(sasl_option_flags("py"), SASL_SEC_NOPLAINTEXT | SASL_SEC_NOANONYMOUS);
    assert_int_equal(sasl_option_flags("acdfm"),
                     SASL_SEC_NOACTIVE | SASL_SEC_PASS_CREDENTIALS | SASL_SEC_NODICTIONARY |
                         SASL_SEC_FORWARD_SECRECY | SASL_SEC_MUTUAL_AUTH);
}

/* In the configured order, only what mech_list and the flags allow, case-insensitively. */
static void test_offer(void **state)
{
    (void)state;
    char out[256], err[256];
    const char *want[] = {"cram-md5", "GSSAPI", "PLAIN", "LOGIN", "ANONYMOUS", NULL};
    assert_int_equal(sasl_offer(want, 0, true, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "CRAM-MD5 PLAIN");
    /* 'p': no plaintext mechanism outside TLS; in TLS they stay */
    assert_int_equal(
        sasl_offer(want, SASL_SEC_NOPLAINTEXT, false, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "CRAM-MD5");
    assert_int_equal(
        sasl_offer(want, SASL_SEC_NOPLAINTEXT, true, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "CRAM-MD5 PLAIN");
    const char *none[] = {"GSSAPI", NULL};
    assert_int_equal(sasl_offer(none, 0, true, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "");
}

static int setup(void **state)
{
    (void)state;
    char path[128], err[256];
    if (!mkdtemp(test_dir))
        return -1;
    snprintf(path, sizeof(path), "%s/Sendmail.conf", test_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    /* the application name is sendmail's: this file is what the library reads */
    fputs("pwcheck_method: auxprop\nmech_list: PLAIN CRAM-MD5\n", f);
    fclose(f);
    if (sasl_setup(test_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    sasl_teardown();
    snprintf(path, sizeof(path), "%s/Sendmail.conf", test_dir);
    unlink(path);
    rmdir(test_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option_flags),
        cmocka_unit_test(test_offer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
