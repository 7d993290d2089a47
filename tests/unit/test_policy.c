/* policy/: the stages as pure functions (connect, MAIL, RCPT, end of message) over a parsed
 * access map, and the access map's index: the last entry for a key wins, tagged before bare,
 * and a map of 100,000 entries answers as a small one does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat/map_access.h"
#include "policy/auth_param.h"
#include "policy/policy.h"
#include "smtp/smtp_addr.h"
#include "util/buf.h"

static const char policy_map[] = "Connect:192.0.2.66 REJECT\n"
                                 "Connect:192.0.2.67 RELAY\n"
                                 "Connect:192.0.2.68 DISCARD\n"
                                 "Connect:mail.evil.test REJECT\n"
                                 "From:spammer.test REJECT\n"
                                 "From:ok.spammer.test OK\n"
                                 "From:hold@client.test QUARANTINE:look at it\n"
                                 "From:drop@client.test DISCARD\n"
                                 "bad.test ERROR:\"553 5.7.1 go away\"\n"
                                 "To:victim@mx.test REJECT\n"
                                 "To:ghost@ REJECT\n"
                                 "To:partner.test RELAY\n"
                                 "Spam:friend@mx.test FRIEND\n";

struct fixture {
    struct access_map map;
    struct smtp_relay_policy relay;
    struct policy_settings set;
    struct policy_client client;
    struct sockaddr_in sa;
    struct policy_session ps;
    struct policy_verdict v;
};

static const char *const local_domains[] = {"mx.test"};
static const char *const trust[] = {"PLAIN"};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_int_equal(
        access_parse("access", policy_map, strlen(policy_map), &f->map, err, sizeof(err)), 0);
    f->relay.local_domains = local_domains;
    f->relay.n_local_domains = 1;
    f->set.access = &f->map;
    f->set.relay = &f->relay;
    f->set.trust_mechs = trust;
    f->set.n_trust_mechs = 1;
    f->sa.sin_family = AF_INET;
    f->sa.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
    f->client.addr = "192.0.2.1";
    f->client.sa = (const struct sockaddr *)&f->sa;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    access_free(&f->map);
    free(f);
    return 0;
}

static void path(struct smtp_path *p, const char *mailbox)
{
    memset(p, 0, sizeof(*p));
    const char *at = strrchr(mailbox, '@');
    snprintf(p->mailbox, sizeof(p->mailbox), "%s", mailbox);
    snprintf(p->local, sizeof(p->local), "%.*s", (int)(at - mailbox), mailbox);
    snprintf(p->domain, sizeof(p->domain), "%s", at + 1);
}

static enum policy_action rcpt(struct fixture *f, const char *addr)
{
    struct smtp_path p;
    path(&p, addr);
    policy_rcpt(&f->set, &f->client, &f->ps, &p, &f->v);
    return f->v.action;
}

static void test_connect(void **state)
{
    struct fixture *f = *state;
    f->client.addr = "192.0.2.66";
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_REJECT);
    assert_string_equal(f->v.ruleset, "check_relay");
    assert_string_equal(f->v.text, "Access denied");
    f->client.addr = "192.0.2.67";
    f->set.ratecontrol = (struct clientlimit_mode){.terminate = true};
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    assert_true(f->v.relay);
    assert_int_equal(rcpt(f, "u@remote.example"), POLICY_ACCEPT);
    /* a verified host name is looked up first, with its parents */
    f->client.addr = "192.0.2.1";
    f->client.host = "a.mail.evil.test";
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_REJECT);
    /* delay_checks: the refusal waits for RCPT */
    f->set.delay_checks = true;
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    policy_mail(&f->set, &f->client, &f->ps, "a@client.test", &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_REJECT);
    assert_string_equal(f->v.ruleset, "check_rcpt");
}

