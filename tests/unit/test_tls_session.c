/*
 * TLS sessions back to back in memory: the seed matrix (ECDSA on every NIST curve, alone
 * and with RSA, against clients asking for each group over TLS 1.3 and 1.2), the sendmail
 * bug itself, certificate choice by signature algorithms, client certificate results,
 * failure reports, and ticket resumption.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>

#include "tests/unit/test_tls_fixture.h"

struct tls_fx_conn {
    struct tls_ctx *sctx, *cctx;
    struct tls_fx_end srv, cli;
    struct tls_session_info si, ci;
};

static struct tls_ctx *server_ctx(const char *const *certs, size_t n, const char *groups)
{
    struct tls_settings s;
    struct tls_fx_certs fc;
    char err[1024];
    tls_fx_settings(&s, &fc, certs, n);
    s.groups = groups;
    struct tls_ctx *c = tls_ctx_new_server(&s, err, sizeof(err));
    if (!c)
        fail_msg("server context: %s", err);
    return c;
}

static struct tls_ctx *client_ctx(const char *groups, const char *version, const char *sigalgs)
{
    struct tls_settings s = {
        .groups = groups,
        .min_version = version,
        .max_version = version,
        .sigalgs = sigalgs,
        .ca_file = tls_fx_path("ca.pem"),
    };
    char err[1024];
    struct tls_ctx *c = tls_ctx_new_client(&s, err, sizeof(err));
    if (!c)
        fail_msg("client context: %s", err);
    return c;
}

/* Connects; the caller frees with conn_free. */
static enum tls_state conn_run(struct tls_fx_conn *k, struct tls_ctx *sctx, struct tls_ctx *cctx)
{
    k->sctx = sctx;
    k->cctx = cctx;
    tls_fx_end_init(&k->srv, sctx, NULL);
    tls_fx_end_init(&k->cli, cctx, "localhost");
    assert_non_null(k->srv.s);
    assert_non_null(k->cli.s);
    tls_fx_connect(&k->srv, &k->cli);
    tls_session_info(k->srv.s, &k->si);
    tls_session_info(k->cli.s, &k->ci);
    return tls_session_state(k->srv.s);
}

static void conn_free(struct tls_fx_conn *k)
{
    tls_fx_end_free(&k->srv);
    tls_fx_end_free(&k->cli);
    tls_ctx_unref(k->sctx);
    tls_ctx_unref(k->cctx);
}

static enum tls_state connect_with(struct tls_fx_conn *k, const char *const *certs, size_t n,
                                   const char *sgroups, const char *cgroups, const char *version,
                                   const char *sigalgs)
{
    return conn_run(k, server_ctx(certs, n, sgroups), client_ctx(cgroups, version, sigalgs));
}

/* TLS 1.2 limits that are the protocol's, not ringmail's: a TLS 1.2 client's
 * supported_groups also names the curves it accepts for the ECDSA certificate (RFC 8422
 * section 5.1, enforced by OpenSSL), so an ECDSA-only server can serve it only when its
 * curve is among them; and there is no DHE_ECDSA key exchange, while OpenSSL 3.0 does not
 * negotiate FFDHE groups in TLS 1.2 at all (the client sends no supported_groups for
 * them; the server picks DH parameters from its certificate's strength: modp_2048 for
 * RSA-2048). With an RSA certificate beside the ECDSA one, every combination works. */
static void test_matrix(void **state)
{
    (void)state;
    static const char *const ecdsa[] = {"p256", "p384", "p521"};
    static const char *const ecdsa_type[] = {"ECDSA-P256", "ECDSA-P384", "ECDSA-P521"};
    static const char *const curve[] = {"P-256", "P-384", "P-521"};
    static const char *const groups[] = {"X25519", "P-256", "P-384", "P-521", "ffdhe2048"};
    static const char *const versions[] = {"TLSv1.3", "TLSv1.2"};
    int ok = 0, refused = 0;
    for (size_t e = 0; e < 3; e++)
        for (int dual = 0; dual < 2; dual++)
            for (size_t g = 0; g < 5; g++)
                for (size_t v = 0; v < 2; v++) {
                    const char *certs[] = {ecdsa[e], "rsa"};
                    bool tls12 = v == 1, ffdhe = g == 4;
                    bool same_curve = strcmp(groups[g], curve[e]) == 0;
                    struct tls_fx_conn k;
                    enum tls_state st = connect_with(&k, certs, 1 + (size_t)dual, NULL, groups[g],
                                                     versions[v], NULL);
                    char d[512];
                    print_message("%s%s %s %s: %s\n", ecdsa[e], dual ? "+rsa" : "", groups[g],
                                  versions[v], tls_session_describe(k.srv.s, d, sizeof(d)));
                    if (tls12 && !dual && !same_curve) {
                        assert_int_equal(st, TLS_FAILED);
                        assert_string_equal(tls_session_error(k.srv.s), "no shared cipher");
                        refused++;
                    } else {
                        assert_int_equal(st, TLS_OPEN);
                        assert_int_equal(tls_session_state(k.cli.s), TLS_OPEN);
                        assert_string_equal(k.si.version, versions[v]);
                        assert_string_equal(k.si.group, tls12 && ffdhe ? "modp_2048" : groups[g]);
                        assert_string_equal(k.ci.group, k.si.group);
                        assert_string_equal(k.si.cert,
                                            !tls12 || same_curve ? ecdsa_type[e] : "RSA-2048");
                        assert_string_equal(k.srv.plain, "EHLO client\r\n");
                        assert_string_equal(k.cli.plain, "250 ok\r\n");
                        ok++;
                    }
                    conn_free(&k);
                }
    print_message("matrix: %d handshakes succeeded, %d refused by TLS 1.2's rules\n", ok, refused);
}

