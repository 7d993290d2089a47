/* RFC 5321 paths and ESMTP parameters: every accepted form, every refusal with its reply,
 * the length limits at their boundaries. Inputs are copied into buffers of their exact
 * length (no NUL), so a read past `len` is caught by AddressSanitizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_addr.h"

#define MAIL_FLAGS (SMTP_PATH_ALLOW_NULL)
#define RCPT_FLAGS (SMTP_PATH_ALLOW_POSTMASTER)
#define UTF8       (SMTP_PATH_ALLOW_UTF8)

static struct smtp_path path;
static struct smtp_addr_error err;
static size_t consumed;

/* A heap copy of exactly `len` bytes with nothing after it. */
static char *dup_exact(const char *s, size_t len)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    memset(&err, 0, sizeof(err));
    return copy;
}

static int parse_n(const char *s, size_t len, unsigned flags)
{
    char *copy = dup_exact(s, len);
    int r = smtp_path_parse(copy, len, flags, &path, &consumed, &err);
    free(copy);
    return r;
}

static int parse(const char *s, unsigned flags)
{
    return parse_n(s, strlen(s), flags);
}

static void check_ok(const char *s, unsigned flags, const char *mailbox)
{
    if (parse(s, flags) != 0)
        fail_msg("%s: refused %d %s %s", s, err.code, err.enh, err.reason);
    if (strcmp(path.mailbox, mailbox) != 0)
        fail_msg("%s: mailbox \"%s\", expected \"%s\"", s, path.mailbox, mailbox);
}

static void check_err(const char *s, unsigned flags, int code, const char *enh, const char *reason)
{
    if (parse(s, flags) == 0)
        fail_msg("%s: accepted as \"%s\", expected %d %s", s, path.mailbox, code, enh);
    if (err.code != code || strcmp(err.enh, enh) != 0 || strcmp(err.reason, reason) != 0)
        fail_msg("%s: got %d %s %s, expected %d %s %s", s, err.code, err.enh, err.reason, code, enh,
                 reason);
}

static void check_bad_path(const char *s, unsigned flags, const char *reason)
{
    check_err(s, flags, 553, "5.1.3", reason);
}

/* "<" + local + "@" + domain + ">" with the local part and domain of given lengths;
 * the domain is made of 63-octet labels (RFC 1035) and a shorter last one. */
static char *make_path(size_t local_len, size_t domain_len)
{
    char *s = malloc(local_len + domain_len + 4);
    char *p = s;
    assert_non_null(s);
    *p++ = '<';
    memset(p, 'l', local_len);
    p += local_len;
    *p++ = '@';
    for (size_t i = 0; i < domain_len; i++)
        *p++ = (i % 64 == 63) ? '.' : 'd';
    *p++ = '>';
    *p = '\0';
    return s;
}

static void test_plain(void **state)
{
    (void)state;
    check_ok("<user@example.com>", RCPT_FLAGS, "user@example.com");
    assert_string_equal(path.local, "user");
    assert_string_equal(path.domain, "example.com");
    assert_int_equal(consumed, 18);
    assert_false(path.null || path.utf8 || path.quoted || path.addr_literal || path.source_route);

    check_ok("<First.Last+tag@Mail.Example.COM>", RCPT_FLAGS, "First.Last+tag@Mail.Example.COM");
    check_ok("<!#$%&'*+-/=?^_`{|}~@x.example>", RCPT_FLAGS, "!#$%&'*+-/=?^_`{|}~@x.example");
    check_ok("<a@123.example>", RCPT_FLAGS, "a@123.example");
    check_ok("<a@x-y.example>", RCPT_FLAGS, "a@x-y.example");
    /* the absolute form with one trailing dot is kept as received */
    check_ok("<a@example.com.>", RCPT_FLAGS, "a@example.com.");
}

/* Spaces before '<' are allowed; `consumed` ends after '>' so the parameters follow. */
static void test_consumed_and_trailer(void **state)
{
    (void)state;
    check_ok("  <a@b.example> SIZE=10", MAIL_FLAGS, "a@b.example");
    assert_int_equal(consumed, 15);
    check_ok("<a@b.example>   ", MAIL_FLAGS, "a@b.example");
    assert_int_equal(consumed, 13);
    check_err("<a@b.example>SIZE=10", MAIL_FLAGS, 501, "5.5.2", "Syntax error in path");
    check_err("<a@b.example>>", MAIL_FLAGS, 501, "5.5.2", "Syntax error in path");
}