static void test_mail(void **state)
{
    struct fixture *f = *state;
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_mail(&f->set, &f->client, &f->ps, "x@mx.spammer.test", &f->v);
    assert_int_equal(f->v.action, POLICY_REJECT);
    assert_int_equal(f->v.code, 550);
    assert_string_equal(f->v.enh, "5.7.1");
    assert_string_equal(f->v.text, "<x@mx.spammer.test>... Access denied");
    policy_mail(&f->set, &f->client, &f->ps, "x@ok.spammer.test", &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    policy_mail(&f->set, &f->client, &f->ps, "x@bad.test", &f->v); /* a bare key */
    assert_int_equal(f->v.code, 553);
    assert_string_equal(f->v.text, "<x@bad.test>... go away");
    policy_mail(&f->set, &f->client, &f->ps, "", &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);

    policy_mail(&f->set, &f->client, &f->ps, "hold@client.test", &f->v);
    assert_int_equal(f->v.action, POLICY_QUARANTINE);
    assert_string_equal(f->v.text, "look at it");
    policy_data(&f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_QUARANTINE);
    assert_string_equal(f->v.text, "look at it");
    policy_mail(&f->set, &f->client, &f->ps, "drop@client.test", &f->v);
    assert_int_equal(f->v.action, POLICY_DISCARD);
    policy_data(&f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_DISCARD);
    /* a new transaction starts clean */
    policy_mail(&f->set, &f->client, &f->ps, "a@client.test", &f->v);
    policy_data(&f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);

    /* a connection's DISCARD holds for each of its messages */
    f->client.addr = "192.0.2.68";
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_DISCARD);
    policy_mail(&f->set, &f->client, &f->ps, "a@client.test", &f->v);
    policy_data(&f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_DISCARD);
}

static void test_rcpt(void **state)
{
    struct fixture *f = *state;
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_mail(&f->set, &f->client, &f->ps, "a@client.test", &f->v);
    assert_int_equal(rcpt(f, "u@remote.example"), POLICY_REJECT);
    assert_string_equal(f->v.text, "Relaying denied");
    f->client.auth_offered = true;
    assert_int_equal(rcpt(f, "u@remote.example"), POLICY_REJECT);
    assert_string_equal(f->v.text, "Relaying denied. Proper authentication required.");
    f->client.auth_mech = "LOGIN"; /* not trusted */
    assert_int_equal(rcpt(f, "u@remote.example"), POLICY_REJECT);
    f->client.auth_mech = "plain";
    assert_int_equal(rcpt(f, "u@remote.example"), POLICY_ACCEPT);
    f->client.auth_mech = NULL;
    assert_int_equal(rcpt(f, "u@partner.test"), POLICY_ACCEPT);
    assert_int_equal(rcpt(f, "u@a.partner.test"), POLICY_ACCEPT);
    /* To: refusals only with blocklist_recipients, user@ keys for local recipients only */
    assert_int_equal(rcpt(f, "victim@mx.test"), POLICY_ACCEPT);
    f->set.blocklist_recipients = true;
    assert_int_equal(rcpt(f, "victim@mx.test"), POLICY_REJECT);
    assert_string_equal(f->v.enh, "5.2.1");
    assert_string_equal(f->v.text, "Mailbox disabled for this recipient");
    assert_int_equal(rcpt(f, "ghost@mx.test"), POLICY_REJECT);
    assert_int_equal(rcpt(f, "ghost@partner.test"), POLICY_ACCEPT);
}

static void test_delay_checks_spam(void **state)
{
    struct fixture *f = *state;
    f->set.delay_checks = true;
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_mail(&f->set, &f->client, &f->ps, "x@spammer.test", &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT); /* waits for RCPT */
    assert_int_equal(rcpt(f, "friend@mx.test"), POLICY_REJECT);
    f->set.spam = POLICY_SPAM_FRIEND;
    assert_int_equal(rcpt(f, "friend@mx.test"), POLICY_ACCEPT);
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_REJECT);
    f->set.spam = POLICY_SPAM_HATER; /* friend@ is no hater: spared */
    assert_int_equal(rcpt(f, "friend@mx.test"), POLICY_ACCEPT);
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_ACCEPT);
    /* an authenticated client ends the checks */
    f->set.spam = POLICY_SPAM_ALL;
    f->client.auth_mech = "PLAIN";
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_ACCEPT);
}