/* The 2017 sendmail bug: a secp384r1-only server and a client with default options. Over
 * TLS 1.2 too, where sendmail's forced prime256v1 made OpenSSL refuse the certificate. */
static void test_seed_bug(void **state)
{
    (void)state;
    static const char *const p384[] = {"p384"};
    static const char *const versions[] = {NULL, "TLSv1.2"};
    for (int v = 0; v < 2; v++) {
        struct tls_fx_conn k;
        assert_int_equal(connect_with(&k, p384, 1, NULL, NULL, versions[v], NULL), TLS_OPEN);
        assert_string_equal(k.si.cert, "ECDSA-P384");
        assert_string_equal(k.si.version, v ? "TLSv1.2" : "TLSv1.3");
        conn_free(&k);
    }
}

/* OpenSSL picks the certificate the client's signature algorithms allow. */
static void test_dual_cert_by_sigalgs(void **state)
{
    (void)state;
    static const char *const dual[] = {"p384", "rsa"};
    static const char *const versions[] = {"TLSv1.3", "TLSv1.2"};
    for (int v = 0; v < 2; v++) {
        struct tls_fx_conn k;
        assert_int_equal(
            connect_with(&k, dual, 2, NULL, NULL, versions[v], "RSA+SHA256:rsa_pss_rsae_sha256"),
            TLS_OPEN);
        assert_string_equal(k.si.cert, "RSA-2048");
        conn_free(&k);
        assert_int_equal(
            connect_with(&k, dual, 2, NULL, NULL, versions[v], "ECDSA+SHA384:ECDSA+SHA256"),
            TLS_OPEN);
        assert_string_equal(k.si.cert, "ECDSA-P384");
        conn_free(&k);
    }
}

/* What sendmail logs as verify=: asked for and signed by the CA, foreign, absent, and
 * not asked for. The handshake goes on in every case. */
