/*
 * util/dns_int.h — what dns.c (queries) and dns_io.c (c-ares' sockets and timer on the
 * engine) share. Not a public header: only util/dns*.c include it.
 */
#ifndef RINGMAIL_UTIL_DNS_INT_H
#define RINGMAIL_UTIL_DNS_INT_H

#include "util/dns.h"
#include "util/engine.h"

#include <ares.h>

#define DNS_DEFAULT_TIMEOUT_MS 5000
#define DNS_DEFAULT_TRIES      2

/* One exchanger (or the name itself) of a query, with its address lookup's outcome. */
struct dns_qhost {
    struct dns_query *q;
    char *name;
    unsigned pref;
    struct sockaddr_storage *addrs; /* DNS_MAX_ADDRS slots once answered */
    size_t n_addrs;
    int status; /* ARES_* of its lookup */
};

struct dns_query {
    struct dns *d;
    dns_mx_cb cb;
    void *arg;
    struct dns_query *prev, *next; /* every query of d (dns_free frees them) */
    struct dns_query *done_next;   /* finished, waiting for its callback */
    unsigned pending;              /* c-ares lookups not answered yet */
    bool with_mx, cancelled, done, delivering;
    bool exists; /* dns_resolve_exists: an MX record is the answer */
    int family;
    char domain[256];
    struct sockaddr_storage ptr_addr; /* dns_resolve_ptr's address */
    struct dns_qhost *hosts;
    size_t n_hosts;
    struct dns_mx_result result; /* result.hosts points into hosts */
};

struct dns_watch;

struct dns {
    struct engine_worker *w;
    ares_channel channel;
    struct engine_timer timer; /* c-ares' next timeout, or now for callbacks to deliver */
    struct dns_query *queries;
    struct dns_query *done_head, *done_tail;
    struct dns_watch *watches; /* c-ares' open sockets */
    unsigned resolving;        /* inside dns_resolve: callbacks wait for the loop */
    bool destroying;
    uint64_t random;
};

/* dns.c */
uint64_t dns_random(struct dns *d);
/* Runs the callbacks of the finished queries. */
void dns_deliver(struct dns *d);

/* dns_io.c */
extern const struct ares_socket_functions dns_io_socket_functions;
void dns_io_sock_state(void *data, ares_socket_t fd, int readable, int writable);
void dns_io_timer_fired(struct engine_timer *t);
/* After every call into c-ares: delivers finished queries (unless inside dns_resolve) and
 * moves the timer to c-ares' next timeout. */
void dns_io_settle(struct dns *d);

#endif
