/* Routing as sendmail routes: local domains (and MAIL_HUB), the mailertable with its
 * .domain keys, SMART_HOST, MX; every value form and the next-hop key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <strings.h>

#include "delivery/route.h"

static const char *const local_domains[] = {"mx.example", "localhost"};
static const char *const local_users[] = {"root"};

/* A mailertable as key/value pairs; counts its lookups to check the order. */
struct table {
    const char *const *kv; /* key, value, key, value, ..., NULL */
    char seen[8][64];
    size_t n_seen;
};

static const char *table_lookup(void *arg, const char *key)
{
    struct table *t = arg;
    if (t->n_seen < 8)
        strncpy(t->seen[t->n_seen++], key, 63);
    for (size_t i = 0; t->kv[i]; i += 2)
        if (strcmp(t->kv[i], key) == 0)
            return t->kv[i + 1];
    return NULL;
}

static struct route_settings settings(struct table *t)
{
    return (struct route_settings){
        .local_domains = local_domains,
        .n_local_domains = 2,
        .local_users = local_users,
        .n_local_users = 1,
        .mailertable = t ? table_lookup : NULL,
        .mailertable_arg = t,
    };
}

static void assert_smtp(const struct route *r, const char *key, const char *source)
{
    char k[300];
    assert_int_equal(r->kind, ROUTE_SMTP);
    route_key(r, k, sizeof(k));
    assert_string_equal(k, key);
    assert_string_equal(r->source, source);
}

