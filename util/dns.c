/*
 * util/dns.c — c-ares on the engine: queries, their results, and the callbacks' delivery.
 *
 * A query is an MX lookup (ares_query, no search list) followed by one ares_getaddrinfo
 * per exchanger, all in parallel; or only the latter for [host]; or one ares_gethostbyaddr
 * (a client's name). c-ares calls back from
 * inside its own functions, so its callbacks only record results: a finished query goes
 * on the done list and the user's callback runs after c-ares has returned (and never
 * inside dns_resolve: then from the timer, on the next loop turn).
 * The sockets and timer that drive c-ares are in dns_io.c.
 */
#include "util/dns_int.h"

#include "util/log.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static pthread_once_t dns_library_once = PTHREAD_ONCE_INIT;
static int dns_library_status;

static void dns_library_init(void)
{
    dns_library_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* c-ares' statuses, in words an operator reads in a bounce or a log line. */
static const char *dns_ares_reason(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
        return "host not found";
    case ARES_ENODATA:
        return "no address";
    case ARES_ESERVFAIL:
        return "name server failure (SERVFAIL)";
    case ARES_EREFUSED:
        return "name server refused the query (REFUSED)";
    case ARES_ETIMEOUT:
        return "timeout while asking the name servers";
    case ARES_ECONNREFUSED:
        /* c-ares 1.18 says this when every server failed, whether it answered SERVFAIL or
         * REFUSED (it then tries the next one) or could not be reached at all. */
        return "no usable answer from the name servers (SERVFAIL, REFUSED or unreachable)";
    case ARES_EBADRESP:
    case ARES_EFORMERR:
        return "malformed answer";
    case ARES_EBADNAME:
        return "invalid name";
    default:
        return ares_strerror(status);
    }
}

/* c-ares takes a port above 65535 modulo 2^16 without a word. */
static bool dns_server_port_ok(const char *server)
{
    const char *colon = NULL;
    if (server[0] == '[') {
        const char *end = strchr(server, ']');
        if (!end)
            return false;
        colon = end[1] == ':' ? end + 1 : NULL;
    } else if (strchr(server, ':') == strrchr(server, ':')) {
        colon = strchr(server, ':'); /* IPv4:port; several colons are a bare IPv6 address */
    }
    if (!colon)
        return true;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return colon[1] >= '0' && colon[1] <= '9' && !*end && port >= 1 && port <= 65535;
}

/* Each entry alone first, so an error names the one c-ares (or we) refused. */
static int dns_servers_set(struct dns *d, const struct dns_settings *s, char *err, size_t errlen)
{
    size_t len = 1;
    for (size_t i = 0; i < s->n_servers; i++) {
        const char *server = s->servers[i];
        if (!server[0] || strchr(server, ',') || !dns_server_port_ok(server) ||
            ares_set_servers_ports_csv(d->channel, server) != ARES_SUCCESS) {
            snprintf(err, errlen,
                     "dns.servers: invalid server address \"%s\" (want 127.0.0.1, "
                     "127.0.0.1:5353, ::1 or [::1]:53)",
                     server);
            return -1;
        }
        len += strlen(server) + 1;
    }
    char *csv = malloc(len);
    if (!csv) {
        snprintf(err, errlen, "dns: out of memory");
        return -1;
    }
    csv[0] = '\0';
    for (size_t i = 0; i < s->n_servers; i++) {
        if (i)
            strcat(csv, ",");
        strcat(csv, s->servers[i]);
    }
    int rc = ares_set_servers_ports_csv(d->channel, csv);
    free(csv);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "dns.servers: %s", ares_strerror(rc));
        return -1;
    }
    return 0;
}