static void test_framing_errors(void **state)
{
    (void)state;
    check_err("", MAIL_FLAGS, 501, "5.5.2", "Missing path");
    check_err("   ", MAIL_FLAGS, 501, "5.5.2", "Missing path");
    check_err("<a@b.example", MAIL_FLAGS, 501, "5.5.2", "Syntax error in path");
    check_err("<", MAIL_FLAGS, 501, "5.5.2", "Syntax error in path");
    check_err("<\"a>b@c.example", MAIL_FLAGS, 501, "5.5.2", "Syntax error in path");
    check_err(">", MAIL_FLAGS, 501, "5.5.2", "Syntax error in path");
    /* the parser honours len: the same text cut short has no '>' */
    assert_int_equal(parse_n("<a@b.example>", 5, MAIL_FLAGS), -1);
    assert_int_equal(err.code, 501);
    /* a NUL inside the path is just a bad octet, not an end */
    assert_int_equal(parse_n("<a\0b@c.example>", 15, MAIL_FLAGS), -1);
    assert_int_equal(err.code, 553);
}

static void test_null_path(void **state)
{
    (void)state;
    check_ok("<>", MAIL_FLAGS, "");
    assert_true(path.null);
    assert_int_equal(consumed, 2);
    check_ok(" <> BODY=8BITMIME", MAIL_FLAGS, "");
    assert_true(path.null);
    check_bad_path("<>", RCPT_FLAGS, "Null path not allowed here");
    check_bad_path("< >", MAIL_FLAGS, "Bad local part syntax");
}

/* Broken clients send MAIL FROM:user@host; the address runs to the first space. */
static void test_bare_address(void **state)
{
    (void)state;
    check_ok("a@b.example", MAIL_FLAGS, "a@b.example");
    assert_int_equal(consumed, 11);
    check_ok(" a@b.example SIZE=5", MAIL_FLAGS, "a@b.example");
    assert_int_equal(consumed, 12);
    check_ok("Postmaster", RCPT_FLAGS, "postmaster");
    check_bad_path("a@b.example>", MAIL_FLAGS, "Bad domain name syntax");
    check_bad_path("a@b@c.example", MAIL_FLAGS, "Unquoted '@' in local part");
}

static void test_source_route(void **state)
{
    (void)state;
    check_ok("<@a.example,@b.example:user@c.example>", RCPT_FLAGS, "user@c.example");
    assert_true(path.source_route);
    assert_string_equal(path.local, "user");
    assert_string_equal(path.domain, "c.example");
    check_ok("<@a.example:user@c.example>", RCPT_FLAGS, "user@c.example");
    assert_true(path.source_route);

    check_bad_path("<@a.example user@c.example>", RCPT_FLAGS, "Bad source route");
    check_bad_path("<@a.example,user@c.example>", RCPT_FLAGS, "Bad source route");
    check_bad_path("<@a.example>", RCPT_FLAGS, "Bad source route");
    check_bad_path("<@a.example,:u@c.example>", RCPT_FLAGS, "Bad source route");
    check_bad_path("<@:u@c.example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<@>", RCPT_FLAGS, "Missing domain");
    check_bad_path("<@[192.0.2.1]:u@c.example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<@a.example:>", RCPT_FLAGS, "Bad local part syntax");
    check_bad_path("<@a.example:postmaster>", RCPT_FLAGS, "Domain name required");
}

static void test_quoted_local(void **state)
{
    (void)state;
    check_ok("<\"john doe\"@example.com>", RCPT_FLAGS, "\"john doe\"@example.com");
    assert_true(path.quoted);
    assert_string_equal(path.local, "\"john doe\"");
    check_ok("<\"a\\\"b\\\\c\"@x.example>", RCPT_FLAGS, "\"a\\\"b\\\\c\"@x.example");
    check_ok("<\"a>b\"@x.example>", RCPT_FLAGS, "\"a>b\"@x.example");
    assert_int_equal(consumed, 17);
    check_ok("<\"\"@x.example>", RCPT_FLAGS, "\"\"@x.example");
    check_ok("<\"a@b\"@x.example>", RCPT_FLAGS, "\"a@b\"@x.example");

    check_bad_path("<\"a\tb\"@x.example>", RCPT_FLAGS, "Bad character in quoted local part");
    check_bad_path("<\"a\\\tb\"@x.example>", RCPT_FLAGS, "Bad quoted pair in local part");
    check_bad_path("\"abc\\", RCPT_FLAGS, "Bad quoted pair in local part");
    check_err("<\"abc\\>", RCPT_FLAGS, 501, "5.5.2", "Syntax error in path");
    check_bad_path("\"abc", RCPT_FLAGS, "Unterminated quoted local part");
    check_bad_path("<\"a\"b@x.example>", RCPT_FLAGS, "Bad local part syntax");
    check_bad_path("<\"a\".b@x.example>", RCPT_FLAGS, "Bad local part syntax");
}