static void test_local_domains(void **state)
{
    (void)state;
    struct route_settings s = settings(NULL);
    struct route r;
    route_resolve(&s, "user@MX.Example", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_string_equal(r.mailer, "local");
    route_resolve(&s, "user@mx.example.", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    route_resolve(&s, "postmaster", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    /* a subdomain of a local domain is not local (class w is exact) */
    route_resolve(&s, "user@sub.mx.example", &r);
    assert_smtp(&r, "esmtp:sub.mx.example", "mx");
    assert_true(r.mx);
}

static void test_mx_default(void **state)
{
    (void)state;
    struct route_settings s = settings(NULL);
    struct route r;
    route_resolve(&s, "a@B.Example.ORG", &r);
    assert_smtp(&r, "esmtp:b.example.org", "mx");
    assert_string_equal(r.host, "b.example.org");
    assert_int_equal(r.port, 0);
    route_resolve(&s, "\"a@b\"@c.example", &r);
    assert_string_equal(r.host, "c.example");
    /* an address literal: that address, no MX */
    route_resolve(&s, "a@[192.0.2.7]", &r);
    assert_smtp(&r, "esmtp:[192.0.2.7]", "mx");
    assert_false(r.mx);
    route_resolve(&s, "a@[IPv6:2001:db8::1]", &r);
    assert_string_equal(r.host, "2001:db8::1");
    assert_false(r.mx);
}

static void test_mailertable_order(void **state)
{
    (void)state;
    static const char *const kv[] = {".example.com",
                                     "esmtp:[hub.example.com]",
                                     ".b.example.com",
                                     "smtp:b-relay.example.com:2525",
                                     "x.b.example.com",
                                     "relay:[10.0.0.1]:26",
                                     ".",
                                     "esmtp:fallback.example",
                                     NULL};
    struct table t = {.kv = kv};
    struct route_settings s = settings(&t);
    struct route r;

    route_resolve(&s, "u@x.b.example.com", &r);
    assert_smtp(&r, "relay:[10.0.0.1]:26", "mailertable");
    assert_int_equal(t.n_seen, 1);

    t.n_seen = 0;
    route_resolve(&s, "u@y.b.example.com", &r);
    assert_smtp(&r, "smtp:b-relay.example.com:2525", "mailertable");
    assert_true(r.mx);
    assert_int_equal(r.port, 2525);
    assert_int_equal(t.n_seen, 2);
    assert_string_equal(t.seen[0], "y.b.example.com");
    assert_string_equal(t.seen[1], ".b.example.com");

    t.n_seen = 0;
    route_resolve(&s, "u@deep.z.example.com", &r);
    assert_smtp(&r, "esmtp:[hub.example.com]", "mailertable");
    assert_int_equal(t.n_seen, 3);
    assert_string_equal(t.seen[1], ".z.example.com");
    assert_string_equal(t.seen[2], ".example.com");

    /* "example.com" itself is not matched by ".example.com": next is ".com", then "." */
    t.n_seen = 0;
    route_resolve(&s, "u@example.com", &r);
    assert_smtp(&r, "esmtp:fallback.example", "mailertable");
    assert_int_equal(t.n_seen, 3);
    assert_string_equal(t.seen[1], ".com");
    assert_string_equal(t.seen[2], ".");

    /* local domains never reach the mailertable */
    t.n_seen = 0;
    route_resolve(&s, "u@localhost", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_int_equal(t.n_seen, 0);
}

static void test_mailertable_before_smart_host(void **state)
{
    (void)state;
    static const char *const kv[] = {"special.example", "esmtp:", NULL};
    struct table t = {.kv = kv};
    struct route_settings s = settings(&t);
    s.smart_host = "[smart.example]";
    struct route r;
    /* "esmtp:" with no host: the recipient's own domain, by MX */
    route_resolve(&s, "u@special.example", &r);
    assert_smtp(&r, "esmtp:special.example", "mailertable");
    assert_true(r.mx);
    route_resolve(&s, "u@other.example", &r);
    assert_smtp(&r, "relay:[smart.example]", "smart_host");
    assert_false(r.mx);
}

static void test_smart_host_forms(void **state)
{
    (void)state;
    static const struct {
        const char *value, *key;
        bool mx;
        unsigned port;
    } cases[] = {
        {"smart.example", "relay:smart.example", true, 0},
        {"[smart.example]", "relay:[smart.example]", false, 0},
        {"smart.example:2525", "relay:smart.example:2525", true, 2525},
        {"[smart.example]:2525", "relay:[smart.example]:2525", false, 2525},
        {"[smart.example]:25", "relay:[smart.example]", false, 0},
        {"esmtp:[smart.example]", "esmtp:[smart.example]", false, 0},
        {"smtp:smart.example", "smtp:smart.example", true, 0},
        {"relay:[127.0.0.1]:2526", "relay:[127.0.0.1]:2526", false, 2526},
        {"127.0.0.1", "relay:[127.0.0.1]", false, 0},
        {"::1", "relay:[::1]", false, 0},
        {"[IPv6:::1]:26", "relay:[::1]:26", false, 26},
        {"mailhub:2525", "relay:mailhub:2525", true, 2525},
        {"Smart.Example.", "relay:smart.example", true, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct route_settings s = settings(NULL);
        s.smart_host = cases[i].value;
        struct route r;
        route_resolve(&s, "u@remote.example", &r);
        assert_smtp(&r, cases[i].key, "smart_host");
        assert_int_equal(r.mx, cases[i].mx);
        assert_int_equal(r.port, cases[i].port);
    }
}

static void test_mail_hub(void **state)
{
    (void)state;
    struct route_settings s = settings(NULL);
    s.mail_hub = "[hub.example]";
    s.smart_host = "smart.example";
    struct route r;
    route_resolve(&s, "user@mx.example", &r);
    assert_smtp(&r, "relay:[hub.example]", "mail_hub");
    route_resolve(&s, "user", &r);
    assert_smtp(&r, "relay:[hub.example]", "mail_hub");
    /* class L (LOCAL_USER) stays here */
    route_resolve(&s, "root@mx.example", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    route_resolve(&s, "ROOT", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    /* non-local mail still takes the smart host */
    route_resolve(&s, "user@remote.example", &r);
    assert_smtp(&r, "relay:smart.example", "smart_host");
}

static void test_mailertable_local_and_errors(void **state)
{
    (void)state;
    static const char *const kv[] = {"local.example",
                                     "local:",
                                     "user.example",
                                     "local:bob",
                                     "deny.example",
                                     "error:5.7.1:550 Go away",
                                     "old.example",
                                     "error:550 5.1.6 \"Moved to new.example\"",
                                     "plain.example",
                                     "error:550 No thanks",
                                     "nouser.example",
                                     "error:nouser",
                                     "nohost.example",
                                     "error:nohost No such host here",
                                     "temp.example",
                                     "error:tempfail",
                                     "t4.example",
                                     "error:4.4.1:451 Try later",
                                     "colon.example",
                                     "error:553:Not here",
                                     "uucp.example",
                                     "uucp:host",
                                     "bad.example",
                                     "esmtp:[unclosed",
                                     "badport.example",
                                     "esmtp:[h]:99999",
                                     "mismatch.example",
                                     "error:4.7.1:550 no",
                                     "noname.example",
                                     "error:frobnicate",
                                     NULL};
    struct table t = {.kv = kv};
    struct route_settings s = settings(&t);
    struct route r;

    route_resolve(&s, "u@local.example", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_string_equal(r.host, "");
    route_resolve(&s, "u@user.example", &r);
    assert_int_equal(r.kind, ROUTE_LOCAL);
    assert_string_equal(r.host, "bob");

    static const struct {
        const char *rcpt, *code, *status, *text;
    } errors[] = {
        {"u@deny.example", "550", "5.7.1", "Go away"},
        {"u@old.example", "550", "5.1.6", "Moved to new.example"},
        {"u@plain.example", "550", "5.0.0", "No thanks"},
        {"u@nouser.example", "550", "5.1.1", "User unknown"},
        {"u@nohost.example", "550", "5.1.2", "No such host here"},
        {"u@temp.example", "451", "4.0.0", "Deferred"},
        {"u@t4.example", "451", "4.4.1", "Try later"},
        {"u@colon.example", "553", "5.0.0", "Not here"},
    };
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        route_resolve(&s, errors[i].rcpt, &r);
        assert_int_equal(r.kind, ROUTE_ERROR);
        assert_string_equal(r.code, errors[i].code);
        assert_string_equal(r.status, errors[i].status);
        assert_string_equal(r.text, errors[i].text);
        assert_string_equal(r.source, "mailertable");
    }
    /* configuration mistakes defer, never bounce */
    static const char *const deferred[] = {"u@uucp.example", "u@bad.example", "u@badport.example",
                                           "u@mismatch.example", "u@noname.example"};
    for (size_t i = 0; i < sizeof(deferred) / sizeof(deferred[0]); i++) {
        route_resolve(&s, deferred[i], &r);
        assert_int_equal(r.kind, ROUTE_ERROR);
        assert_string_equal(r.code, "451");
        assert_string_equal(r.status, "4.3.5");
        assert_non_null(strstr(r.text, "uucp") ? r.text : strstr(r.text, "mailertable"));
    }
}

static void test_parse_for_config(void **state)
{
    (void)state;
    struct route r = {0};
    char err[200];
    assert_int_equal(route_parse("[relay.example]:2525", "relay", NULL, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, ROUTE_SMTP);
    assert_int_equal(route_parse("", "relay", NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no host"));
    assert_int_equal(route_parse("relay.example", NULL, NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mailer:host"));
    assert_int_equal(route_parse("esmtp:host with space", NULL, NULL, &r, err, sizeof(err)), -1);
    assert_int_equal(route_parse("esmtp:[x]y", NULL, NULL, &r, err, sizeof(err)), -1);
    assert_int_equal(route_parse("esmtp:x:0", NULL, NULL, &r, err, sizeof(err)), -1);
    assert_int_equal(route_parse("esmtp:x:", NULL, NULL, &r, err, sizeof(err)), -1);
    /* a host of 255 characters fits, 256 does not */
    char big[300] = "esmtp:";
    memset(big + 6, 'a', 255);
    big[261] = '\0';
    assert_int_equal(route_parse(big, NULL, NULL, &r, err, sizeof(err)), 0);
    big[261] = 'a';
    big[262] = '\0';
    assert_int_equal(route_parse(big, NULL, NULL, &r, err, sizeof(err)), -1);
}

/* The lmtp mailer: a unix socket (path kept as written, no DNS) or a host with port 24 by
 * default, never an MX lookup; its key names the socket or the host. */
static void test_lmtp(void **state)
{
    (void)state;
    static const char *const kv[] = {"unix.example",
                                     "lmtp:unix:/run/Dovecot/lmtp",
                                     "path.example",
                                     "lmtp:/var/spool/lmtp",
                                     "inet.example",
                                     "lmtp:inet:LMTP.example:2003",
                                     "host.example",
                                     "lmtp:lmtp.example",
                                     "brack.example",
                                     "lmtp:[127.0.0.1]:24",
                                     "p25.example",
                                     "lmtp:[::1]:25",
                                     "rel.example",
                                     "lmtp:unix:run/lmtp",
                                     "empty.example",
                                     "lmtp:",
                                     NULL};
    struct table t = {.kv = kv};
    struct route_settings s = settings(&t);
    struct route r;
    route_resolve(&s, "u@unix.example", &r);
    assert_smtp(&r, "lmtp:unix:/run/Dovecot/lmtp", "mailertable");
    assert_string_equal(r.mailer, "lmtp");
    assert_string_equal(r.host, "/run/Dovecot/lmtp");
    assert_true(r.unix_socket);
    assert_false(r.mx);
    route_resolve(&s, "u@path.example", &r);
    assert_smtp(&r, "lmtp:unix:/var/spool/lmtp", "mailertable");
    assert_true(r.unix_socket);
    route_resolve(&s, "u@inet.example", &r);
    assert_smtp(&r, "lmtp:[lmtp.example]:2003", "mailertable");
    assert_false(r.unix_socket || r.mx);
    route_resolve(&s, "u@host.example", &r);
    assert_smtp(&r, "lmtp:[lmtp.example]:24", "mailertable");
    assert_int_equal(r.port, ROUTE_LMTP_PORT);
    route_resolve(&s, "u@brack.example", &r);
    assert_smtp(&r, "lmtp:[127.0.0.1]:24", "mailertable");
    route_resolve(&s, "u@p25.example", &r); /* a written 25 stays 25 */
    assert_smtp(&r, "lmtp:[::1]", "mailertable");
    assert_int_equal(r.port, 0);
    for (size_t i = 0; i < 2; i++) { /* configuration mistakes defer */
        route_resolve(&s, i ? "u@empty.example" : "u@rel.example", &r);
        assert_int_equal(r.kind, ROUTE_ERROR);
        assert_string_equal(r.status, "4.3.5");
        assert_non_null(strstr(r.text, "lmtp"));
    }

    /* mailers.lmtp's forms: route_parse with "lmtp" as the default mailer */
    char err[200];
    static const char *const forms[][2] = {
        {"unix:/run/lmtp", "lmtp:unix:/run/lmtp"},
        {"/run/lmtp", "lmtp:unix:/run/lmtp"},
        {"inet:localhost:24", "lmtp:[localhost]:24"},
        {"[127.0.0.1]:2424", "lmtp:[127.0.0.1]:2424"},
        {"lmtp:unix:/x", "lmtp:unix:/x"},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        r.source = "lmtp";
        assert_int_equal(route_parse(forms[i][0], "lmtp", NULL, &r, err, sizeof(err)), 0);
        assert_smtp(&r, forms[i][1], "lmtp");
    }
    /* a path that cannot be a sockaddr_un's */
    char big[200] = "lmtp:/";
    memset(big + 6, 'a', 120);
    big[126] = '\0';
    assert_int_equal(route_parse(big, NULL, NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "socket path"));
}

static void test_long_domain(void **state)
{
    (void)state;
    struct route_settings s = settings(NULL);
    char rcpt[400] = "u@";
    memset(rcpt + 2, 'a', 300);
    rcpt[302] = '\0';
    struct route r;
    route_resolve(&s, rcpt, &r);
    assert_int_equal(r.kind, ROUTE_ERROR);
    assert_string_equal(r.status, "5.1.2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_domains),
        cmocka_unit_test(test_mx_default),
        cmocka_unit_test(test_mailertable_order),
        cmocka_unit_test(test_mailertable_before_smart_host),
        cmocka_unit_test(test_smart_host_forms),
        cmocka_unit_test(test_mail_hub),
        cmocka_unit_test(test_mailertable_local_and_errors),
        cmocka_unit_test(test_parse_for_config),
        cmocka_unit_test(test_long_domain),
        cmocka_unit_test(test_lmtp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
