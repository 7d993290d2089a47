/*
 * TLS contexts: every configuration mistake is a clear creation error (unknown group
 * with the list of available ones, unknown provider, missing or unreadable file, key not
 * matching its certificate, two certificates of one type, bad version or cipher list);
 * group aliases; the --tls-info report; demo certificates made once and reused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/test_tls_fixture.h"

/* Creates a server context from `s`; expects failure with `want` in the message. */
static void expect_error(const struct tls_settings *s, const char *want)
{
    char err[4096] = "";
    struct tls_ctx *c = tls_ctx_new_server(s, err, sizeof(err));
    if (c)
        fail_msg("created, expected an error with '%s'", want);
    print_message("%s\n", err);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
}

static void test_unknown_group(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    struct tls_settings s;
    struct tls_fx_certs fc;
    tls_fx_settings(&s, &fc, p256, 1);
    s.groups = "X25519:P-385";
    expect_error(&s, "tls.groups: unknown group 'P-385': available: ");
    expect_error(&s, "X25519, X448");
    expect_error(&s, "P-384");
    expect_error(&s, "ffdhe2048");
}

/* Aliases the providers know under another name, in any case. */
static void test_group_aliases(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    struct tls_settings s;
    struct tls_fx_certs fc;
    char err[1024];
    tls_fx_settings(&s, &fc, p256, 1);
    s.groups = "x25519:secp384r1:prime256v1:p-521:FFDHE2048";
    struct tls_ctx *c = tls_ctx_new_server(&s, err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    struct tls_group_info g[128];
    size_t n = tls_ctx_groups(c, g, 128);
    assert_true(n >= 10 && n <= 128);
    bool p384 = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].name, "P-384") == 0)
            p384 = g[i].secbits == 192;
        else
            assert_string_not_equal(g[i].name, "secp384r1"); /* one name per group */
    assert_true(p384);
    tls_ctx_unref(c);
}

static void test_bad_files(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    struct tls_settings s;
    struct tls_fx_certs fc;
    tls_fx_settings(&s, &fc, p256, 1);

    fc.pairs[0].cert = tls_fx_path("missing.pem");
    expect_error(&s, "missing.pem: cannot open: No such file or directory");

    fc.pairs[0].cert = fc.files[0][0];
    fc.pairs[0].key = tls_fx_path("p384.key");
    expect_error(&s, "key ");
    expect_error(&s, "p384.key does not match certificate ");
    expect_error(&s, "p256-chain.pem");

    fc.pairs[0].key = tls_fx_path("ca.pem"); /* a certificate where the key should be */
    expect_error(&s, "no usable private key in ");

    if (geteuid() != 0) { /* root reads anything */
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "cp %s %s && chmod 000 %s", fc.files[0][1],
                 tls_fx_path("unreadable.key"), tls_fx_path("unreadable.key"));
        assert_int_equal(system(cmd), 0);
        fc.pairs[0].key = tls_fx_path("unreadable.key");
        expect_error(&s, "unreadable.key: Permission denied");
    }
}

/* OpenSSL keeps one certificate per key type: a second ECDSA pair would replace the
 * first, whatever its curve. */
static void test_same_type_twice(void **state)
{
    (void)state;
    static const char *const two[] = {"p256", "p384"};
    struct tls_settings s;
    struct tls_fx_certs fc;
    tls_fx_settings(&s, &fc, two, 2);
    expect_error(&s, "p384-chain.pem would replace ");
    expect_error(&s, "(ECDSA-P256)");
}

static void test_bad_settings(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    static const char *const providers[] = {"no-such-provider"};
    struct tls_settings s;
    struct tls_fx_certs fc;
    tls_fx_settings(&s, &fc, p256, 1);
    s.providers = providers;
    s.n_providers = 1;
    expect_error(&s, "tls.providers: cannot load provider 'no-such-provider'");

    tls_fx_settings(&s, &fc, p256, 1);
    s.min_version = "TLSv1.1";
    expect_error(&s, "tls.min_version: unknown protocol version 'TLSv1.1'");
    s.min_version = "TLSv1.3";
    s.max_version = "TLSv1.2";
    expect_error(&s, "is above tls.max_version");

    tls_fx_settings(&s, &fc, p256, 1);
    s.ciphersuites = "TLS_NO_SUCH_SUITE";
    expect_error(&s, "tls.ciphersuites: 'TLS_NO_SUCH_SUITE'");
    s.ciphersuites = NULL;
    s.cipher_list = "NO-SUCH-CIPHER";
    expect_error(&s, "tls.cipher_list: 'NO-SUCH-CIPHER'");
    s.cipher_list = NULL;
    s.dh_params = tls_fx_path("ca.pem");
    expect_error(&s, "tls.dh_params: no DH parameters in ");
    s.dh_params = NULL;
    /* a missing CA file or directory names itself and the system's reason (it said
     * "unknown OpenSSL error"), and a directory that is not there is no longer accepted */
    s.ca_file = "/nonexistent/ca.pem";
    expect_error(&s, "tls.ca_file: /nonexistent/ca.pem: cannot open: No such file or directory");
    s.ca_file = tls_fx_path("p256.key");
    expect_error(&s, "tls.ca_file: no PEM certificate in ");
    s.ca_file = NULL;
    s.ca_path = "/nonexistent/certs";
    expect_error(&s, "tls.ca_path: /nonexistent/certs: No such file or directory");
    s.ca_path = tls_fx_path("ca.pem");
    expect_error(&s, ": Not a directory");
    s.ca_path = NULL;

    tls_fx_settings(&s, &fc, p256, 0);
    expect_error(&s, "a server needs at least one certificate");
}