struct dns *dns_new(struct engine_worker *w, const struct dns_settings *s, char *err, size_t errlen)
{
    pthread_once(&dns_library_once, dns_library_init);
    if (dns_library_status != ARES_SUCCESS) {
        snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(dns_library_status));
        return NULL;
    }
    struct dns *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "dns: out of memory");
        return NULL;
    }
    d->w = w;
    if (getrandom(&d->random, sizeof d->random, GRND_NONBLOCK) != sizeof d->random)
        d->random = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)d;
    char lookups[] = "fb"; /* /etc/hosts, then DNS: what the system resolver does */
    struct ares_options o = {
        .timeout = s->timeout_ms ? (int)s->timeout_ms : DNS_DEFAULT_TIMEOUT_MS,
        .tries = s->tries ? (int)s->tries : DNS_DEFAULT_TRIES,
        .lookups = lookups,
        .ndomains = 0, /* no search list: a mail domain is always fully qualified */
        .sock_state_cb = dns_io_sock_state,
        .sock_state_cb_data = d,
    };
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS |
               ARES_OPT_SOCK_STATE_CB;
    int rc = ares_init_options(&d->channel, &o, mask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "dns: cannot start the resolver: %s", ares_strerror(rc));
        free(d);
        return NULL;
    }
    ares_set_socket_functions(d->channel, &dns_io_socket_functions, d);
    if (s->n_servers && dns_servers_set(d, s, err, errlen) < 0) {
        ares_destroy(d->channel);
        free(d);
        return NULL;
    }
    d->timer.fire = dns_io_timer_fired;
    return d;
}

static void dns_query_free(struct dns_query *q)
{
    struct dns *d = q->d;
    *(q->prev ? &q->prev->next : &d->queries) = q->next;
    if (q->next)
        q->next->prev = q->prev;
    for (size_t i = 0; i < q->n_hosts; i++) {
        free(q->hosts[i].name);
        free(q->hosts[i].addrs);
    }
    free(q->hosts);
    free(q->result.hosts);
    free(q);
}

void dns_free(struct dns *d)
{
    if (!d)
        return;
    d->destroying = true;
    engine_timer_disarm(d->w, &d->timer);
    /* Every pending c-ares callback runs now (ARES_EDESTRUCTION) and every socket is
     * closed through dns_io (a socket with a poll in flight once the poll is cancelled). */
    ares_destroy(d->channel);
    while (d->queries)
        dns_query_free(d->queries);
    free(d);
}

static void dns_query_done(struct dns_query *q, enum dns_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dns_query_done(struct dns_query *q, enum dns_status st, const char *fmt, ...)
{
    q->result.status = st;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(q->result.error, sizeof q->result.error, fmt, ap);
        va_end(ap);
    }
    q->done = true;
    *(q->d->done_tail ? &q->d->done_tail->done_next : &q->d->done_head) = q;
    q->d->done_tail = q;
}

/* Every address lookup has answered: the result is the hosts that have addresses. */
static void dns_query_complete(struct dns_query *q)
{
    q->result.hosts = calloc(q->n_hosts, sizeof *q->result.hosts);
    if (!q->result.hosts) {
        dns_query_done(q, DNS_TEMPFAIL, "%s: out of memory", q->domain);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < q->n_hosts; i++) {
        const struct dns_qhost *h = &q->hosts[i];
        if (h->n_addrs)
            q->result.hosts[n++] = (struct dns_host){
                .name = h->name, .pref = h->pref, .addrs = h->addrs, .n_addrs = h->n_addrs};
    }
    q->result.n_hosts = n;
    if (n) {
        dns_query_done(q, DNS_OK, NULL);
        return;
    }
    const struct dns_qhost *first = &q->hosts[0];
    bool missing = first->status == ARES_ENOTFOUND || first->status == ARES_ENODATA;
    if (q->with_mx && !q->result.implicit)
        /* sendmail defers when no exchanger has an address: the MX may be fixed soon. */
        dns_query_done(q, DNS_TEMPFAIL, "%s: no address for MX host %s (%s)", q->domain,
                       first->name, dns_ares_reason(first->status));
    else
        dns_query_done(q, missing ? DNS_NOTFOUND : DNS_TEMPFAIL, "%s: %s", first->name,
                       dns_ares_reason(first->status));
}

static void dns_addr_add(struct dns_qhost *h, const struct sockaddr *sa)
{
    size_t salen =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    struct sockaddr_storage ss = {0};
    memcpy(&ss, sa, salen);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&ss)->sin_port = 0;
    for (size_t i = 0; i < h->n_addrs; i++)
        if (memcmp(&h->addrs[i], &ss, sizeof ss) == 0)
            return;
    if (h->n_addrs < DNS_MAX_ADDRS)
        h->addrs[h->n_addrs++] = ss;
}