/* delay_checks: the sender's domain that did not resolve is refused at RCPT (the glue keeps
 * the refusal), friends spared; the next MAIL forgets it. */
static void test_delay_checks_sender_domain(void **state)
{
    struct fixture *f = *state;
    f->set.delay_checks = true;
    f->set.spam = POLICY_SPAM_FRIEND;
    struct sender_domain_reply refused;
    assert_int_equal(sender_domain_verdict(DNS_NOTFOUND, "a@nowhere.test", true, &refused), -1);
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_mail(&f->set, &f->client, &f->ps, "a@nowhere.test", &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    f->ps.sender_refused = &refused;
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_REJECT);
    assert_int_equal(f->v.code, 553);
    assert_string_equal(f->v.enh, "5.1.8");
    assert_string_equal(f->v.ruleset, "check_rcpt");
    assert_string_equal(f->v.text, "Domain of sender address a@nowhere.test does not exist");
    assert_int_equal(rcpt(f, "friend@mx.test"), POLICY_ACCEPT);
    policy_mail(&f->set, &f->client, &f->ps, "b@ok.test", &f->v);
    assert_null(f->ps.sender_refused);
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_ACCEPT);
}

/* FEATURE(ratecontrol)/conncontrol's arguments: where a client over its limit is refused. */
static void test_client_limited(void **state)
{
    struct fixture *f = *state;
    /* `terminate` (and the feature absent): 421 at connect */
    f->set.ratecontrol = (struct clientlimit_mode){.nodelay = true, .terminate = true};
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_client_limited(&f->set, &f->ps, true, &f->v);
    assert_int_equal(f->v.action, POLICY_REJECT);
    assert_int_equal(f->v.code, 421);
    assert_string_equal(f->v.enh, "4.3.2");
    assert_string_equal(f->v.text, "Connection rate limit exceeded.");
    /* without it: the check_relay line at connect, then 452 at every MAIL */
    f->set.conncontrol = (struct clientlimit_mode){0};
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_client_limited(&f->set, &f->ps, false, &f->v);
    assert_int_equal(f->v.code, 452);
    assert_string_equal(f->v.ruleset, "check_relay");
    policy_client_limited(&f->set, &f->ps, true, &f->v); /* the first limit found stays */
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    for (int i = 0; i < 2; i++) {
        policy_mail(&f->set, &f->client, &f->ps, "", &f->v);
        assert_int_equal(f->v.action, POLICY_REJECT);
        assert_int_equal(f->v.code, 452);
        assert_null(f->v.ruleset); /* logged once, at connect */
        assert_string_equal(f->v.text, "Too many open connections.");
    }
    /* delay_checks without nodelay: MAIL passes, each RCPT gets it (check_rcpt) */
    f->set.delay_checks = true;
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_client_limited(&f->set, &f->ps, false, &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    policy_mail(&f->set, &f->client, &f->ps, "a@client.test", &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_REJECT);
    assert_int_equal(f->v.code, 452);
    assert_string_equal(f->v.ruleset, "check_rcpt");
    /* ... unless a From: OK entry ends the checks first */
    policy_mail(&f->set, &f->client, &f->ps, "a@ok.spammer.test", &f->v);
    assert_int_equal(rcpt(f, "u@mx.test"), POLICY_ACCEPT);
    /* without nodelay a Connect: RELAY (or OK) entry exempts the client */
    f->client.addr = "192.0.2.67";
    f->set.ratecontrol = (struct clientlimit_mode){.terminate = true};
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    policy_client_limited(&f->set, &f->ps, true, &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    assert_null(f->ps.limited);
    f->set.ratecontrol.nodelay = true; /* ... not with it */
    policy_client_limited(&f->set, &f->ps, true, &f->v);
    assert_int_equal(f->v.code, 421);
}

/* A local caller (sendmail's MSP) relays and has no Connect: entry, but From: and To:
 * entries hold for it as for the MSP's connection to sendmail's MTA. */
static void test_local_caller_relays(void **state)
{
    struct fixture *f = *state;
    f->client.local = true;
    f->client.addr = "192.0.2.66";
    policy_connect(&f->set, &f->client, &f->ps, &f->v);
    assert_int_equal(f->v.action, POLICY_ACCEPT);
    policy_mail(&f->set, &f->client, &f->ps, "a@client.test", &f->v);
    assert_int_equal(rcpt(f, "u@remote.example"), POLICY_ACCEPT);
    f->set.blocklist_recipients = true;
    assert_int_equal(rcpt(f, "victim@mx.test"), POLICY_REJECT);
    policy_mail(&f->set, &f->client, &f->ps, "x@spammer.test", &f->v);
    assert_int_equal(f->v.action, POLICY_REJECT);
}

/* The index keeps the scan's answers: the last entry for a key wins, tagged before bare. */
static void test_index_rules(void **state)
{
    (void)state;
    static const char text[] = "example.com REJECT\n"
                               "From:example.com OK\n"
                               "To:example.com RELAY\n"
                               "To:EXAMPLE.com DISCARD\n";
    struct access_map m = {0};
    char err[128];
    assert_int_equal(access_parse("a", text, strlen(text), &m, err, sizeof(err)), 0);
    assert_int_equal(access_lookup_key(&m, "from", "Example.COM")->action, ACCESS_OK);
    assert_int_equal(access_lookup_key(&m, "to", "example.com")->action, ACCESS_DISCARD);
    assert_int_equal(access_lookup_key(&m, "connect", "example.com")->action, ACCESS_REJECT);
    assert_null(access_lookup_key(&m, "spam", "example.com"));
    assert_null(access_lookup_key(&m, "from", "example.org"));
    access_free(&m);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 100,000 entries: every one found, the last and the first alike, and a probe costs about
 * what it costs in a map of 100 (a linear scan is ~1000x slower; the bound is loose for
 * loaded and sanitized builds). */
static void test_index_100k(void **state)
{
    (void)state;
    struct buf text;
    buf_init(&text, 0);
    for (unsigned i = 0; i < 100000; i++)
        buf_printf(&text, "From:spammer%u.example REJECT\n", i);
    buf_printf(&text, "From:spammer0.example OK\n");
    struct access_map big = {0}, small = {0};
    char err[128];
    assert_int_equal(access_parse("a", text.data, text.len, &big, err, sizeof(err)), 0);
    assert_int_equal(access_parse("a", text.data, 100 * strlen("From:spammer0.example REJECT\n"),
                                  &small, err, sizeof(err)),
                     0);
    assert_int_equal(access_lookup_key(&big, "from", "spammer0.example")->action, ACCESS_OK);
    assert_int_equal(access_lookup_key(&big, "from", "spammer99999.example")->line, 100000);
    double t[2];
    const struct access_map *maps[2] = {&small, &big};
    for (int k = 0; k < 2; k++) {
        double start = seconds();
        for (unsigned i = 0; i < 20000; i++)
            assert_null(access_lookup_host(maps[k], "from", "mx.not-listed.example"));
        t[k] = seconds() - start;
    }
    assert_true(t[1] < 20 * t[0] + 0.05);
    access_free(&big);
    access_free(&small);
    buf_free(&text);
}

/* One message's checks as the bench's traffic asks for them (connect, MAIL, RCPT to a local
 * user, blocklist_recipients on), with no map and with 100,000 entries that do not match:
 * the time is printed for docs/benchmarks.md, and must stay a few microseconds. */
static double policy_message_ns(struct fixture *f, unsigned n)
{
    struct smtp_path p;
    path(&p, "user@mx.test");
    double start = seconds();
    for (unsigned i = 0; i < n; i++) {
        policy_connect(&f->set, &f->client, &f->ps, &f->v);
        policy_mail(&f->set, &f->client, &f->ps, "bench@client.test", &f->v);
        policy_rcpt(&f->set, &f->client, &f->ps, &p, &f->v);
        assert_int_equal(f->v.action, POLICY_ACCEPT);
    }
    return (seconds() - start) * 1e9 / n;
}

static void test_message_cost_100k(void **state)
{
    struct fixture *f = *state;
    struct buf text;
    buf_init(&text, 0);
    for (unsigned i = 0; i < 100000; i++)
        buf_printf(&text,
                   i % 2 ? "From:spammer%u.example REJECT\n" : "To:victim%u@mx.test REJECT\n", i);
    struct access_map big = {0}, none = {0};
    char err[128];
    assert_int_equal(access_parse("a", text.data, text.len, &big, err, sizeof(err)), 0);
    assert_int_equal(access_parse("a", "", 0, &none, err, sizeof(err)), 0);
    f->set.blocklist_recipients = true;
    f->set.access = &none;
    double empty = policy_message_ns(f, 100000);
    f->set.access = &big;
    double full = policy_message_ns(f, 100000);
    print_message("policy checks per message: %.0f ns with no map, %.0f ns with 100,000 entries\n",
                  empty, full);
    assert_true(full < 20000); /* 20 us: 5 % of the ~300 us a message costs the server */
    access_free(&big);
    access_free(&none);
    buf_free(&text);
}

/* policy/auth_param: what MAIL's AUTH= becomes for the queue (sendmail's trust_auth). */
static void test_unauthenticated_records_nothing(void **state)
{
    (void)state;
    char out[SMTP_AUTH_PARAM_MAX + 1];
    assert_null(auth_param_record(NULL, NULL, out, sizeof(out)));
    assert_null(auth_param_record("<>", NULL, out, sizeof(out)));
    assert_null(auth_param_record("alice@example.com", NULL, out, sizeof(out)));
}

static void test_trusted_value_kept(void **state)
{
    (void)state;
    char out[SMTP_AUTH_PARAM_MAX + 1];
    const char *v = "a+2Bb@example.com";
    assert_ptr_equal(auth_param_record(v, "a+b@example.com", out, sizeof(out)), v);
    v = "+3Calice+3E";
    assert_ptr_equal(auth_param_record(v, "alice", out, sizeof(out)), v);
    v = "<>";
    assert_ptr_equal(auth_param_record(v, "alice", out, sizeof(out)), v);
}

/* Another mailbox than the identity is not trusted: "<>", as sendmail's trust_auth. */
static void test_other_mailbox_untrusted(void **state)
{
    (void)state;
    char out[SMTP_AUTH_PARAM_MAX + 1];
    assert_string_equal(auth_param_record("bob@example.com", "alice", out, sizeof(out)), "<>");
    assert_string_equal(auth_param_record("alice+00x", "alice", out, sizeof(out)), "<>");
}

/* No AUTH=: the identity, as xtext. */
static void test_default_is_the_identity(void **state)
{
    (void)state;
    char out[SMTP_AUTH_PARAM_MAX + 1];
    assert_string_equal(auth_param_record(NULL, "a+b=c@example.com", out, sizeof(out)),
                        "a+2Bb+3Dc@example.com");
    char longid[SMTP_AUTH_PARAM_MAX];
    memset(longid, '+', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_string_equal(auth_param_record(NULL, longid, out, sizeof(out)), "<>");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unauthenticated_records_nothing),
        cmocka_unit_test(test_trusted_value_kept),
        cmocka_unit_test(test_other_mailbox_untrusted),
        cmocka_unit_test(test_default_is_the_identity),
        cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_checks_spam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_checks_sender_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_caller_relays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_limited, setup, teardown),
        cmocka_unit_test(test_index_rules),
        cmocka_unit_test(test_index_100k),
        cmocka_unit_test_setup_teardown(test_message_cost_100k, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
