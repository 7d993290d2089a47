/*
 * util/dns_parse.c — an MX answer's bytes to a sorted, bounded host list (pure).
 *
 * Kept apart from the c-ares glue so the fuzzer drives exactly what the network feeds:
 * every answer the resolver gets goes through dns_mx_parse.
 */
#include "util/dns.h"

#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DNS_HEADER_LEN     12
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_REFUSED  5

/* splitmix64: one seed per answer is enough to shuffle equal preferences. */
static uint64_t dns_mix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct dns_mx_candidate {
    const char *name;
    unsigned pref;
    uint64_t key; /* random order among equal preferences */
};

static int dns_candidate_cmp(const void *a, const void *b)
{
    const struct dns_mx_candidate *x = a, *y = b;
    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static enum dns_status dns_fail(char *error, size_t errlen, enum dns_status st, const char *why)
{
    snprintf(error, errlen, "%s", why);
    return st;
}

static enum dns_status dns_rcode_status(unsigned rcode, char *error, size_t errlen)
{
    switch (rcode) {
    case DNS_RCODE_NXDOMAIN:
        return dns_fail(error, errlen, DNS_NOTFOUND, "host not found (NXDOMAIN)");
    case DNS_RCODE_SERVFAIL:
        return dns_fail(error, errlen, DNS_TEMPFAIL, "name server failure (SERVFAIL)");
    case DNS_RCODE_REFUSED:
        return dns_fail(error, errlen, DNS_TEMPFAIL, "name server refused the query (REFUSED)");
    default:
        snprintf(error, errlen, "name server error (rcode %u)", rcode);
        return DNS_TEMPFAIL;
    }
}

/* Sorts the records into out, dropping duplicates, keeping the DNS_MAX_HOSTS best. Null
 * MX records among others are dropped (RFC 7505 says a domain must not mix them). */
static enum dns_status dns_mx_select(const struct ares_mx_reply *mx, uint64_t random,
                                     struct dns_mx_list *out, char *error, size_t errlen)
{
    size_t total = 0, roots = 0;
    for (const struct ares_mx_reply *r = mx; r; r = r->next) {
        total++;
        roots += r->host[0] == '\0' || strcmp(r->host, ".") == 0;
    }
    if (roots == total)
        return dns_fail(error, errlen, DNS_NULLMX, "domain does not accept mail (null MX)");
    struct dns_mx_candidate *c = calloc(total, sizeof *c);
    if (!c)
        return dns_fail(error, errlen, DNS_TEMPFAIL, "out of memory");
    size_t n = 0;
    for (const struct ares_mx_reply *r = mx; r; r = r->next) {
        if (r->host[0] == '\0' || strcmp(r->host, ".") == 0 ||
            strlen(r->host) >= sizeof out->hosts[0].name)
            continue;
        c[n++] = (struct dns_mx_candidate){.name = r->host, .pref = r->priority};
    }
    for (size_t i = 0; i < n; i++)
        c[i].key = dns_mix(&random);
    qsort(c, n, sizeof *c, dns_candidate_cmp);
    for (size_t i = 0; i < n && out->n < DNS_MAX_HOSTS; i++) {
        bool dup = false;
        for (size_t j = 0; j < out->n && !dup; j++)
            dup = strcasecmp(out->hosts[j].name, c[i].name) == 0;
        if (dup)
            continue;
        snprintf(out->hosts[out->n].name, sizeof out->hosts[0].name, "%s", c[i].name);
        out->hosts[out->n].pref = c[i].pref;
        out->n++;
    }
    free(c);
    if (out->n == 0)
        return dns_fail(error, errlen, DNS_TEMPFAIL, "malformed answer (no usable MX name)");
    return DNS_OK;
}

enum dns_status dns_mx_parse(const unsigned char *answer, size_t len, uint64_t random,
                             struct dns_mx_list *out, char *error, size_t errlen)
{
    out->n = 0;
    if (errlen)
        error[0] = '\0';
    if (len < DNS_HEADER_LEN || len > 65535)
        return dns_fail(error, errlen, DNS_TEMPFAIL, "malformed answer (bad length)");
    if (!(answer[2] & 0x80))
        return dns_fail(error, errlen, DNS_TEMPFAIL, "malformed answer (not a response)");
    if (answer[2] & 0x02)
        return dns_fail(error, errlen, DNS_TEMPFAIL, "truncated answer");
    unsigned rcode = answer[3] & 0x0f;
    if (rcode != 0)
        return dns_rcode_status(rcode, error, errlen);
    struct ares_mx_reply *mx = NULL;
    int rc = ares_parse_mx_reply(answer, (int)len, &mx);
    enum dns_status st;
    if (rc == ARES_ENODATA)
        st = DNS_OK; /* the name exists (maybe as a CNAME) but has no MX: implicit MX */
    else if (rc == ARES_ENOMEM)
        st = dns_fail(error, errlen, DNS_TEMPFAIL, "out of memory");
    else if (rc != ARES_SUCCESS)
        st = dns_fail(error, errlen, DNS_TEMPFAIL, "malformed answer");
    else if (!mx)
        st = DNS_OK; /* only other records (a CNAME chain ending without MX) */
    else
        st = dns_mx_select(mx, random, out, error, errlen);
    if (mx)
        ares_free_data(mx);
    return st;
}