static void test_client_certificates(void **state)
{
    (void)state;
    static const struct {
        const char *cert; /* NULL: no client certificate */
        bool request;
        const char *verify;
    } cases[] = {
        {"client", true, "OK"},
        {"foreign", true, "FAIL"},
        {NULL, true, "NO"},
        {"client", false, "NONE"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tls_settings s;
        struct tls_fx_certs fc;
        char err[1024];
        static const char *const p256[] = {"p256"};
        tls_fx_settings(&s, &fc, p256, 1);
        s.request_client_cert = cases[i].request;
        s.ca_file = tls_fx_path("ca.pem");
        struct tls_ctx *sctx = tls_ctx_new_server(&s, err, sizeof(err));
        assert_non_null(sctx);
        struct tls_cert_pair pair = {tls_fx_path(cases[i].cert ? "client-chain.pem" : ""),
                                     tls_fx_path("client.key")};
        if (cases[i].cert && strcmp(cases[i].cert, "foreign") == 0)
            pair = (struct tls_cert_pair){tls_fx_path("foreign.pem"), tls_fx_path("foreign.key")};
        struct tls_settings cs = {.certs = &pair, .n_certs = cases[i].cert ? 1 : 0};
        struct tls_ctx *cctx = tls_ctx_new_client(&cs, err, sizeof(err));
        if (!cctx)
            fail_msg("client: %s", err);
        struct tls_fx_conn k;
        assert_int_equal(conn_run(&k, sctx, cctx), TLS_OPEN);
        assert_string_equal(k.si.verify, cases[i].verify);
        if (strcmp(cases[i].verify, "FAIL") == 0)
            assert_string_not_equal(k.si.verify_reason, "");
        if (strcmp(cases[i].verify, "OK") == 0)
            assert_non_null(strstr(k.si.peer_subject, "client.example"));
        /* the client trusts no CA here: the server's certificate fails, opportunistically */
        assert_string_equal(k.ci.verify, "FAIL");
        conn_free(&k);
    }
}

/* A client that offers only groups the server does not allow fails, and the server's
 * report says what the client offered. */
static void test_failure_report(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    struct tls_fx_conn k;
    assert_int_equal(connect_with(&k, p256, 1, "P-521", "X25519", NULL, NULL), TLS_FAILED);
    assert_int_equal(tls_session_state(k.cli.s), TLS_FAILED);
    assert_string_not_equal(tls_session_error(k.srv.s), "");
    assert_string_equal(k.si.offered_groups, "X25519");
    assert_non_null(strstr(k.si.offered_sigalgs, "ecdsa_secp256r1_sha256"));
    char d[1024];
    tls_session_describe(k.srv.s, d, sizeof(d));
    print_message("%s\n", d);
    assert_true(strncmp(d, "reason=", 7) == 0);
    assert_non_null(strstr(d, ", offered_groups=X25519, offered_sigalgs=ecdsa_secp256r1_sha256"));
    assert_int_equal(tls_session_write(k.srv.s, "x", 1), -1);
    conn_free(&k);
}

static void test_describe(void **state)
{
    (void)state;
    static const char *const p384[] = {"p384"};
    struct tls_fx_conn k;
    assert_int_equal(connect_with(&k, p384, 1, NULL, "X25519", NULL, NULL), TLS_OPEN);
    char d[512];
    assert_string_equal(tls_session_describe(k.srv.s, d, sizeof(d)),
                        "version=TLSv1.3, verify=NONE, cipher=TLS_AES_256_GCM_SHA384, "
                        "bits=256/256, group=X25519, cert=ECDSA-P384");
    /* the client side names the server's certificate instead of its own */
    assert_string_equal(tls_session_describe(k.cli.s, d, sizeof(d)),
                        "version=TLSv1.3, verify=OK, cipher=TLS_AES_256_GCM_SHA384, "
                        "bits=256/256, group=X25519, peer_cert=ECDSA-P384");
    /* close_notify reaches the peer */
    tls_session_shutdown(k.cli.s);
    tls_fx_pump(&k.srv, &k.cli);
    assert_int_equal(tls_session_state(k.srv.s), TLS_CLOSED);
    conn_free(&k);
}

/* A second connection from the same client resumes with the ticket of the first, on the
 * same server context and on another one (another worker's, or one a reload built): the
 * ticket keys are the process's. */
static void test_ticket_resumption(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    static const char *const versions[] = {"TLSv1.2", "TLSv1.3"};
    for (int v = 0; v < 2; v++) {
        for (int other = 0; other < 2; other++) {
            struct tls_ctx *sctx = server_ctx(p256, 1, NULL);
            struct tls_ctx *sctx2 = other ? server_ctx(p256, 1, NULL) : tls_ctx_ref(sctx);
            struct tls_ctx *cctx = client_ctx(NULL, versions[v], NULL);
            struct tls_fx_conn k;
            assert_int_equal(conn_run(&k, tls_ctx_ref(sctx), tls_ctx_ref(cctx)), TLS_OPEN);
            assert_false(k.si.resumed);
            struct tls_resumption *r = tls_session_resumption(k.cli.s);
            assert_non_null(r);
            /* a session freed without close_notify is marked not resumable by OpenSSL */
            tls_session_shutdown(k.cli.s);
            conn_free(&k);

            k.sctx = sctx2;
            k.cctx = cctx;
            tls_fx_end_init(&k.srv, sctx2, NULL);
            tls_fx_end_init(&k.cli, cctx, "localhost");
            assert_true(tls_session_resume(k.cli.s, r));
            tls_resumption_free(r);
            tls_fx_connect(&k.srv, &k.cli);
            assert_int_equal(tls_session_state(k.srv.s), TLS_OPEN);
            assert_true(tls_session_resumed(k.srv.s));
            assert_true(tls_session_resumed(k.cli.s));
            conn_free(&k);
            tls_ctx_unref(sctx);
        }
    }
}

/* tls.session_tickets: false sends no ticket at all, under TLS 1.3 too (OpenSSL's
 * SSL_OP_NO_TICKET alone sends stateful ones there, which this server cannot resume:
 * bytes and work for nothing), so the client has nothing to resume with. */
static void test_no_tickets(void **state)
{
    (void)state;
    static const char *const p256[] = {"p256"};
    static const char *const versions[] = {"TLSv1.2", "TLSv1.3"};
    for (int v = 0; v < 2; v++) {
        struct tls_settings s;
        struct tls_fx_certs fc;
        char err[1024];
        tls_fx_settings(&s, &fc, p256, 1);
        s.session_tickets = false;
        struct tls_ctx *sctx = tls_ctx_new_server(&s, err, sizeof(err));
        if (!sctx)
            fail_msg("server context: %s", err);
        struct tls_fx_conn k;
        assert_int_equal(conn_run(&k, sctx, client_ctx(NULL, versions[v], NULL)), TLS_OPEN);
        assert_null(tls_session_resumption(k.cli.s));
        conn_free(&k);
    }
}

int main(void)
{
    if (tls_fx_make_certs() < 0) {
        fprintf(stderr, "cannot make test certificates with the openssl command\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_seed_bug),
        cmocka_unit_test(test_dual_cert_by_sigalgs),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_failure_report),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_ticket_resumption),
        cmocka_unit_test(test_no_tickets),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tls_fx_remove_certs();
    return rc;
}