/* Both kinds of certificate, every named curve's type, and the report's sections. */
static void test_report(void **state)
{
    (void)state;
    static const char *const dual[] = {"p521", "rsa"};
    struct tls_settings s;
    struct tls_fx_certs fc;
    char err[1024];
    tls_fx_settings(&s, &fc, dual, 2);
    s.request_client_cert = true;
    s.ca_file = tls_fx_path("ca.pem");
    struct tls_ctx *c = tls_ctx_new_server(&s, err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    struct tls_cert_info ci[4];
    assert_int_equal(tls_ctx_certs(c, ci, 4), 2);
    assert_string_equal(ci[0].type, "ECDSA-P521");
    assert_string_equal(ci[0].curve, "P-521");
    assert_string_equal(ci[1].type, "RSA-2048");
    assert_non_null(strstr(ci[1].issuer, "ringmail test CA"));
    char providers[64];
    tls_ctx_providers(c, providers, sizeof(providers));
    assert_string_equal(providers, "default");

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tls_ctx_report(c, f);
    fclose(f);
    print_message("%s", text);
    assert_non_null(strstr(text, "providers: default\n"));
    assert_non_null(strstr(text, "protocols: TLSv1.2 to TLSv1.3\n"));
    assert_non_null(strstr(text, "X25519 "));
    assert_non_null(strstr(text, "secbits=128"));
    assert_non_null(strstr(text, "ECDSA-P521 curve=P-521"));
    assert_non_null(strstr(text, "expires in 36"));
    free(text);
    tls_ctx_unref(c);
}

/* Demo certificates: made once (keys 0600), reused after, and loadable as a server's. */
static void test_demo_certs(void **state)
{
    (void)state;
    char dir[512], paths[4][512], err[512];
    snprintf(dir, sizeof(dir), "%s/demo", tls_fx_dir);
    assert_int_equal(tls_demo_certs_ensure(dir, "mx.example.org", paths, err, sizeof(err)), 0);
    struct stat st1, st2, dst;
    assert_int_equal(stat(dir, &dst), 0);
    assert_int_equal(dst.st_mode & 0777, 0700);
    assert_int_equal(stat(paths[1], &st1), 0);
    assert_int_equal(st1.st_mode & 0777, 0600);
    assert_int_equal(stat(paths[3], &st2), 0);
    assert_int_equal(st2.st_mode & 0777, 0600);

    char again[4][512];
    assert_int_equal(tls_demo_certs_ensure(dir, "mx.example.org", again, err, sizeof(err)), 0);
    struct stat st3;
    assert_int_equal(stat(again[1], &st3), 0);
    assert_int_equal(st3.st_ino, st1.st_ino);
    assert_int_equal(st3.st_mtime, st1.st_mtime);

    struct tls_cert_pair pairs[2] = {{paths[0], paths[1]}, {paths[2], paths[3]}};
    struct tls_settings s = {.certs = pairs, .n_certs = 2};
    struct tls_ctx *c = tls_ctx_new_server(&s, err, sizeof(err));
    if (!c)
        fail_msg("%s", err);
    struct tls_cert_info ci[2];
    assert_int_equal(tls_ctx_certs(c, ci, 2), 2);
    assert_string_equal(ci[0].type, "ECDSA-P256");
    assert_string_equal(ci[1].type, "RSA-2048");
    assert_non_null(strstr(ci[0].subject, "CN=mx.example.org"));
    tls_ctx_unref(c);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl x509 -in %s -noout -ext subjectAltName | grep -q "
             "'DNS:mx.example.org, DNS:localhost'",
             paths[2]);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    if (tls_fx_make_certs() < 0) {
        fprintf(stderr, "cannot make test certificates with the openssl command\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_group), cmocka_unit_test(test_group_aliases),
        cmocka_unit_test(test_bad_files),     cmocka_unit_test(test_same_type_twice),
        cmocka_unit_test(test_bad_settings),  cmocka_unit_test(test_report),
        cmocka_unit_test(test_demo_certs),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tls_fx_remove_certs();
    return rc;
}