static void dns_addr_answered(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct dns_qhost *h = arg;
    struct dns_query *q = h->q;
    q->pending--;
    h->status = status;
    if (status == ARES_SUCCESS && res && !q->cancelled && status != ARES_EDESTRUCTION) {
        h->addrs = calloc(DNS_MAX_ADDRS, sizeof *h->addrs);
        if (!h->addrs)
            h->status = ARES_ENOMEM;
        /* IPv6 first, as sendmail orders a host's addresses when both are asked for. */
        static const int order[] = {AF_INET6, AF_INET};
        for (size_t o = 0; h->addrs && o < 2; o++)
            for (const struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
                if (n->ai_family == order[o] && n->ai_addr)
                    dns_addr_add(h, n->ai_addr);
        if (h->status == ARES_SUCCESS && !h->n_addrs)
            h->status = ARES_ENODATA;
    }
    if (res)
        ares_freeaddrinfo(res);
    if (status == ARES_EDESTRUCTION) /* dns_free frees the query */
        return;
    if (q->pending)
        return;
    if (q->cancelled)
        dns_query_free(q);
    else
        dns_query_complete(q);
}

static void dns_hosts_start(struct dns_query *q)
{
    /* We order the addresses ourselves: c-ares' RFC 6724 sort connects a socket per
     * address to learn the source it would use. */
    struct ares_addrinfo_hints hints = {.ai_family = q->family, .ai_flags = ARES_AI_NOSORT};
    q->pending += q->n_hosts; /* an answer given at once must not finish the query early */
    for (size_t i = 0; i < q->n_hosts; i++)
        ares_getaddrinfo(q->d->channel, q->hosts[i].name, NULL, &hints, dns_addr_answered,
                         &q->hosts[i]);
}

static int dns_hosts_alloc(struct dns_query *q, size_t n)
{
    q->hosts = calloc(n, sizeof *q->hosts);
    if (!q->hosts)
        return -1;
    q->n_hosts = 0;
    return 0;
}

static int dns_host_add(struct dns_query *q, const char *name, unsigned pref)
{
    struct dns_qhost *h = &q->hosts[q->n_hosts];
    h->name = strdup(name);
    if (!h->name)
        return -1;
    h->q = q;
    h->pref = pref;
    q->n_hosts++;
    return 0;
}

/* One c-ares lookup of a query (its MX or PTR step) has answered: false when the query
 * is gone (dns_free, which frees it) or cancelled (freed here), and nothing more is to be
 * done with the answer. */
static bool dns_query_answered(struct dns_query *q, int status)
{
    q->pending--;
    if (status == ARES_EDESTRUCTION)
        return false;
    if (q->cancelled) {
        dns_query_free(q);
        return false;
    }
    return true;
}

static void dns_mx_answered(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    struct dns_query *q = arg;
    if (!dns_query_answered(q, status))
        return;
    if (!abuf || alen <= 0) {
        enum dns_status st = status == ARES_ENOTFOUND ? DNS_NOTFOUND : DNS_TEMPFAIL;
        dns_query_done(q, st, "%s: %s", q->domain, dns_ares_reason(status));
        return;
    }
    struct dns_mx_list *mx = malloc(sizeof *mx);
    if (!mx) {
        dns_query_done(q, DNS_TEMPFAIL, "%s: out of memory", q->domain);
        return;
    }
    char why[96];
    enum dns_status st = dns_mx_parse(abuf, (size_t)alen, dns_random(q->d), mx, why, sizeof why);
    if (st != DNS_OK) {
        dns_query_done(q, st, "%s: %s", q->domain, why);
    } else if (q->exists && mx->n) {
        dns_query_done(q, DNS_OK, NULL);
    } else if (dns_hosts_alloc(q, mx->n ? mx->n : 1) < 0) {
        dns_query_done(q, DNS_TEMPFAIL, "%s: out of memory", q->domain);
    } else {
        int rc = 0;
        q->result.implicit = mx->n == 0;
        if (q->result.implicit)
            rc = dns_host_add(q, q->domain, 0);
        for (size_t i = 0; i < mx->n && rc == 0; i++)
            rc = dns_host_add(q, mx->hosts[i].name, mx->hosts[i].pref);
        if (rc < 0)
            dns_query_done(q, DNS_TEMPFAIL, "%s: out of memory", q->domain);
        else
            dns_hosts_start(q);
    }
    free(mx);
}

uint64_t dns_random(struct dns *d)
{
    /* xorshift64*: only shuffles equal MX preferences. */
    d->random ^= d->random >> 12;
    d->random ^= d->random << 25;
    d->random ^= d->random >> 27;
    return d->random * 0x2545f4914f6cdd1dULL;
}

static struct dns_query *dns_query_new(struct dns *d, dns_mx_cb cb, void *arg, const char *what)
{
    struct dns_query *q = calloc(1, sizeof *q);
    if (!q) {
        log_error("dns: out of memory resolving %s", what);
        return NULL;
    }
    q->d = d;
    q->cb = cb;
    q->arg = arg;
    q->next = d->queries;
    if (d->queries)
        d->queries->prev = q;
    d->queries = q;
    return q;
}

static struct dns_query *dns_resolve_start(struct dns *d, const char *domain, bool with_mx,
                                           bool exists, int family, dns_mx_cb cb, void *arg)
{
    struct dns_query *q = dns_query_new(d, cb, arg, domain);
    if (!q)
        return NULL;
    q->with_mx = with_mx;
    q->exists = exists;
    q->family = family;
    size_t len = strlen(domain);
    if (len && domain[len - 1] == '.')
        len--; /* absolute already: no search list is used anyway */
    d->resolving++;
    if (len == 0 || len >= sizeof q->domain) {
        snprintf(q->domain, sizeof q->domain, "%.*s", (int)(sizeof q->domain - 1), domain);
        dns_query_done(q, DNS_NOTFOUND, "%s: invalid domain name", q->domain);
    } else if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) {
        memcpy(q->domain, domain, len);
        dns_query_done(q, DNS_TEMPFAIL, "%s: unsupported address family %d", q->domain, family);
    } else {
        memcpy(q->domain, domain, len);
        if (with_mx) {
            q->pending = 1;
            ares_query(d->channel, q->domain, ns_c_in, ns_t_mx, dns_mx_answered, q);
        } else if (dns_hosts_alloc(q, 1) < 0 || dns_host_add(q, q->domain, 0) < 0) {
            dns_query_done(q, DNS_TEMPFAIL, "%s: out of memory", q->domain);
        } else {
            dns_hosts_start(q);
        }
    }
    dns_io_settle(d); /* still resolving: an answer given at once waits for the loop */
    d->resolving--;
    return q;
}