static void test_dot_string_errors(void **state)
{
    (void)state;
    check_bad_path("<.a@x.example>", RCPT_FLAGS, "Bad dot in local part");
    check_bad_path("<a.@x.example>", RCPT_FLAGS, "Bad dot in local part");
    check_bad_path("<a..b@x.example>", RCPT_FLAGS, "Bad dot in local part");
    check_bad_path("<a b@x.example>", RCPT_FLAGS, "Bad local part syntax");
    check_bad_path("<(a)@x.example>", RCPT_FLAGS, "Bad local part syntax");
    check_bad_path("<a,b@x.example>", RCPT_FLAGS, "Bad local part syntax");
    check_bad_path("<@x.example:@y.example>", RCPT_FLAGS, "Bad local part syntax");
}

static void test_domain_errors(void **state)
{
    (void)state;
    check_bad_path("<a@>", RCPT_FLAGS, "Missing domain");
    check_bad_path("<a@.x.example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@x..example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@x.example..>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@.>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@-x.example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@x-.example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@x_y.example>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<a@x.example b>", RCPT_FLAGS, "Bad domain name syntax");
    check_bad_path("<user>", MAIL_FLAGS, "Domain name required");
}

/* "user@host@local" is not a local recipient: sendmail would route it to host. */
static void test_double_at(void **state)
{
    (void)state;
    check_bad_path("<user@host.example@mx.example>", RCPT_FLAGS, "Unquoted '@' in local part");
    check_bad_path("<user@[192.0.2.1]@mx.example>", RCPT_FLAGS, "Unquoted '@' in local part");
}

static void test_address_literals(void **state)
{
    (void)state;
    check_ok("<u@[192.0.2.1]>", RCPT_FLAGS, "u@[192.0.2.1]");
    assert_true(path.addr_literal);
    assert_string_equal(path.domain, "[192.0.2.1]");
    check_ok("<u@[IPv6:2001:db8::1]>", RCPT_FLAGS, "u@[IPv6:2001:db8::1]");
    assert_true(path.addr_literal);
    check_ok("<u@[ipv6:::1]>", RCPT_FLAGS, "u@[ipv6:::1]");
    check_ok("<u@[IPv6:::ffff:192.0.2.1]>", RCPT_FLAGS, "u@[IPv6:::ffff:192.0.2.1]");

    check_bad_path("<u@[192.0.2]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[256.0.0.1]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[192.0.2.1 ]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[IPv6:2001:db8::1::2]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[IPv6:192.0.2.1]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[IPv6:fe80::1%eth0]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999]>", RCPT_FLAGS,
                   "Bad address literal");
    check_bad_path("<u@[2001:db8::1]>", RCPT_FLAGS, "Bad address literal");
    check_bad_path("<u@[x-tag:stuff]>", RCPT_FLAGS, "Unsupported address literal");
    check_bad_path("<u@[]>", RCPT_FLAGS, "Unsupported address literal");
    check_bad_path("<u@[192.0.2.1>", RCPT_FLAGS, "Unterminated address literal");
    check_bad_path("<u@[192.0.2.1]x>", RCPT_FLAGS, "Bad domain name syntax");
}

