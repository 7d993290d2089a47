/* libFuzzer harness for the path and parameter parsers and the relay decision.
 *
 * The input is handed over as (ptr, len) with nothing after it, as the server does with a
 * command line, so any read past `len` is an AddressSanitizer report. Besides not
 * crashing, every accepted path must keep the header's promises: NUL-terminated fields
 * within their limits, a mailbox that is local@domain, consumed within the input. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_addr.h"
#include "smtp/smtp_relay.h"
#include "util/netaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_path(const struct smtp_path *p, size_t consumed, size_t size, unsigned flags)
{
    size_t local = strnlen(p->local, sizeof(p->local));
    size_t domain = strnlen(p->domain, sizeof(p->domain));
    size_t mailbox = strnlen(p->mailbox, sizeof(p->mailbox));

    check(consumed <= size);
    check(local <= SMTP_LOCAL_MAX && domain <= SMTP_DOMAIN_MAX && mailbox < SMTP_PATH_MAX - 1);
    check(!p->utf8 || (flags & SMTP_PATH_ALLOW_UTF8));
    if (p->null) {
        check((flags & SMTP_PATH_ALLOW_NULL) && mailbox == 0 && local == 0);
    } else if (domain == 0) {
        check((flags & SMTP_PATH_ALLOW_POSTMASTER) && strcmp(p->mailbox, "postmaster") == 0);
    } else {
        check(mailbox == local + 1 + domain && memcmp(p->mailbox, p->local, local) == 0 &&
              p->mailbox[local] == '@' && strcmp(p->mailbox + local + 1, p->domain) == 0);
    }
}

static void fuzz_relay(const struct smtp_path *p)
{
    static const char *const domains[] = {"mx.example", "localhost"};
    static const char *const relay[] = {"relay.example", ".other.example"};
    struct netaddr_prefix nets[2];
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;

    check(netaddr_prefix_parse("192.0.2.0/24", &nets[0], NULL) == 0);
    check(netaddr_prefix_parse("2001:db8::/32", &nets[1], NULL) == 0);
    const struct smtp_relay_policy policy = {domains, 2, relay, 2, nets, 2};
    memset(&in4, 0, sizeof(in4));
    in4.sin_family = AF_INET;
    in4.sin_addr.s_addr = htonl(0xc6336407); /* 198.51.100.7: not in relay_from */
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    in6.sin6_addr.s6_addr[0] = 0x20; /* 2001:db8::: in relay_from */
    in6.sin6_addr.s6_addr[1] = 0x01;
    in6.sin6_addr.s6_addr[2] = 0x0d;
    in6.sin6_addr.s6_addr[3] = 0xb8;

    enum smtp_relay_verdict outside = smtp_relay_check(&policy, (struct sockaddr *)&in4, p);
    enum smtp_relay_verdict inside = smtp_relay_check(&policy, (struct sockaddr *)&in6, p);
    /* the contract: a routing path is never accepted on the strength of a domain */
    if (smtp_path_has_routing(p))
        check(outside == SMTP_RELAY_DENIED);
    check(inside != SMTP_RELAY_DENIED || p->null);
    smtp_domain_equal(p->domain, "mx.example");
    smtp_domain_within(p->domain, "example");
}

static void fuzz_params(const char *s, size_t len)
{
    static const struct smtp_ext exts[] = {
        {true, true, true, true, 1000, true},
        {false, false, false, false, 0, false},
    };
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        struct smtp_mail_params mp;
        struct smtp_rcpt_params rp;
        struct smtp_addr_error err;
        if (smtp_mail_params_parse(s, len, &exts[i], &mp, &err) == 0) {
            check(strnlen(mp.envid, sizeof(mp.envid)) <= SMTP_ENVID_MAX);
            check(!mp.has_size || exts[i].max_size == 0 || mp.size <= exts[i].max_size);
        } else {
            check(err.code >= 500 && err.code < 600 && err.enh != NULL && err.reason != NULL);
        }
        if (smtp_rcpt_params_parse(s, len, &exts[i], &rp, &err) == 0)
            check(strnlen(rp.orcpt, sizeof(rp.orcpt)) <= SMTP_ORCPT_MAX);
        else
            check(err.code >= 500 && err.code < 600 && err.enh != NULL && err.reason != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    for (unsigned flags = 0; flags < 8; flags++) {
        struct smtp_path path;
        struct smtp_addr_error err;
        size_t consumed = 0;
        if (smtp_path_parse(s, size, flags, &path, &consumed, &err) == 0) {
            check_path(&path, consumed, size, flags);
            fuzz_relay(&path);
            fuzz_params(s + consumed, size - consumed);
        } else {
            check(err.code >= 500 && err.code < 600 && err.enh != NULL && err.reason != NULL);
        }
    }
    fuzz_params(s, size);
    smtp_xtext_valid(s, size);

    /* netaddr takes C strings: give it a terminated copy */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct netaddr_prefix prefix;
    const char *why;
    if (netaddr_prefix_parse(text, &prefix, &why) == 0) {
        char out[64];
        netaddr_prefix_format(&prefix, out, sizeof(out));
    }
    netaddr_is_ip(text);
    free(text);
    return 0;
}