struct dns_query *dns_resolve(struct dns *d, const char *domain, bool with_mx, int family,
                              dns_mx_cb cb, void *arg)
{
    return dns_resolve_start(d, domain, with_mx, false, family, cb, arg);
}

struct dns_query *dns_resolve_exists(struct dns *d, const char *domain, dns_mx_cb cb, void *arg)
{
    return dns_resolve_start(d, domain, true, true, AF_UNSPEC, cb, arg);
}

int dns_reverse_name(const struct sockaddr *addr, const char *zone, char *out, size_t outlen)
{
    size_t off = 0;
    int n;
    if (addr->sa_family == AF_INET) {
        const unsigned char *b =
            (const unsigned char *)&((const struct sockaddr_in *)addr)->sin_addr;
        n = snprintf(out, outlen, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0],
                     zone ? zone : "in-addr.arpa");
    } else if (addr->sa_family == AF_INET6) {
        const unsigned char *b =
            (const unsigned char *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
        static const char hex[] = "0123456789abcdef";
        if (outlen < 65)
            return -1;
        for (int i = 15; i >= 0; i--) {
            out[off++] = hex[b[i] & 15];
            out[off++] = '.';
            out[off++] = hex[b[i] >> 4];
            out[off++] = '.';
        }
        n = snprintf(out + off, outlen - off, "%s", zone ? zone : "ip6.arpa");
        n = n < 0 ? n : n + (int)off;
    } else {
        return -1;
    }
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* c-ares' gethostbyaddr says ENOTFOUND for every failure of its DNS step: a PTR query of
 * our own tells NXDOMAIN (no name) from a server that failed (try again later). */
static void dns_ptr_classified(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    (void)abuf;
    (void)alen;
    struct dns_query *q = arg;
    if (!dns_query_answered(q, status))
        return;
    bool missing = status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_SUCCESS;
    dns_query_done(q, missing ? DNS_NOTFOUND : DNS_TEMPFAIL, "%s: %s", q->domain,
                   dns_ares_reason(missing ? ARES_ENOTFOUND : status));
}

static void dns_ptr_answered(void *arg, int status, int timeouts, struct hostent *he)
{
    (void)timeouts;
    struct dns_query *q = arg;
    if (!dns_query_answered(q, status))
        return;
    if (status == ARES_ENOTFOUND) {
        char name[80];
        if (dns_reverse_name((const struct sockaddr *)&q->ptr_addr, NULL, name, sizeof name) == 0) {
            q->pending++;
            ares_query(q->d->channel, name, ns_c_in, ns_t_ptr, dns_ptr_classified, q);
            return;
        }
    }
    if (status != ARES_SUCCESS || !he || !he->h_name || !he->h_name[0]) {
        dns_query_done(q, status == ARES_SUCCESS ? DNS_NOTFOUND : DNS_TEMPFAIL, "%s: %s", q->domain,
                       dns_ares_reason(status == ARES_SUCCESS ? ARES_ENODATA : status));
        return;
    }
    q->result.hosts = calloc(1, sizeof *q->result.hosts);
    if (!q->result.hosts || dns_hosts_alloc(q, 1) < 0 || dns_host_add(q, he->h_name, 0) < 0) {
        dns_query_done(q, DNS_TEMPFAIL, "%s: out of memory", q->domain);
        return;
    }
    q->result.hosts[0].name = q->hosts[0].name;
    q->result.n_hosts = 1;
    dns_query_done(q, DNS_OK, NULL);
}

struct dns_query *dns_resolve_ptr(struct dns *d, const struct sockaddr *addr, dns_mx_cb cb,
                                  void *arg)
{
    char text[INET6_ADDRSTRLEN];
    bool v6 = addr->sa_family == AF_INET6;
    const void *raw = v6 ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
                         : (const void *)&((const struct sockaddr_in *)addr)->sin_addr;
    if ((addr->sa_family != AF_INET && !v6) || !inet_ntop(addr->sa_family, raw, text, sizeof text))
        snprintf(text, sizeof text, "?");
    struct dns_query *q = dns_query_new(d, cb, arg, text);
    if (!q)
        return NULL;
    snprintf(q->domain, sizeof q->domain, "%s", text); /* for the error texts */
    d->resolving++;
    if (addr->sa_family != AF_INET && !v6) {
        dns_query_done(q, DNS_TEMPFAIL, "unsupported address family %d", addr->sa_family);
    } else {
        memcpy(&q->ptr_addr, addr, v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
        q->pending = 1;
        ares_gethostbyaddr(d->channel, raw, v6 ? 16 : 4, addr->sa_family, dns_ptr_answered, q);
    }
    dns_io_settle(d);
    d->resolving--;
    return q;
}

void dns_cancel(struct dns_query *q)
{
    if (!q || q->delivering)
        return;
    if (!q->done) {
        q->cancelled = true; /* freed when c-ares has answered everything it was asked */
        return;
    }
    struct dns *d = q->d;
    struct dns_query *prev = NULL;
    for (struct dns_query *p = d->done_head; p; prev = p, p = p->done_next) {
        if (p != q)
            continue;
        *(prev ? &prev->done_next : &d->done_head) = q->done_next;
        if (d->done_tail == q)
            d->done_tail = prev;
        break;
    }
    dns_query_free(q);
}

void dns_deliver(struct dns *d)
{
    while (d->done_head) {
        struct dns_query *q = d->done_head;
        d->done_head = q->done_next;
        if (!d->done_head)
            d->done_tail = NULL;
        q->delivering = true;
        q->cb(q->arg, &q->result);
        dns_query_free(q);
    }
}
