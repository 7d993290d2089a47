/*
 * util/dns.h — asynchronous MX and address resolution (c-ares) on an engine worker's ring.
 *
 * Owns: one c-ares channel per struct dns (one struct dns per worker), its sockets (polled
 * with one-shot io_uring poll operations through engine_sqe, closed only once their poll
 * has finished), its timeouts (one engine worker timer) and every query in flight. No
 * thread per lookup and no blocking network call; /etc/hosts is read as the system
 * resolver would (files, then DNS).
 *
 * Threads: everything is called on the worker thread that made the struct dns.
 * Callbacks: a dns_mx_cb runs from the worker's loop, never from inside dns_resolve,
 * dns_cancel or dns_free, exactly once per query unless the query was cancelled (or the
 * struct dns freed) first. The result it gets, and everything it points to, is valid only
 * during the call: copy what you keep. A callback may call dns_resolve and dns_cancel on
 * other queries, but not dns_free.
 *
 * Shutdown: call dns_free before engine_worker_exit (its polls are cancelled then and
 * finish at once); a struct dns still open when the loop exits keeps the worker waiting
 * for those polls until the engine's exit grace runs out.
 *
 * Semantics of dns_resolve (sendmail's getmxrr and Postfix's smtp_addr):
 * - MX hosts by preference, random order among equal preferences, duplicates dropped, at
 *   most DNS_MAX_HOSTS; each host's addresses (AAAA then A for AF_UNSPEC), at most
 *   DNS_MAX_ADDRS. A host without an address is left out; when every host is left out the
 *   result is DNS_TEMPFAIL ("no address for mx.x"), as sendmail defers.
 * - No MX record (the name exists): implicit MX, the domain's own addresses, `implicit`.
 * - Null MX (RFC 7505: one MX, exchanger ".") → DNS_NULLMX.
 * - NXDOMAIN, or a name (implicit MX / [host]) with no address at all → DNS_NOTFOUND.
 * - SERVFAIL, REFUSED, timeouts, malformed or truncated answers → DNS_TEMPFAIL with the
 *   reason in `error`.
 * - CNAMEs are followed. Names are looked up as given, without the search list; a trailing
 *   dot is accepted.
 */
#ifndef RINGMAIL_UTIL_DNS_H
#define RINGMAIL_UTIL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct engine_worker;

#define DNS_MAX_HOSTS 64 /* MX hosts kept per answer */
#define DNS_MAX_ADDRS 16 /* addresses kept per host */

struct dns_settings {
    /* "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53"; none = the system's configuration
     * (/etc/resolv.conf). Copied by dns_new. */
    const char *const *servers;
    size_t n_servers;
    unsigned timeout_ms; /* per try and server (c-ares doubles it per round); 0 = 5000 */
    unsigned tries;      /* rounds over the servers; 0 = 2 */
};

struct dns;

/* NULL with `err` set when c-ares cannot start (bad server address, unreadable
 * resolv.conf, no memory). */
struct dns *dns_new(struct engine_worker *w, const struct dns_settings *s, char *err,
                    size_t errlen);
/* Cancels every query in flight (no callback runs after this) and closes the channel.
 * NULL is allowed. Not from inside a dns_mx_cb. */
void dns_free(struct dns *d);

enum dns_status {
    DNS_OK,
    DNS_TEMPFAIL, /* try again later: SERVFAIL, timeout, malformed answer, no usable MX */
    DNS_NOTFOUND, /* NXDOMAIN, or no address at all for the name itself */
    DNS_NULLMX,   /* RFC 7505: the domain accepts no mail */
};

struct dns_host {
    char *name; /* the exchanger (or the name itself for implicit MX / [host]) */
    unsigned pref;
    struct sockaddr_storage *addrs; /* port 0 */
    size_t n_addrs;
};

struct dns_mx_result {
    enum dns_status status;
    char error[160];        /* why, when status is not DNS_OK: for the log and the bounce */
    bool implicit;          /* no MX record: hosts[0] is the domain with its own addresses */
    struct dns_host *hosts; /* by preference, random among equals; n_hosts > 0 iff DNS_OK
                             * (but for dns_resolve_exists' MX answer) */
    size_t n_hosts;
};

typedef void (*dns_mx_cb)(void *arg, const struct dns_mx_result *r);

struct dns_query;

/* Starts resolving `domain`: its MX hosts and their addresses (with_mx), or only the
 * name's own addresses (with_mx false: sendmail's [host]; an address literal is returned
 * as is). family: AF_UNSPEC (both, IPv6 first as sendmail), AF_INET or AF_INET6.
 * Returns the query (valid until its callback has returned or dns_cancel), or NULL when
 * no memory was left (logged; no callback then). */
struct dns_query *dns_resolve(struct dns *d, const char *domain, bool with_mx, int family,
                              dns_mx_cb cb, void *arg);
/* Whether `domain` exists as a mail domain, as sendmail's `host` map asks (getcanonname: MX,
 * else the name's own addresses): DNS_OK with no hosts as soon as an MX record answers
 * (its exchangers are not looked up), DNS_NULLMX for a null MX, else as dns_resolve
 * without MX (the name's addresses, AF_UNSPEC). Same lifetime and callback rules. */
struct dns_query *dns_resolve_exists(struct dns *d, const char *domain, dns_mx_cb cb, void *arg);
/* Starts the reverse lookup of `addr` (its port is ignored), /etc/hosts first as the
 * system resolver: DNS_OK with the name in hosts[0].name (n_hosts 1, no addresses: the
 * caller confirms it with dns_resolve), DNS_NOTFOUND for NXDOMAIN or no PTR record,
 * DNS_TEMPFAIL for the rest (with `error`). Same lifetime and callback rules as
 * dns_resolve. */
struct dns_query *dns_resolve_ptr(struct dns *d, const struct sockaddr *addr, dns_mx_cb cb,
                                  void *arg);
/* The name to look up for `addr` under `zone`: "4.3.2.1.zone" (IPv4), 32 nibbles then the
 * zone (IPv6); zone NULL = in-addr.arpa / ip6.arpa. -1 when it does not fit or the family
 * is neither. */
int dns_reverse_name(const struct sockaddr *addr, const char *zone, char *out, size_t outlen);
/* The callback will not run. Only before it ran (or from inside it: no effect). */
void dns_cancel(struct dns_query *q);

/* --- the answer handling, pure (what the fuzzer drives) --- */

/* MX hosts out of a raw DNS answer (the bytes of the reply message). */
struct dns_mx_list {
    size_t n;
    struct {
        char name[256];
        unsigned pref;
    } hosts[DNS_MAX_HOSTS];
};

/* Parses an answer to an MX query: DNS_OK with the hosts sorted by preference and shuffled
 * among equal preferences with `random` (any value; successive calls should differ),
 * DNS_NOTFOUND for NXDOMAIN, DNS_NULLMX, DNS_TEMPFAIL (with `error` set) for a server error
 * or a malformed or truncated answer. DNS_OK with n == 0 means the name exists but has no
 * MX: the caller uses implicit MX. */
enum dns_status dns_mx_parse(const unsigned char *answer, size_t len, uint64_t random,
                             struct dns_mx_list *out, char *error, size_t errlen);

#endif