/* RFC 5321 4.5.3.1: local part 64, domain 255, path 256 octets (brackets included). */
static void test_length_limits(void **state)
{
    (void)state;
    char *s = make_path(64, 20);
    assert_int_equal(parse(s, RCPT_FLAGS), 0);
    assert_int_equal(strlen(path.local), 64);
    free(s);
    s = make_path(65, 20);
    check_bad_path(s, RCPT_FLAGS, "Local part too long");
    free(s);

    /* 64 octets of quoted local part, quotes included */
    char q[80] = "<\"";
    memset(q + 2, 'q', 62);
    strcpy(q + 64, "\"@x.example>");
    assert_int_equal(parse(q, RCPT_FLAGS), 0);
    assert_int_equal(strlen(path.local), 64);
    memset(q + 2, 'q', 63);
    strcpy(q + 65, "\"@x.example>");
    check_bad_path(q, RCPT_FLAGS, "Local part too long");

    /* a path of exactly 256 octets is accepted, 257 is not */
    s = make_path(64, 189);
    assert_int_equal(strlen(s), 256);
    assert_int_equal(parse(s, RCPT_FLAGS), 0);
    assert_int_equal(strlen(path.mailbox), 254);
    free(s);
    s = make_path(64, 190);
    check_bad_path(s, RCPT_FLAGS, "Path too long");
    free(s);

    /* a 255-octet domain is a valid domain but can't fit in a path; 256 is not one */
    s = make_path(1, 255);
    check_bad_path(s, RCPT_FLAGS, "Path too long");
    free(s);
    s = make_path(1, 256);
    check_bad_path(s, RCPT_FLAGS, "Domain name too long");
    free(s);

    /* labels: 63 octets, then 64 */
    char d[100] = "<a@";
    memset(d + 3, 'd', 63);
    strcpy(d + 66, ".example>");
    assert_int_equal(parse(d, RCPT_FLAGS), 0);
    memset(d + 3, 'd', 64);
    strcpy(d + 67, ".example>");
    check_bad_path(d, RCPT_FLAGS, "Domain label too long");

    /* the bare form is held to the same limit, as if bracketed */
    s = make_path(64, 189);
    s[strlen(s) - 1] = '\0';
    assert_int_equal(parse(s + 1, RCPT_FLAGS), 0);
    free(s);
    s = make_path(64, 190);
    s[strlen(s) - 1] = '\0';
    check_bad_path(s + 1, RCPT_FLAGS, "Path too long");
    free(s);

    /* a source route counts towards the path */
    char *r = malloc(300);
    assert_non_null(r);
    strcpy(r, "<@");
    memset(r + 2, 'r', 60);
    strcpy(r + 62, ".example:");
    s = make_path(64, 120);
    strcat(r, s + 1);
    check_bad_path(r, RCPT_FLAGS, "Path too long");
    free(s);
    free(r);
}

static void test_postmaster(void **state)
{
    (void)state;
    check_ok("<Postmaster>", RCPT_FLAGS, "postmaster");
    assert_string_equal(path.domain, "");
    assert_string_equal(path.local, "Postmaster");
    check_ok("<POSTMASTER>", RCPT_FLAGS, "postmaster");
    check_ok("<postmaster@mx.example>", RCPT_FLAGS, "postmaster@mx.example");
    check_bad_path("<Postmaster>", MAIL_FLAGS, "Domain name required");
    check_bad_path("<\"postmaster\">", RCPT_FLAGS, "Domain name required");
    check_bad_path("<postmasters>", RCPT_FLAGS, "Domain name required");
    check_bad_path("<@a.example:postmaster>", RCPT_FLAGS, "Domain name required");
}

/* RFC 6531: UTF-8 only with SMTPUTF8, and only when well formed. */
static void test_utf8(void **state)
{
    (void)state;
    check_ok("<jos\xc3\xa9@exampl\xc3\xa9.example>", RCPT_FLAGS | UTF8,
             "jos\xc3\xa9@exampl\xc3\xa9.example");
    assert_true(path.utf8);
    check_ok("<\"\xe2\x82\xac uro\"@x.example>", RCPT_FLAGS | UTF8,
             "\"\xe2\x82\xac uro\"@x.example");
    assert_true(path.utf8);
    check_ok("<u@\xf0\x9f\x93\xa7.example>", RCPT_FLAGS | UTF8, "u@\xf0\x9f\x93\xa7.example");
    check_ok("<u@x.example>", RCPT_FLAGS | UTF8, "u@x.example");
    assert_false(path.utf8);

    check_err("<jos\xc3\xa9@x.example>", RCPT_FLAGS, 553, "5.6.7",
              "Non-ASCII address requires SMTPUTF8");
    check_err("<u@\xc3\xa9.example>", MAIL_FLAGS, 553, "5.6.7",
              "Non-ASCII address requires SMTPUTF8");
    check_err("<\"\xc3\xa9\"@x.example>", MAIL_FLAGS, 553, "5.6.7",
              "Non-ASCII address requires SMTPUTF8");

    const char *malformed[] = {
        "<j\xc3@x.example>",             /* truncated sequence */
        "<j\xa9@x.example>",             /* lone continuation */
        "<j\xc0\xaf@x.example>",         /* overlong '/' */
        "<j\xe0\x80\xaf@x.example>",     /* overlong, 3 octets */
        "<j\xed\xa0\x80@x.example>",     /* UTF-16 surrogate */
        "<j\xf4\x90\x80\x80@x.example>", /* past U+10FFFF */
        "<j\xf8\x88\x80\x80\x80@x.example>",
        "<j\xff@x.example>",
        "<u@x\xe2\x82.example>",
        "<\"\xc3\"@x.example>",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        check_bad_path(malformed[i], RCPT_FLAGS | UTF8, "Malformed UTF-8 in address");

    /* a sequence cut by the end of the input (no NUL to stop at) */
    assert_int_equal(parse_n("u@x\xe2\x82\xac", 5, RCPT_FLAGS | UTF8), -1);
    assert_string_equal(err.reason, "Malformed UTF-8 in address");
    assert_int_equal(parse_n("u@x\xe2\x82\xac", 6, RCPT_FLAGS | UTF8), 0);
}

static void test_has_routing(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        bool routing;
    } cases[] = {
        {"<user@mx.example>", false},
        {"<first.last+tag@mx.example>", false},
        {"<\"john doe\"@mx.example>", false},
        {"<user%host.example@mx.example>", true},
        {"<host.example!user@mx.example>", true},
        {"<\"user@host.example\"@mx.example>", true},
        {"<\"user%host.example\"@mx.example>", true},
        {"<\"user\\@host.example\"@mx.example>", true},
        {"<\"host:user\"@mx.example>", true},
        {"<@mx.example:user@host.example>", true},
        {"<Postmaster>", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (parse(cases[i].path, RCPT_FLAGS) != 0)
            fail_msg("%s: refused %s", cases[i].path, err.reason);
        if (smtp_path_has_routing(&path) != cases[i].routing)
            fail_msg("%s: routing should be %d", cases[i].path, cases[i].routing);
    }
}

static void test_domain_helpers(void **state)
{
    (void)state;
    assert_true(smtp_domain_equal("Example.COM", "example.com"));
    assert_true(smtp_domain_equal("example.com.", "EXAMPLE.com"));
    assert_true(smtp_domain_equal("example.com.", "example.com."));
    assert_false(smtp_domain_equal("example.com..", "example.com"));
    assert_false(smtp_domain_equal("exam", "example"));
    assert_false(smtp_domain_equal("example.org", "example.com"));
    assert_false(smtp_domain_equal(NULL, "example.com"));

    assert_true(smtp_domain_within("relay.example", "relay.example"));
    assert_true(smtp_domain_within("sub.relay.example", "relay.example"));
    assert_true(smtp_domain_within("a.b.RELAY.example.", "relay.example"));
    assert_true(smtp_domain_within("sub.relay.example", ".relay.example"));
    assert_true(smtp_domain_within("sub.relay.example", "Relay.Example."));
    assert_false(smtp_domain_within("notrelay.example", "relay.example"));
    assert_false(smtp_domain_within("relay.example.org", "relay.example"));
    assert_false(smtp_domain_within("example", "relay.example"));
    assert_false(smtp_domain_within(".relay.example", "x.relay.example"));
    assert_false(smtp_domain_within("relay.example", ""));
    assert_false(smtp_domain_within("relay.example", NULL));
}

static void test_xtext(void **state)
{
    (void)state;
    assert_true(smtp_xtext_valid("abc+2Bdef", 9));
    assert_true(smtp_xtext_valid("a+2bc", 5));
    assert_true(smtp_xtext_valid("", 0));
    assert_true(smtp_xtext_valid("!~<>", 4));
    assert_false(smtp_xtext_valid("a+2", 3));
    assert_false(smtp_xtext_valid("a+2Bc", 3)); /* len cuts the hexchar */
    assert_false(smtp_xtext_valid("+ZZ", 3));
    assert_false(smtp_xtext_valid("a=b", 3));
    assert_false(smtp_xtext_valid("a b", 3));
    assert_false(smtp_xtext_valid("a\x7f", 2));
    assert_false(smtp_xtext_valid("a\xc3\xa9", 3));
}

/* ---- MAIL parameters ---- */

static const struct smtp_ext all_ext = {true, true, true, true, 1000, true};
static struct smtp_mail_params mp;
static struct smtp_rcpt_params rp;

static int mail(const char *s, const struct smtp_ext *ext)
{
    size_t len = strlen(s);
    char *copy = dup_exact(s, len);
    int r = smtp_mail_params_parse(copy, len, ext, &mp, &err);
    free(copy);
    return r;
}

static int rcpt(const char *s, const struct smtp_ext *ext)
{
    size_t len = strlen(s);
    char *copy = dup_exact(s, len);
    int r = smtp_rcpt_params_parse(copy, len, ext, &rp, &err);
    free(copy);
    return r;
}

/* One refused parameter line and the exact reply. */
static void check_param_err(int (*fn)(const char *, const struct smtp_ext *), const char *s,
                            const struct smtp_ext *ext, int code, const char *enh,
                            const char *reason)
{
    if (fn(s, ext) == 0)
        fail_msg("\"%s\": accepted, expected %d %s", s, code, enh);
    if (err.code != code || strcmp(err.enh, enh) != 0 || strcmp(err.reason, reason) != 0)
        fail_msg("\"%s\": got %d %s %s, expected %d %s %s", s, err.code, err.enh, err.reason, code,
                 enh, reason);
}

static void check_param_ok(int (*fn)(const char *, const struct smtp_ext *), const char *s,
                           const struct smtp_ext *ext)
{
    if (fn(s, ext) != 0)
        fail_msg("\"%s\": refused %d %s %s", s, err.code, err.enh, err.reason);
}

static void test_mail_params_none(void **state)
{
    (void)state;
    check_param_ok(mail, "", &all_ext);
    assert_false(mp.has_size);
    assert_int_equal(mp.body, SMTP_BODY_NONE);
    assert_int_equal(mp.ret, SMTP_RET_NONE);
    assert_false(mp.smtputf8);
    assert_string_equal(mp.envid, "");
    check_param_ok(mail, "    ", &all_ext);
}

static void test_mail_params_all(void **state)
{
    (void)state;
    check_param_ok(mail, " SIZE=1000  body=8bitmime SMTPUTF8 RET=HDRS ENVID=abc+2Bdef ", &all_ext);
    assert_true(mp.has_size);
    assert_int_equal(mp.size, 1000);
    assert_int_equal(mp.body, SMTP_BODY_8BITMIME);
    assert_true(mp.smtputf8);
    assert_int_equal(mp.ret, SMTP_RET_HDRS);
    assert_string_equal(mp.envid, "abc+2Bdef");
    check_param_ok(mail, "BODY=7BIT RET=full", &all_ext);
    assert_int_equal(mp.body, SMTP_BODY_7BIT);
    assert_int_equal(mp.ret, SMTP_RET_FULL);
}

/* RFC 4954 5: AUTH=<> or an xtext mailbox, once. */
static void test_mail_auth_param(void **state)
{
    (void)state;
    check_param_ok(mail, "AUTH=<>", &all_ext);
    assert_string_equal(mp.auth, "<>");
    smtp_mail_params_free(&mp);
    check_param_ok(mail, "AUTH=user+2Bx@example.com", &all_ext);
    assert_string_equal(mp.auth, "user+2Bx@example.com");
    smtp_mail_params_free(&mp);
    check_param_err(mail, "AUTH=", &all_ext, 501, "5.5.4", "Bad AUTH parameter");
    check_param_err(mail, "AUTH=a=b", &all_ext, 501, "5.5.4", "Bad AUTH parameter");
    check_param_err(mail, "AUTH=<> AUTH=<>", &all_ext, 501, "5.5.4", "Duplicate AUTH parameter");
    smtp_mail_params_free(&mp);
}

static void test_mail_size(void **state)
{
    (void)state;
    check_param_ok(mail, "SIZE=0", &all_ext);
    assert_true(mp.has_size);
    assert_int_equal(mp.size, 0);
    check_param_ok(mail, "SIZE=1000", &all_ext);
    check_param_err(mail, "SIZE=1001", &all_ext, 552, "5.3.4",
                    "Message size exceeds fixed maximum message size");
    check_param_err(mail, "SIZE=99999999999999", &all_ext, 552, "5.3.4",
                    "Message size exceeds fixed maximum message size");

    struct smtp_ext unlimited = all_ext;
    unlimited.max_size = 0;
    check_param_ok(mail, "SIZE=18446744073709551615", &unlimited);
    assert_true(mp.size == UINT64_MAX);
    check_param_err(mail, "SIZE=18446744073709551616", &unlimited, 501, "5.5.4",
                    "Bad SIZE parameter");
    check_param_err(mail, "SIZE=000000000000000000001", &unlimited, 501, "5.5.4",
                    "Bad SIZE parameter");
    const char *bad[] = {"SIZE=abc", "SIZE=", "SIZE", "SIZE=+1", "SIZE=-1", "SIZE=1k", "SIZE=1=2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_param_err(mail, bad[i], &all_ext, 501, "5.5.4", "Bad SIZE parameter");
}

static void test_mail_body(void **state)
{
    (void)state;
    check_param_err(mail, "BODY=BINARYMIME", &all_ext, 555, "5.5.4",
                    "BODY=BINARYMIME not supported");
    check_param_err(mail, "BODY=8BIT", &all_ext, 501, "5.5.4", "Bad BODY parameter");
    check_param_err(mail, "BODY=", &all_ext, 501, "5.5.4", "Bad BODY parameter");
    check_param_err(mail, "BODY", &all_ext, 501, "5.5.4", "Bad BODY parameter");
}

static void test_mail_smtputf8_and_dsn(void **state)
{
    (void)state;
    check_param_err(mail, "SMTPUTF8=yes", &all_ext, 501, "5.5.4", "SMTPUTF8 takes no value");
    check_param_err(mail, "SMTPUTF8=", &all_ext, 501, "5.5.4", "SMTPUTF8 takes no value");
    check_param_err(mail, "RET=BOGUS", &all_ext, 501, "5.5.4", "Bad RET parameter");
    check_param_err(mail, "RET", &all_ext, 501, "5.5.4", "Bad RET parameter");
    check_param_err(mail, "ENVID=bad=xtext", &all_ext, 501, "5.5.4", "Bad ENVID parameter");
    check_param_err(mail, "ENVID=", &all_ext, 501, "5.5.4", "Bad ENVID parameter");
    check_param_err(mail, "ENVID", &all_ext, 501, "5.5.4", "Bad ENVID parameter");
    check_param_err(mail, "ENVID=a+4", &all_ext, 501, "5.5.4", "Bad ENVID parameter");

    char line[120] = "ENVID=";
    memset(line + 6, 'x', 100);
    check_param_ok(mail, line, &all_ext);
    assert_int_equal(strlen(mp.envid), 100);
    line[106] = 'x';
    check_param_err(mail, line, &all_ext, 501, "5.5.4", "ENVID parameter too long");
}

/* A keyword whose extension is off is unknown to this server (RFC 5321 4.1.1.11). */
static void test_mail_disabled(void **state)
{
    (void)state;
    const struct smtp_ext none = {false, false, false, false, 0, false};
    const char *lines[] = {"SIZE=10",  "BODY=8BITMIME", "SMTPUTF8",
                           "RET=FULL", "ENVID=x",       "AUTH=<>"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        check_param_err(mail, lines[i], &none, 555, "5.5.4", "Unsupported parameter");
    check_param_err(mail, "FROBNICATE=1", &all_ext, 555, "5.5.4", "Unsupported parameter");
    check_param_err(mail, "NOTIFY=NEVER", &all_ext, 555, "5.5.4", "Unsupported parameter");
}

static void test_mail_syntax_and_duplicates(void **state)
{
    (void)state;
    check_param_err(mail, "=1", &all_ext, 501, "5.5.4", "Syntax error in parameters");
    check_param_err(mail, "-X=1", &all_ext, 501, "5.5.4", "Syntax error in parameters");
    check_param_err(mail, "SI_ZE=1", &all_ext, 501, "5.5.4", "Syntax error in parameters");
    check_param_err(mail, "SIZE\t=1", &all_ext, 501, "5.5.4", "Syntax error in parameters");
    check_param_err(mail, "SIZE=1 size=2", &all_ext, 501, "5.5.4", "Duplicate SIZE parameter");
    check_param_err(mail, "BODY=7BIT BODY=7BIT", &all_ext, 501, "5.5.4",
                    "Duplicate BODY parameter");
    check_param_err(mail, "SMTPUTF8 smtputf8", &all_ext, 501, "5.5.4",
                    "Duplicate SMTPUTF8 parameter");
    check_param_err(mail, "RET=HDRS RET=FULL", &all_ext, 501, "5.5.4", "Duplicate RET parameter");
    check_param_err(mail, "ENVID=a ENVID=a", &all_ext, 501, "5.5.4", "Duplicate ENVID parameter");
}

/* ---- RCPT parameters ---- */

static void test_rcpt_params(void **state)
{
    (void)state;
    check_param_ok(rcpt, "", &all_ext);
    assert_int_equal(rp.notify, 0);
    assert_string_equal(rp.orcpt, "");

    check_param_ok(rcpt, "NOTIFY=NEVER", &all_ext);
    assert_int_equal(rp.notify, SMTP_NOTIFY_NEVER);
    check_param_ok(rcpt, "notify=success,Failure,DELAY  ORCPT=rfc822;u+40mx.example", &all_ext);
    assert_int_equal(rp.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
    assert_string_equal(rp.orcpt, "rfc822;u+40mx.example");
    check_param_ok(rcpt, "NOTIFY=FAILURE", &all_ext);
    assert_int_equal(rp.notify, SMTP_NOTIFY_FAILURE);
    check_param_ok(rcpt, "ORCPT=x-custom;abc", &all_ext);
}

static void test_rcpt_notify_errors(void **state)
{
    (void)state;
    check_param_err(rcpt, "NOTIFY=NEVER,SUCCESS", &all_ext, 501, "5.5.4",
                    "NOTIFY=NEVER cannot be combined with other values");
    check_param_err(rcpt, "NOTIFY=DELAY,NEVER", &all_ext, 501, "5.5.4",
                    "NOTIFY=NEVER cannot be combined with other values");
    const char *bad[] = {"NOTIFY=SOMETIMES", "NOTIFY=",         "NOTIFY",
                         "NOTIFY=SUCCESS,",  "NOTIFY=,SUCCESS", "NOTIFY=SUCCESS,,DELAY"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_param_err(rcpt, bad[i], &all_ext, 501, "5.5.4", "Bad NOTIFY parameter");
    check_param_err(rcpt, "NOTIFY=NEVER NOTIFY=NEVER", &all_ext, 501, "5.5.4",
                    "Duplicate NOTIFY parameter");
}

static void test_rcpt_orcpt_errors(void **state)
{
    (void)state;
    const char *bad[] = {"ORCPT=nosemicolon", "ORCPT=;u+40x",    "ORCPT=rfc822;", "ORCPT",
                         "ORCPT=rfc822;a=b",  "ORCPT=rfc822;a+4"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_param_err(rcpt, bad[i], &all_ext, 501, "5.5.4", "Bad ORCPT parameter");
    check_param_err(rcpt, "ORCPT=rf(c;u", &all_ext, 501, "5.5.4", "Bad ORCPT address type");
    check_param_err(rcpt, "ORCPT=rfc.822;u", &all_ext, 501, "5.5.4", "Bad ORCPT address type");
    /* a space ends the value; what follows is another (unknown) keyword */
    check_param_err(rcpt, "ORCPT=rfc822;bad xtext", &all_ext, 555, "5.5.4",
                    "Unsupported parameter");
    check_param_err(rcpt, "ORCPT=a;b ORCPT=a;b", &all_ext, 501, "5.5.4",
                    "Duplicate ORCPT parameter");

    char line[520] = "ORCPT=rfc822;";
    memset(line + 13, 'x', 500 - 7);
    check_param_ok(rcpt, line, &all_ext);
    assert_int_equal(strlen(rp.orcpt), 500);
    line[13 + 493] = 'x';
    check_param_err(rcpt, line, &all_ext, 501, "5.5.4", "ORCPT parameter too long");
}

static void test_rcpt_disabled(void **state)
{
    (void)state;
    const struct smtp_ext no_dsn = {true, true, false, true, 0, false};
    check_param_err(rcpt, "NOTIFY=NEVER", &no_dsn, 555, "5.5.4", "Unsupported parameter");
    check_param_err(rcpt, "ORCPT=rfc822;a", &no_dsn, 555, "5.5.4", "Unsupported parameter");
    check_param_err(rcpt, "SIZE=10", &all_ext, 555, "5.5.4", "Unsupported parameter");
    check_param_err(rcpt, "RET=FULL", &all_ext, 555, "5.5.4", "Unsupported parameter");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_consumed_and_trailer),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_bare_address),
        cmocka_unit_test(test_source_route),
        cmocka_unit_test(test_quoted_local),
        cmocka_unit_test(test_dot_string_errors),
        cmocka_unit_test(test_domain_errors),
        cmocka_unit_test(test_double_at),
        cmocka_unit_test(test_address_literals),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_postmaster),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_has_routing),
        cmocka_unit_test(test_domain_helpers),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_mail_params_none),
        cmocka_unit_test(test_mail_params_all),
        cmocka_unit_test(test_mail_auth_param),
        cmocka_unit_test(test_mail_size),
        cmocka_unit_test(test_mail_body),
        cmocka_unit_test(test_mail_smtputf8_and_dsn),
        cmocka_unit_test(test_mail_disabled),
        cmocka_unit_test(test_mail_syntax_and_duplicates),
        cmocka_unit_test(test_rcpt_params),
        cmocka_unit_test(test_rcpt_notify_errors),
        cmocka_unit_test(test_rcpt_orcpt_errors),
        cmocka_unit_test(test_rcpt_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
