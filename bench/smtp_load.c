/*
 * bench/smtp_load.c — an SMTP load generator for benchmarks (loopback use).
 *
 * Non-blocking sockets on one epoll per thread, many sessions in flight. Three modes:
 *
 *   msg        connect, banner, EHLO (with --starttls: then STARTTLS, the handshake and EHLO
 *              again over TLS), then per message MAIL / RCPT / DATA / body / "." (optionally
 *              pipelined: MAIL+RCPT+DATA in one write), M messages per connection, QUIT, and
 *              the slot reconnects while there is work left (N messages or D seconds).
 *   handshake  connect, banner, EHLO, STARTTLS, a TLS handshake, QUIT over TLS, reconnect
 *              (N handshakes or D seconds).
 *   idle       open N connections (optionally spread over source addresses 127.0.0.2..),
 *              banner, EHLO (with --starttls: then STARTTLS, the handshake and EHLO again over
 *              TLS), and hold them until a signal or the duration ends.
 *
 * A session is a list of steps driven by replies (conn_on_reply); the bytes go through a
 * small transport table (struct xport), plain or TLS (OpenSSL on the non-blocking socket
 * itself, SSL_set_fd), so STARTTLS message mode (bench issue 5) is one more path through the
 * same steps. Each client thread has its own OSSL_LIB_CTX and SSL_CTX, as the daemon's
 * workers do: OpenSSL 3.0 threads sharing one context lose their handshake rate to locks,
 * and the client must not be slowed by what the benchmark measures in the server.
 * Reports one JSON object on stdout, then one Markdown table row: rates, latency
 * p50/p99/p99.9 (per message: from sending MAIL to the 250 after the dot; per handshake:
 * from the ClientHello to the end of the handshake), errors by kind, the group, server
 * certificate type, cipher and version negotiated (counts), and the client's own CPU time
 * so a run where the client was the bottleneck says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define RBUF_SIZE    2048 /* replies only; a longer single line is an error */
#define SCAN_NS      (100 * 1000000LL)
#define BACKOFF_NS   (50 * 1000000LL)
#define MAX_EVENTS   256
#define CLIENT_BOUND 0.85 /* client CPU share of its threads above which it was the limit */
#define DEFAULT_PORT "2525"
#define DEFAULT_RAMP 512
#define MAX_TALLY    16 /* distinct (group, cert, cipher, version) tuples kept per thread */

enum mode { MODE_MSG, MODE_HANDSHAKE, MODE_IDLE };
static const char *const mode_names[] = {"msg", "handshake", "idle"};

/* What a session waits for (the reply that step's command gets). */
enum step {
    ST_FREE,     /* slot not connected */
    ST_BACKOFF,  /* slot waits before reconnecting after a connect error */
    ST_CONNECT,  /* non-blocking connect in progress */
    ST_BANNER,   /* 220 */
    ST_EHLO,     /* 250 */
    ST_MAIL,     /* 250 */
    ST_RCPT,     /* 250 */
    ST_DATA,     /* 354 */
    ST_DOT,      /* 250 after the body */
    ST_STARTTLS, /* 220 to STARTTLS */
    ST_TLS,      /* TLS handshake in progress */
    ST_QUIT,     /* 221 */
    ST_IDLE,     /* idle mode: held open */
    ST_DONE,     /* slot retired */
};

enum err_kind {
    E_CONNECT, /* connect(2) failed or the connection was refused */
    E_TIMEOUT, /* no reply within --timeout */
    E_REPLY4,  /* a 4xx where success was expected */
    E_REPLY5,  /* a 5xx where success was expected */
    E_REPLYX,  /* an unexpected or malformed reply (wrong 2xx/3xx, garbage, too long) */
    E_CLOSED,  /* the server closed or reset the connection mid-session */
    E_IO,      /* another socket error */
    E_TLS,     /* the TLS handshake failed, or a TLS error after it */
    E_COUNT
};
static const char *const err_names[E_COUNT] = {"connect",     "timeout", "reply_4xx", "reply_5xx",
                                               "reply_other", "closed",  "io",        "tls"};

struct opts {
    enum mode mode;
    const char *host, *port;
    int threads;
    long concurrency; /* msg: sessions in flight; idle: connects in flight */
    long messages;    /* msg: total messages; handshake: total handshakes; 0 = use duration */
    long connections; /* idle: how many to open */
    double duration;  /* seconds, 0 = none */
    double max_time;  /* hard bound on the whole run */
    double timeout;   /* per reply */
    double drain;     /* msg mode: time for messages in flight after the duration */
    long per_conn;    /* messages per connection */
    long size;        /* message size in bytes (headers + body) */
    bool pipelining;
    bool starttls;       /* msg, idle: STARTTLS, handshake and EHLO over TLS first */
    bool resume;         /* offer the last session (ticket) of this thread */
    const char *groups;  /* TLS key-exchange groups to offer, OpenSSL's list syntax */
    const char *sigalgs; /* signature algorithms to allow: picks the server's certificate */
    int tls_version;     /* 0 (1.2 or 1.3), TLS1_2_VERSION or TLS1_3_VERSION */
    const char *from, *to, *ehlo;
    int sources; /* idle/msg: spread over 127.0.0.2 .. 127.0.0.(1+sources) */
    const char *label;
    const char *json_path;
    const char *ready_path; /* idle: written once every connection is up or failed */
    bool md_header;
    bool quiet;
};

static struct opts opt = {
    .mode = MODE_MSG,
    .host = "127.0.0.1",
    .port = DEFAULT_PORT,
    .threads = 1,
    .concurrency = 32,
    .messages = 0,
    .connections = 1000,
    .duration = 0,
    .max_time = 600,
    .timeout = 30,
    .drain = 5,
    .per_conn = 1,
    .size = 1024,
    .from = "bench@client.test",
    .to = "user@bench.test",
    .ehlo = "client.test",
    .label = "",
};

/* ------------------------------------------------------------------ time */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------ samples */

struct samples {
    int64_t *v;
    size_t n, cap;
};

static void samples_add(struct samples *s, int64_t ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        int64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return; /* out of memory: drop the sample, never the run */
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
}

static void samples_merge(struct samples *into, const struct samples *from)
{
    for (size_t i = 0; i < from->n; i++)
        samples_add(into, from->v[i]);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double pct_us(const struct samples *s, double p)
{
    if (s->n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return (double)s->v[rank - 1] / 1000.0;
}

/* ------------------------------------------------------------------ shared state */

static atomic_bool stopping;      /* no new messages, handshakes or connections */
static atomic_bool force_close;   /* drain over: close everything now */
static atomic_long budget;        /* messages or handshakes left to start (with -n) */
static atomic_long idle_settled;  /* idle: attempts that ended up or failed */
static atomic_long idle_up;       /* idle: currently established */
static atomic_long conn_seq;      /* round-robin over source addresses */
static atomic_bool window_closed; /* later completions do not count towards the rates */
static int64_t t_start;

static struct addrinfo *target;

/* The bytes a session sends; shared and immutable, so a connection only keeps a pointer. */
static char *cmd_ehlo, *cmd_mail, *cmd_rcpt, *cmd_txn, *msg_body;
static size_t len_ehlo, len_mail, len_rcpt, len_txn, len_body;
static const char cmd_data[] = "DATA\r\n", cmd_quit[] = "QUIT\r\n", cmd_starttls[] = "STARTTLS\r\n";

/* ------------------------------------------------------------------ per thread */

/* What one TLS handshake negotiated; identical ones are counted together. */
struct tally {
    char group[32], cert[32], cipher[64], version[16];
    long n;
};

struct stats {
    long msgs, msgs_window;   /* accepted: all / inside the measuring window */
    long hs, hs_window;       /* TLS handshakes completed: all / inside the window */
    long resumed;             /* of them, resumed sessions */
    long conns, conns_window; /* TCP connections established */
    long sessions;            /* sessions ended by 221 */
    long err[E_COUNT];
    struct samples lat;   /* msg: MAIL sent -> 250 after the dot; handshake: the handshake */
    struct samples setup; /* connect() -> ready (250 to the last EHLO; handshake: its end) */
    struct tally seen[MAX_TALLY];
    long seen_other; /* handshakes whose tuple did not fit in `seen` */
};

struct worker;

struct xport;

struct conn {
    struct worker *w;
    int fd;
    const struct xport *xp; /* plain until the TLS handshake completes */
    SSL *ssl;               /* from the 220 to STARTTLS on */
    enum step step;
    bool pipelined;   /* this transaction's MAIL/RCPT/DATA went in one write */
    bool server_pipe; /* the server advertised PIPELINING */
    bool in_txn;      /* a message is in flight */
    long done_here;   /* messages on this connection */
    int64_t deadline; /* reply timeout or backoff end, 0 = none */
    int64_t t_connect, t_mail, t_tls;
    const char *out; /* pending output (points into a shared buffer) */
    size_t out_len, out_off;
    bool want_out; /* EPOLLOUT registered */
    size_t rlen;
    char rbuf[RBUF_SIZE];
};

/* Transport: recv/send semantics (bytes, 0 at end of stream, -1 with errno). */
struct xport {
    ssize_t (*recv)(struct conn *c, char *buf, size_t len);
    ssize_t (*send)(struct conn *c, const char *buf, size_t len);
};

static ssize_t plain_recv(struct conn *c, char *buf, size_t len)
{
    return recv(c->fd, buf, len, 0);
}

static ssize_t plain_send(struct conn *c, const char *buf, size_t len)
{
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static const struct xport xport_plain = {plain_recv, plain_send};

/* Map an SSL_read/SSL_write result onto recv/send's. SSL_ERROR_WANT_WRITE from a read (or
 * WANT_READ from a write) is a TLS 1.3 key update at most: on loopback it cannot stall for
 * long, and the level-triggered loop calls again, so EAGAIN is enough for both. */
static ssize_t tls_result(struct conn *c, int n)
{
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            return 0; /* EOF without close_notify */
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_recv(struct conn *c, char *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    return tls_result(c, SSL_read(c->ssl, buf, (int)len));
}

static ssize_t tls_send(struct conn *c, const char *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    return tls_result(c, SSL_write(c->ssl, buf, (int)len));
}

static const struct xport xport_tls = {tls_recv, tls_send};

struct worker {
    int id;
    int ep;
    long nslots;
    long idle_quota; /* idle mode: connections this thread still has to open */
    struct conn *slots;
    OSSL_LIB_CTX *libctx;
    SSL_CTX *ssl_ctx;
    SSL_SESSION *resume; /* --resume: the newest session ticket this thread received; never
                            attached to a connection itself (on_new_session) */
    struct stats st;
    pthread_t thread;
    atomic_bool finished;
};

static void conn_fail(struct conn *c, enum err_kind why);
static void conn_next_message(struct conn *c);

/* ------------------------------------------------------------------ output */

static void conn_set_out(struct conn *c, bool want)
{
    if (c->want_out == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want;
}

/* Write what is pending; false when the connection was closed on an error. */
static bool conn_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = c->xp->send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_out(c, true);
            return true;
        }
        if (n < 0 && errno == EINTR)
            continue;
        conn_fail(c, (n < 0 && (errno == EPIPE || errno == ECONNRESET)) ? E_CLOSED : E_IO);
        return false;
    }
    conn_set_out(c, false);
    return true;
}

/* Queue bytes and wait for the reply of step `next`. Output is always fully written before
 * the reply to it can arrive, so one pending buffer per connection is enough. */
static bool conn_send(struct conn *c, const char *buf, size_t len, enum step next)
{
    c->out = buf;
    c->out_len = len;
    c->out_off = 0;
    c->step = next;
    c->deadline = now_ns() + (int64_t)(opt.timeout * 1e9);
    return conn_flush(c);
}

/* ------------------------------------------------------------------ connections */

/* The session is over (QUIT answered, the run ended, or after an error): free the slot. */
static void conn_end(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->step == ST_IDLE)
        atomic_fetch_sub(&idle_up, 1);
    bool was_connecting = c->step == ST_CONNECT || c->step == ST_BANNER || c->step == ST_EHLO ||
                          c->step == ST_STARTTLS || c->step == ST_TLS;
    if (opt.mode == MODE_IDLE && was_connecting)
        atomic_fetch_add(&idle_settled, 1); /* an attempt that failed */
    c->in_txn = false;
    c->out_len = c->out_off = 0;
    c->rlen = 0;
    c->want_out = false;
    c->step = ST_FREE;
    c->deadline = 0;
}

/* Count an error and end the session; a failed connect waits a little before the next. */
static void conn_fail(struct conn *c, enum err_kind why)
{
    c->w->st.err[why]++;
    conn_end(c);
    if (why == E_CONNECT && opt.mode != MODE_IDLE) {
        c->step = ST_BACKOFF;
        c->deadline = now_ns() + BACKOFF_NS;
    }
}

static bool msg_work_left(void)
{
    if (atomic_load(&stopping))
        return false;
    return opt.messages == 0 || atomic_load(&budget) > 0;
}

/* Claim one unit of work (a message or a handshake); false when there is none left. */
static bool take_work(void)
{
    return msg_work_left() && (opt.messages == 0 || atomic_fetch_sub(&budget, 1) > 0);
}

/* Start a connection in this slot (non-blocking connect). */
static void conn_open(struct conn *c)
{
    struct worker *w = c->w;
    c->done_here = 0;
    c->server_pipe = false;
    c->rlen = 0;
    c->xp = &xport_plain;
    c->fd = socket(target->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->step = ST_CONNECT;
        conn_fail(c, E_CONNECT);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.sources > 0 && target->ai_family == AF_INET) {
        long k = atomic_fetch_add(&conn_seq, 1) % opt.sources;
        struct sockaddr_in src = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)k)};
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
            c->step = ST_CONNECT;
            conn_fail(c, E_CONNECT);
            return;
        }
    }
    c->t_connect = now_ns();
    c->step = ST_CONNECT;
    c->deadline = c->t_connect + (int64_t)(opt.timeout * 1e9);
    c->want_out = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c, E_IO);
        return;
    }
    if (connect(c->fd, target->ai_addr, target->ai_addrlen) < 0 && errno != EINPROGRESS)
        conn_fail(c, E_CONNECT);
}

/* Connect finished (EPOLLOUT while ST_CONNECT). */
static void conn_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        conn_fail(c, E_CONNECT);
        return;
    }
    c->w->st.conns++;
    if (!atomic_load(&window_closed))
        c->w->st.conns_window++;
    c->step = ST_BANNER;
    conn_set_out(c, false);
}

static void conn_next_message(struct conn *c)
{
    bool more = opt.per_conn == 0 || c->done_here < opt.per_conn;
    if (more && take_work()) {
        c->in_txn = true;
        c->t_mail = now_ns();
        c->pipelined = opt.pipelining && c->server_pipe;
        if (c->pipelined)
            conn_send(c, cmd_txn, len_txn, ST_MAIL);
        else
            conn_send(c, cmd_mail, len_mail, ST_MAIL);
        return;
    }
    conn_send(c, cmd_quit, sizeof cmd_quit - 1, ST_QUIT);
}

/* "RSA-2048", "ECDSA-P256", "Ed25519"...: the key of the certificate the server chose. */
static void peer_cert_type(SSL *ssl, char *out, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
    if (!pk)
        snprintf(out, len, "none");
    else if (EVP_PKEY_is_a(pk, "RSA"))
        snprintf(out, len, "RSA-%d", EVP_PKEY_get_bits(pk));
    else if (EVP_PKEY_is_a(pk, "EC"))
        snprintf(out, len, "ECDSA-P%d", EVP_PKEY_get_bits(pk));
    else
        snprintf(out, len, "%s", EVP_PKEY_get0_type_name(pk));
}

/* Count t->n handshakes that negotiated t (per thread, and again when merging the threads). */
static void tally_add(struct stats *st, const struct tally *t)
{
    for (int i = 0; i < MAX_TALLY; i++) {
        struct tally *s = &st->seen[i];
        if (s->n == 0) {
            *s = *t;
            return;
        }
        if (!strcmp(s->group, t->group) && !strcmp(s->cert, t->cert) &&
            !strcmp(s->cipher, t->cipher) && !strcmp(s->version, t->version)) {
            s->n += t->n;
            return;
        }
    }
    st->seen_other += t->n;
}

static void tally_handshake(struct stats *st, SSL *ssl)
{
    struct tally t = {.n = 1};
    int gid = SSL_get_negotiated_group(ssl);
    const char *g = gid ? SSL_group_to_name(ssl, gid) : NULL;
    snprintf(t.group, sizeof t.group, "%s", g ? g : "none");
    /* TLS 1.2 DHE: OpenSSL 3.0 names no group; the server's key says which (ffdhe2048...) */
    EVP_PKEY *pk = NULL;
    if (!g && SSL_get_peer_tmp_key(ssl, &pk) && EVP_PKEY_is_a(pk, "DH") &&
        !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, t.group, sizeof t.group,
                                        NULL))
        snprintf(t.group, sizeof t.group, "DH-%d", EVP_PKEY_get_bits(pk));
    EVP_PKEY_free(pk);
    peer_cert_type(ssl, t.cert, sizeof t.cert);
    snprintf(t.cipher, sizeof t.cipher, "%s", SSL_get_cipher_name(ssl));
    snprintf(t.version, sizeof t.version, "%s", SSL_get_version(ssl));
    tally_add(st, &t);
}

/* The connection is ready for what the mode does with it (after the last EHLO, or after
 * the handshake in handshake mode). */
static void conn_ready(struct conn *c)
{
    samples_add(&c->w->st.setup, now_ns() - c->t_connect);
    if (opt.mode == MODE_IDLE) {
        c->step = ST_IDLE;
        c->deadline = 0;
        atomic_fetch_add(&idle_up, 1);
        atomic_fetch_add(&idle_settled, 1);
    } else if (opt.mode == MODE_HANDSHAKE) {
        conn_send(c, cmd_quit, sizeof cmd_quit - 1, ST_QUIT);
    } else {
        conn_next_message(c);
    }
}

/* Drive the handshake one step; called on every event while ST_TLS. */
static void conn_handshake(struct conn *c)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        struct stats *st = &c->w->st;
        samples_add(&st->lat, now_ns() - c->t_tls);
        st->hs++;
        if (!atomic_load(&window_closed))
            st->hs_window++;
        st->resumed += SSL_session_reused(c->ssl);
        tally_handshake(st, c->ssl);
        c->xp = &xport_tls;
        if (opt.mode == MODE_HANDSHAKE)
            conn_ready(c);
        else
            conn_send(c, cmd_ehlo, len_ehlo,
                      ST_EHLO); /* RFC 3207: everything learnt before is void */
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        conn_set_out(c, false);
        return;
    case SSL_ERROR_WANT_WRITE:
        conn_set_out(c, true);
        return;
    case SSL_ERROR_SYSCALL:
        conn_fail(c, errno == 0 || errno == ECONNRESET || errno == EPIPE ? E_CLOSED : E_IO);
        return;
    default:
        conn_fail(c, E_TLS);
        return;
    }
}

/* 220 to STARTTLS: the socket now carries TLS. */
static void conn_start_tls(struct conn *c)
{
    struct worker *w = c->w;
    c->ssl = SSL_new(w->ssl_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        conn_fail(c, E_TLS);
        return;
    }
    SSL_set_app_data(c->ssl, c);
    SSL_set_connect_state(c->ssl);
    if (opt.resume && w->resume) {
        SSL_SESSION *copy = SSL_SESSION_dup(w->resume);
        if (!copy || !SSL_set_session(c->ssl, copy)) {
            SSL_SESSION_free(copy);
            conn_fail(c, E_TLS);
            return;
        }
        SSL_SESSION_free(copy); /* the SSL holds its own reference */
    }
    c->step = ST_TLS;
    c->deadline = now_ns() + (int64_t)(opt.timeout * 1e9);
    c->t_tls = now_ns();
    conn_handshake(c);
}

/* --resume: keep a copy of the newest ticket of this thread (TLS 1.3 tickets arrive after
 * the handshake, while the client reads the next reply), and offer a copy of it on every
 * new connection. Copies, because OpenSSL marks the session a connection used as not
 * resumable: a TLS 1.3 client removes a session from its cache once it has resumed it
 * ("use TLS 1.3 tickets once"), an OpenSSL server sends no new ticket on a resumption it
 * does not renew, and SSL_free does the same to a session whose connection had no
 * close_notify. Offering the session itself made every other handshake a full one. The
 * server accepts a ticket any number of times while its key lasts. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct conn *c = SSL_get_app_data(ssl);
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    SSL_SESSION_free(sess); /* the reference OpenSSL handed us */
    if (!copy)
        return 1; /* keep the previous ticket */
    SSL_SESSION_free(c->w->resume);
    c->w->resume = copy;
    return 1;
}

/* One complete reply to the command of the current step: check it, send the next one. */
static void conn_on_reply(struct conn *c, int code)
{
    struct stats *st = &c->w->st;
    int want;
    switch (c->step) {
    case ST_BANNER:
    case ST_STARTTLS:
        want = 220;
        break;
    case ST_DATA:
        want = 354;
        break;
    case ST_QUIT:
        want = 221;
        break;
    case ST_EHLO:
    case ST_MAIL:
    case ST_RCPT:
    case ST_DOT:
        want = 250;
        break;
    default:
        want = -1;
        break; /* unsolicited (e.g. 421 while idle) */
    }
    if (code != want) {
        enum err_kind k = code / 100 == 4 ? E_REPLY4 : code / 100 == 5 ? E_REPLY5 : E_REPLYX;
        bool quitting = c->step == ST_QUIT; /* the work is done, the error only noted */
        conn_fail(c, k);
        st->sessions += quitting;
        return;
    }
    switch (c->step) {
    case ST_BANNER:
        conn_send(c, cmd_ehlo, len_ehlo, ST_EHLO);
        return;
    case ST_EHLO:
        if (!opt.starttls || c->ssl)
            conn_ready(c);
        else if (opt.mode != MODE_HANDSHAKE || take_work())
            conn_send(c, cmd_starttls, sizeof cmd_starttls - 1, ST_STARTTLS);
        else
            conn_send(c, cmd_quit, sizeof cmd_quit - 1, ST_QUIT);
        return;
    case ST_STARTTLS:
        conn_start_tls(c);
        return;
    case ST_MAIL:
        if (c->pipelined)
            c->step = ST_RCPT;
        else
            conn_send(c, cmd_rcpt, len_rcpt, ST_RCPT);
        return;
    case ST_RCPT:
        if (c->pipelined)
            c->step = ST_DATA;
        else
            conn_send(c, cmd_data, sizeof cmd_data - 1, ST_DATA);
        return;
    case ST_DATA:
        conn_send(c, msg_body, len_body, ST_DOT);
        return;
    case ST_DOT:
        samples_add(&st->lat, now_ns() - c->t_mail);
        st->msgs++;
        if (!atomic_load(&window_closed))
            st->msgs_window++;
        c->in_txn = false;
        c->done_here++;
        conn_next_message(c);
        return;
    case ST_QUIT:
        st->sessions++;
        /* close_notify before closing, as a real client sends it */
        if (c->ssl)
            SSL_shutdown(c->ssl);
        conn_end(c);
        return;
    default:
        return;
    }
}

/* Parse complete reply lines out of rbuf. */
static void conn_parse(struct conn *c)
{
    size_t pos = 0;
    while (c->fd >= 0 && c->step != ST_TLS) {
        char *nl = memchr(c->rbuf + pos, '\n', c->rlen - pos);
        if (!nl)
            break;
        char *line = c->rbuf + pos;
        size_t llen = (size_t)(nl - line) + 1;
        pos += llen;
        if (llen < 4 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9') {
            conn_fail(c, E_REPLYX);
            return;
        }
        if (c->step == ST_EHLO && llen >= 14 && strncasecmp(line + 4, "PIPELINING", 10) == 0)
            c->server_pipe = true;
        if (line[3] == '-')
            continue;
        conn_on_reply(c, (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
    }
    if (c->fd < 0)
        return;
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    if (c->step == ST_TLS && c->rlen > 0) {
        conn_fail(c, E_REPLYX); /* plaintext after "220 Ready to start TLS" */
        return;
    }
    if (c->rlen == sizeof c->rbuf)
        conn_fail(c, E_REPLYX); /* a reply line longer than we keep */
}

static void conn_readable(struct conn *c)
{
    for (;;) {
        ssize_t n = c->xp->recv(c, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen);
        if (n > 0) {
            c->rlen += (size_t)n;
            conn_parse(c);
            if (c->fd < 0 || c->step == ST_TLS)
                return; /* the handshake reads the socket from here on */
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        conn_fail(c, (n == 0 || errno == ECONNRESET) ? E_CLOSED : E_IO);
        return;
    }
}

static void conn_event(struct conn *c, uint32_t ev)
{
    if (c->step == ST_CONNECT) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(c);
        if (c->fd < 0 || c->step == ST_CONNECT)
            return;
    }
    if (c->step == ST_TLS) {
        conn_handshake(c);
        return;
    }
    if (ev & EPOLLOUT) {
        if (!conn_flush(c))
            return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        conn_readable(c);
}

/* ------------------------------------------------------------------ worker loop */

/* Timeouts, backoff ends, reconnects, and the end of the run. True when this thread is done. */
static bool worker_scan(struct worker *w, int64_t now)
{
    bool stop = atomic_load(&stopping), force = atomic_load(&force_close);
    bool busy = false;
    long connecting = 0; /* idle: connects in flight in this thread */
    if (opt.mode == MODE_IDLE)
        for (long i = 0; i < w->nslots; i++)
            connecting += w->slots[i].fd >= 0 && w->slots[i].step != ST_IDLE;
    for (long i = 0; i < w->nslots; i++) {
        struct conn *c = &w->slots[i];
        if (c->step == ST_DONE)
            continue;
        if (c->fd >= 0 && force) {
            conn_end(c);
        } else if (c->fd >= 0 && c->deadline && now >= c->deadline) {
            conn_fail(c, E_TIMEOUT);
        } else if (c->fd >= 0 && stop && opt.mode == MODE_IDLE) {
            conn_end(c); /* the hold is over */
        }                /* msg mode: a session ends itself with QUIT once there is no work left */
        if (c->step == ST_BACKOFF && now < c->deadline && !stop) {
            busy = true;
            continue;
        }
        if (c->fd < 0) {
            bool again = opt.mode != MODE_IDLE ? msg_work_left() : w->idle_quota > 0 && !stop;
            if (!again) {
                c->step = ST_DONE;
                continue;
            }
            if (opt.mode == MODE_IDLE) {
                /* ramp: at most `concurrency` connects in flight over all threads */
                if (connecting * opt.threads >= opt.concurrency) {
                    busy = true;
                    continue;
                }
                w->idle_quota--;
                connecting++;
            }
            conn_open(c);
        }
        busy = true;
    }
    return !busy;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    int64_t next_scan = 0;
    for (;;) {
        int64_t now = now_ns();
        if (now >= next_scan) {
            if (worker_scan(w, now))
                break;
            next_scan = now + (opt.mode == MODE_IDLE && w->idle_quota > 0 ? SCAN_NS / 10 : SCAN_NS);
        }
        int wait_ms = (int)((next_scan - now) / 1000000) + 1;
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, wait_ms);
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events);
        if (opt.mode != MODE_IDLE) {
            /* refill slots freed by finished sessions at once, not at the next scan */
            for (int i = 0; i < n; i++) {
                struct conn *c = evs[i].data.ptr;
                if (c->step == ST_FREE && c->fd < 0 && msg_work_left())
                    conn_open(c);
            }
        }
    }
    atomic_store(&w->finished, true);
    return NULL;
}

/* ------------------------------------------------------------------ set-up */

static char *xasprintf(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *xasprintf(size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "smtp_load: out of memory\n");
        exit(2);
    }
    *len = (size_t)n;
    return s;
}

/* A message of about `size` bytes: headers, then lines of up to 76 letters (none starts with
 * a dot), then CRLF.CRLF. */
static void build_message(void)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t hlen;
    char *hdr = xasprintf(&hlen,
                          "From: <%s>\r\nTo: <%s>\r\nSubject: smtp_load benchmark\r\n"
                          "Message-ID: <bench@client.test>\r\n"
                          "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
                          opt.from, opt.to);
    size_t want = (size_t)opt.size > hlen ? (size_t)opt.size : hlen;
    msg_body = malloc(want + 8);
    if (!msg_body) {
        fprintf(stderr, "smtp_load: out of memory\n");
        exit(2);
    }
    memcpy(msg_body, hdr, hlen);
    free(hdr);
    size_t p = hlen, k = 0;
    while (p + 2 <= want) {
        size_t line = want - p - 2;
        if (line > 76)
            line = 76;
        for (size_t i = 0; i < line; i++)
            msg_body[p++] = alpha[k++ % (sizeof alpha - 1)];
        msg_body[p++] = '\r';
        msg_body[p++] = '\n';
    }
    memcpy(msg_body + p, ".\r\n", 3);
    len_body = p + 3;
    cmd_ehlo = xasprintf(&len_ehlo, "EHLO %s\r\n", opt.ehlo);
    cmd_mail = xasprintf(&len_mail, "MAIL FROM:<%s> SIZE=%zu\r\n", opt.from, len_body);
    cmd_rcpt = xasprintf(&len_rcpt, "RCPT TO:<%s>\r\n", opt.to);
    cmd_txn = xasprintf(&len_txn, "%s%sDATA\r\n", cmd_mail, cmd_rcpt);
}

static void ssl_die(const char *what, const char *arg)
{
    fprintf(stderr, "smtp_load: %s '%s': ", what, arg);
    ERR_print_errors_fp(stderr);
    fputc('\n', stderr);
    exit(2);
}

/* This thread's client context: no certificate verification (a benchmark on loopback),
 * and only what the options allow, so the server has to pick what is measured. */
static void worker_tls_init(struct worker *w)
{
    w->libctx = OSSL_LIB_CTX_new();
    w->ssl_ctx = w->libctx ? SSL_CTX_new_ex(w->libctx, NULL, TLS_client_method()) : NULL;
    if (!w->ssl_ctx)
        ssl_die("cannot make a TLS context", "client");
    SSL_CTX_set_verify(w->ssl_ctx, SSL_VERIFY_NONE, NULL);
    if (opt.tls_version && (!SSL_CTX_set_min_proto_version(w->ssl_ctx, opt.tls_version) ||
                            !SSL_CTX_set_max_proto_version(w->ssl_ctx, opt.tls_version)))
        ssl_die("cannot set the TLS version", opt.tls_version == TLS1_2_VERSION ? "1.2" : "1.3");
    if (opt.groups && !SSL_CTX_set1_groups_list(w->ssl_ctx, opt.groups))
        ssl_die("bad --groups", opt.groups);
    if (opt.sigalgs && !SSL_CTX_set1_sigalgs_list(w->ssl_ctx, opt.sigalgs))
        ssl_die("bad --sigalgs", opt.sigalgs);
    if (opt.resume) {
        SSL_CTX_set_session_cache_mode(w->ssl_ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(w->ssl_ctx, on_new_session);
    }
}

static void worker_tls_free(struct worker *w)
{
    SSL_SESSION_free(w->resume);
    SSL_CTX_free(w->ssl_ctx);
    OSSL_LIB_CTX_free(w->libctx);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static double rusage_cpu(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: smtp_load [options]\n"
            "  -s, --server HOST:PORT   target (default 127.0.0.1:2525; loopback only)\n"
            "  -M, --mode MODE          msg: message throughput; handshake: STARTTLS handshakes;\n"
            "                           idle: hold idle sessions (default msg)\n"
            "  -c, --concurrency C      msg, handshake: sessions in flight; idle: connects in "
            "flight (default 32 / %d)\n"
            "  -n, --messages N         msg: total messages; handshake: total handshakes "
            "(default: until --duration)\n"
            "  -N, --connections N      idle: connections to open (default 1000)\n"
            "  -d, --duration SEC       msg, handshake: measuring window; idle: how long to hold\n"
            "  -m, --per-conn M         messages per connection (default 1, 0 = unlimited)\n"
            "  -S, --size BYTES         message size, headers + body (default 1024)\n"
            "  -P, --pipelining         send MAIL, RCPT and DATA in one write (if offered)\n"
            "  -t, --threads T          client threads, each with its own epoll (default 1)\n"
            "  -f, --from ADDR          envelope sender (default bench@client.test)\n"
            "  -r, --to ADDR            envelope recipient (default user@bench.test)\n"
            "      --ehlo NAME          EHLO argument (default client.test)\n"
            "      --starttls           msg, idle: STARTTLS, handshake and EHLO over TLS "
            "first\n"
            "      --groups LIST        TLS groups to offer, e.g. X25519 or P-384 (default "
            "OpenSSL's)\n"
            "      --sigalgs LIST       signature algorithms to allow, e.g. "
            "ecdsa_secp256r1_sha256 or\n"
            "                           rsa_pss_rsae_sha256 (chooses a dual-certificate "
            "server's certificate)\n"
            "      --tls VERSION        1.2 or 1.3 only (default: either)\n"
            "      --resume             offer the thread's last session ticket (default: full "
            "handshakes)\n"
            "      --sources K          bind to 127.0.0.2 .. 127.0.0.(K+1), round robin\n"
            "      --timeout SEC        per reply (default 30)\n"
            "      --drain SEC          msg: after the window, time for messages in flight "
            "(default 5)\n"
            "      --max-time SEC       hard bound on the whole run (default 600)\n"
            "      --ready-file PATH    idle: write the established count here once all are "
            "up\n"
            "      --json PATH          also write the JSON result to PATH\n"
            "      --label TEXT         first column of the Markdown row\n"
            "      --md-header          print the Markdown table header before the row\n"
            "  -q, --quiet              no progress lines on stderr\n"
            "  -h, --help               this text\n"
            "Output: one JSON object on stdout, then one Markdown table row.\n"
            "Idle mode holds until SIGINT/SIGTERM/SIGUSR1, --duration or --max-time.\n",
            DEFAULT_RAMP);
}

static double parse_num(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "smtp_load: bad %s '%s' (expected %g..%g)\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    enum {
        O_EHLO = 256,
        O_SOURCES,
        O_TIMEOUT,
        O_DRAIN,
        O_MAXTIME,
        O_READY,
        O_JSON,
        O_LABEL,
        O_MDH,
        O_STARTTLS,
        O_GROUPS,
        O_SIGALGS,
        O_TLS,
        O_RESUME
    };
    static const struct option lo[] = {
        {"server", required_argument, 0, 's'},
        {"mode", required_argument, 0, 'M'},
        {"concurrency", required_argument, 0, 'c'},
        {"messages", required_argument, 0, 'n'},
        {"connections", required_argument, 0, 'N'},
        {"duration", required_argument, 0, 'd'},
        {"per-conn", required_argument, 0, 'm'},
        {"size", required_argument, 0, 'S'},
        {"pipelining", no_argument, 0, 'P'},
        {"threads", required_argument, 0, 't'},
        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 'r'},
        {"ehlo", required_argument, 0, O_EHLO},
        {"sources", required_argument, 0, O_SOURCES},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"drain", required_argument, 0, O_DRAIN},
        {"max-time", required_argument, 0, O_MAXTIME},
        {"ready-file", required_argument, 0, O_READY},
        {"json", required_argument, 0, O_JSON},
        {"label", required_argument, 0, O_LABEL},
        {"md-header", no_argument, 0, O_MDH},
        {"starttls", no_argument, 0, O_STARTTLS},
        {"groups", required_argument, 0, O_GROUPS},
        {"sigalgs", required_argument, 0, O_SIGALGS},
        {"tls", required_argument, 0, O_TLS},
        {"resume", no_argument, 0, O_RESUME},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    bool conc_set = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:M:c:n:N:d:m:S:Pt:f:r:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 's': {
            char *hp = strdup(optarg), *colon = strrchr(hp, ':');
            if (!colon || colon == hp || !colon[1]) {
                fprintf(stderr, "smtp_load: --server wants HOST:PORT\n");
                exit(2);
            }
            *colon = '\0';
            opt.port = colon + 1;
            if (hp[0] == '[' && colon[-1] == ']') {
                colon[-1] = '\0';
                hp++;
            }
            opt.host = hp;
            break;
        }
        case 'M': {
            size_t m = 0;
            while (m < sizeof mode_names / sizeof *mode_names && strcmp(optarg, mode_names[m]))
                m++;
            if (m == sizeof mode_names / sizeof *mode_names) {
                fprintf(stderr, "smtp_load: --mode is msg, handshake or idle\n");
                exit(2);
            }
            opt.mode = (enum mode)m;
            break;
        }
        case 'c':
            opt.concurrency = (long)parse_num("concurrency", optarg, 1, 1e6);
            conc_set = true;
            break;
        case 'n':
            opt.messages = (long)parse_num("messages", optarg, 0, 1e12);
            break;
        case 'N':
            opt.connections = (long)parse_num("connections", optarg, 1, 1e7);
            break;
        case 'd':
            opt.duration = parse_num("duration", optarg, 0, 86400);
            break;
        case 'm':
            opt.per_conn = (long)parse_num("per-conn", optarg, 0, 1e9);
            break;
        case 'S':
            opt.size = (long)parse_num("size", optarg, 0, 1e9);
            break;
        case 'P':
            opt.pipelining = true;
            break;
        case 't':
            opt.threads = (int)parse_num("threads", optarg, 1, 256);
            break;
        case 'f':
            opt.from = optarg;
            break;
        case 'r':
            opt.to = optarg;
            break;
        case 'q':
            opt.quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case O_EHLO:
            opt.ehlo = optarg;
            break;
        case O_SOURCES:
            opt.sources = (int)parse_num("sources", optarg, 0, 250);
            break;
        case O_TIMEOUT:
            opt.timeout = parse_num("timeout", optarg, 0.001, 3600);
            break;
        case O_DRAIN:
            opt.drain = parse_num("drain", optarg, 0, 3600);
            break;
        case O_MAXTIME:
            opt.max_time = parse_num("max-time", optarg, 0.1, 86400);
            break;
        case O_READY:
            opt.ready_path = optarg;
            break;
        case O_JSON:
            opt.json_path = optarg;
            break;
        case O_LABEL:
            if (strpbrk(optarg, "\"\\|")) {
                fprintf(stderr, "smtp_load: --label may not contain quotes, backslashes or |\n");
                exit(2);
            }
            opt.label = optarg;
            break;
        case O_MDH:
            opt.md_header = true;
            break;
        case O_STARTTLS:
            opt.starttls = true;
            break;
        case O_GROUPS:
            opt.groups = optarg;
            break;
        case O_SIGALGS:
            opt.sigalgs = optarg;
            break;
        case O_TLS:
            if (strcmp(optarg, "1.2") == 0) {
                opt.tls_version = TLS1_2_VERSION;
            } else if (strcmp(optarg, "1.3") == 0) {
                opt.tls_version = TLS1_3_VERSION;
            } else {
                fprintf(stderr, "smtp_load: --tls is 1.2 or 1.3\n");
                exit(2);
            }
            break;
        case O_RESUME:
            opt.resume = true;
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (opt.mode == MODE_IDLE && !conc_set)
        opt.concurrency = DEFAULT_RAMP;
    if (opt.mode != MODE_IDLE && opt.messages == 0 && opt.duration == 0) {
        fprintf(stderr, "smtp_load: %s mode needs --messages or --duration\n",
                mode_names[opt.mode]);
        exit(2);
    }
    if (opt.mode == MODE_HANDSHAKE)
        opt.starttls = true;
    if (opt.resume && !opt.starttls) {
        fprintf(stderr, "smtp_load: --resume needs TLS (handshake mode or --starttls)\n");
        exit(2);
    }
}

/* ------------------------------------------------------------------ report */

static void report(struct stats *tot, double elapsed, double window, double cpu_user,
                   double cpu_sys, long established, long peak_up)
{
    qsort(tot->lat.v, tot->lat.n, sizeof *tot->lat.v, cmp_i64);
    qsort(tot->setup.v, tot->setup.n, sizeof *tot->setup.v, cmp_i64);
    double cpu = cpu_user + cpu_sys;
    double util = elapsed > 0 ? cpu / (elapsed * opt.threads) : 0;
    bool bound = util >= CLIENT_BOUND;
    double mps = window > 0 ? (double)tot->msgs_window / window : 0;
    double hps = window > 0 ? (double)tot->hs_window / window : 0;
    double cps = window > 0 ? (double)tot->conns_window / window : 0;
    long errs = 0;
    for (int i = 0; i < E_COUNT; i++)
        errs += tot->err[i];

    char *json = NULL;
    size_t json_len = 0;
    FILE *js = open_memstream(&json, &json_len);
    if (!js) {
        fprintf(stderr, "smtp_load: out of memory\n");
        exit(2);
    }
    fprintf(js,
            "{\"tool\":\"smtp_load\",\"mode\":\"%s\",\"label\":\"%s\",\"server\":\"%s:%s\","
            "\"threads\":%d,\"concurrency\":%ld,\"per_conn\":%ld,\"size\":%ld,\"body_bytes\":%zu,"
            "\"pipelining\":%s,\"duration_s\":%.3f,\"window_s\":%.3f,\"elapsed_s\":%.3f,"
            "\"messages\":%ld,\"messages_window\":%ld,\"msgs_per_s\":%.1f,"
            "\"connections\":%ld,\"conns_per_s\":%.1f,\"sessions\":%ld,"
            "\"idle_requested\":%ld,\"idle_established\":%ld,\"idle_peak\":%ld,"
            "\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},"
            "\"setup_us\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f},",
            mode_names[opt.mode], opt.label, opt.host, opt.port, opt.threads, opt.concurrency,
            opt.per_conn, opt.size, len_body, opt.pipelining ? "true" : "false", opt.duration,
            window, elapsed, tot->msgs, tot->msgs_window, mps, tot->conns, cps, tot->sessions,
            opt.mode == MODE_IDLE ? opt.connections : 0, established, peak_up, tot->lat.n,
            pct_us(&tot->lat, 50), pct_us(&tot->lat, 99), pct_us(&tot->lat, 99.9),
            pct_us(&tot->lat, 100), tot->setup.n, pct_us(&tot->setup, 50), pct_us(&tot->setup, 99),
            pct_us(&tot->setup, 99.9));
    if (opt.starttls) {
        fprintf(js,
                "\"tls\":{\"groups\":\"%s\",\"sigalgs\":\"%s\",\"version\":\"%s\",\"resume\":%s,"
                "\"handshakes\":%ld,\"handshakes_window\":%ld,\"handshakes_per_s\":%.1f,"
                "\"resumed\":%ld,\"negotiated_other\":%ld,\"negotiated\":[",
                opt.groups ? opt.groups : "", opt.sigalgs ? opt.sigalgs : "",
                opt.tls_version == TLS1_2_VERSION   ? "1.2"
                : opt.tls_version == TLS1_3_VERSION ? "1.3"
                                                    : "",
                opt.resume ? "true" : "false", tot->hs, tot->hs_window, hps, tot->resumed,
                tot->seen_other);
        for (int i = 0; i < MAX_TALLY && tot->seen[i].n; i++)
            fprintf(js,
                    "%s{\"group\":\"%s\",\"cert\":\"%s\",\"cipher\":\"%s\",\"version\":\"%s\","
                    "\"n\":%ld}",
                    i ? "," : "", tot->seen[i].group, tot->seen[i].cert, tot->seen[i].cipher,
                    tot->seen[i].version, tot->seen[i].n);
        fputs("]},", js);
    }
    fputs("\"errors\":{", js);
    for (int i = 0; i < E_COUNT; i++)
        fprintf(js, "%s\"%s\":%ld", i ? "," : "", err_names[i], tot->err[i]);
    fprintf(js,
            "},\"errors_total\":%ld,\"client_cpu_s\":{\"user\":%.3f,\"sys\":%.3f},"
            "\"client_cpu_util\":%.3f,\"client_bound\":%s}",
            errs, cpu_user, cpu_sys, util, bound ? "true" : "false");
    if (fclose(js) != 0) {
        fprintf(stderr, "smtp_load: out of memory\n");
        exit(2);
    }
    puts(json);
    if (opt.json_path) {
        FILE *f = fopen(opt.json_path, "w");
        if (f) {
            fprintf(f, "%s\n", json);
            fclose(f);
        } else {
            fprintf(stderr, "smtp_load: cannot write %s: %s\n", opt.json_path, strerror(errno));
        }
    }
    free(json);

    char errtxt[256] = "0";
    if (errs) {
        size_t off = 0;
        for (int i = 0; i < E_COUNT; i++)
            if (tot->err[i] && off < sizeof errtxt)
                off += (size_t)snprintf(errtxt + off, sizeof errtxt - off, "%s%s %ld",
                                        off ? ", " : "", err_names[i], tot->err[i]);
    }
    char seen[512] = "";
    for (size_t i = 0, off = 0; i < MAX_TALLY && tot->seen[i].n && off < sizeof seen; i++)
        off += (size_t)snprintf(seen + off, sizeof seen - off, "%s%s %s %s %s: %ld", i ? "; " : "",
                                tot->seen[i].group, tot->seen[i].cert, tot->seen[i].cipher,
                                tot->seen[i].version, tot->seen[i].n);
    if (opt.mode == MODE_MSG) {
        if (opt.md_header)
            printf("| run | conc | msgs/conn | msgs | msgs/s | conns/s | TLS handshakes | "
                   "p50 ms | p99 ms | p99.9 ms | negotiated | errors | client CPU |\n"
                   "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n");
        printf("| %s | %ld | %ld | %ld | %.0f | %.0f | %ld | %.2f | %.2f | %.2f | %s | %s | "
               "%.0f%%%s |\n",
               opt.label, opt.concurrency, opt.per_conn, tot->msgs_window, mps, cps, tot->hs,
               pct_us(&tot->lat, 50) / 1000, pct_us(&tot->lat, 99) / 1000,
               pct_us(&tot->lat, 99.9) / 1000, seen, errtxt, util * 100, bound ? " (bound)" : "");
    } else if (opt.mode == MODE_HANDSHAKE) {
        if (opt.md_header)
            printf("| run | conc | handshakes | handshakes/s | resumed | p50 ms | p99 ms | "
                   "p99.9 ms | negotiated | errors | client CPU |\n"
                   "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n");
        printf("| %s | %ld | %ld | %.0f | %ld | %.2f | %.2f | %.2f | %s | %s | %.0f%%%s |\n",
               opt.label, opt.concurrency, tot->hs_window, hps, tot->resumed,
               pct_us(&tot->lat, 50) / 1000, pct_us(&tot->lat, 99) / 1000,
               pct_us(&tot->lat, 99.9) / 1000, seen, errtxt, util * 100, bound ? " (bound)" : "");
    } else {
        if (opt.md_header)
            printf("| run | requested | established | setup p50 ms | setup p99 ms | errors | "
                   "client CPU |\n|---|---:|---:|---:|---:|---|---:|\n");
        printf("| %s | %ld | %ld | %.2f | %.2f | %s | %.0f%% |\n", opt.label, opt.connections,
               established, pct_us(&tot->setup, 50) / 1000, pct_us(&tot->setup, 99) / 1000, errtxt,
               util * 100);
    }
    if (bound)
        fprintf(stderr,
                "smtp_load: the client used %.0f%% of its %d thread(s): it was the bottleneck\n",
                util * 100, opt.threads);
}

/* ------------------------------------------------------------------ main */

static bool all_finished(struct worker *ws)
{
    for (int i = 0; i < opt.threads; i++)
        if (!atomic_load(&ws[i].finished))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    raise_nofile();
    build_message();

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    int gai = getaddrinfo(opt.host, opt.port, &hints, &target);
    if (gai != 0) {
        fprintf(stderr, "smtp_load: %s:%s: %s\n", opt.host, opt.port, gai_strerror(gai));
        return 2;
    }
    if (opt.messages)
        atomic_store(&budget, opt.messages);

    /* Signals are taken by the main thread only, with sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    long total_slots = opt.mode != MODE_IDLE ? opt.concurrency : opt.connections;
    struct worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    if (!ws)
        return 2;
    double cu0, cs0;
    rusage_cpu(&cu0, &cs0);
    t_start = now_ns();
    for (int i = 0; i < opt.threads; i++) {
        struct worker *w = &ws[i];
        w->id = i;
        if (opt.starttls)
            worker_tls_init(w);
        w->nslots = total_slots / opt.threads + (i < total_slots % opt.threads);
        w->idle_quota = opt.mode == MODE_IDLE ? w->nslots : 0;
        w->slots = calloc((size_t)(w->nslots ? w->nslots : 1), sizeof *w->slots);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!w->slots || w->ep < 0) {
            fprintf(stderr, "smtp_load: out of memory or epoll\n");
            return 2;
        }
        for (long j = 0; j < w->nslots; j++) {
            w->slots[j].w = w;
            w->slots[j].fd = -1;
            w->slots[j].step = ST_FREE;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            fprintf(stderr, "smtp_load: pthread_create failed\n");
            return 2;
        }
    }

    int64_t window_end = opt.duration > 0 ? t_start + (int64_t)(opt.duration * 1e9) : 0;
    int64_t hard_end = t_start + (int64_t)(opt.max_time * 1e9);
    int64_t drain_end = 0;
    bool ready_written = false;
    long peak_up = 0, ready_up = -1;
    int64_t t_end_window = 0;
    for (;;) {
        struct timespec ts = {0, 50 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        int64_t now = now_ns();
        long up = atomic_load(&idle_up);
        if (up > peak_up)
            peak_up = up;
        if (opt.mode == MODE_IDLE && !ready_written &&
            atomic_load(&idle_settled) >= opt.connections) {
            ready_written = true;
            ready_up = up;
            if (!opt.quiet)
                fprintf(stderr, "smtp_load: idle: %ld of %ld established in %.2f s\n", up,
                        opt.connections, (double)(now - t_start) / 1e9);
            if (opt.ready_path) {
                FILE *f = fopen(opt.ready_path, "w");
                if (f) {
                    fprintf(f, "%ld\n", up);
                    fclose(f);
                }
            }
        }
        bool end_window = sig > 0 || (window_end && now >= window_end) || now >= hard_end;
        if (end_window && !atomic_load(&stopping)) {
            t_end_window = now;
            atomic_store(&window_closed, true);
            atomic_store(&stopping, true);
            drain_end = now + (int64_t)(opt.drain * 1e9);
        }
        if (drain_end && (now >= drain_end || now >= hard_end || sig > 0) &&
            !atomic_load(&force_close))
            atomic_store(&force_close, true);
        if (all_finished(ws))
            break;
    }
    int64_t t_stop = now_ns();
    if (!t_end_window)
        t_end_window = t_stop; /* ran out of messages (-n) */
    long established = opt.mode != MODE_IDLE ? 0 : ready_up >= 0 ? ready_up : peak_up;

    struct stats tot = {0};
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(ws[i].thread, NULL);
        struct stats *st = &ws[i].st;
        tot.msgs += st->msgs;
        tot.msgs_window += st->msgs_window;
        tot.hs += st->hs;
        tot.hs_window += st->hs_window;
        tot.resumed += st->resumed;
        for (int k = 0; k < MAX_TALLY && st->seen[k].n; k++)
            tally_add(&tot, &st->seen[k]);
        tot.seen_other += st->seen_other;
        tot.conns += st->conns;
        tot.conns_window += st->conns_window;
        tot.sessions += st->sessions;
        for (int k = 0; k < E_COUNT; k++)
            tot.err[k] += st->err[k];
        samples_merge(&tot.lat, &st->lat);
        samples_merge(&tot.setup, &st->setup);
        if (opt.starttls)
            worker_tls_free(&ws[i]);
    }
    double cu1, cs1;
    rusage_cpu(&cu1, &cs1);
    report(&tot, (double)(t_stop - t_start) / 1e9, (double)(t_end_window - t_start) / 1e9,
           cu1 - cu0, cs1 - cs0, established, peak_up);
    long errs = 0;
    for (int k = 0; k < E_COUNT; k++)
        errs += tot.err[k];
    return errs ? 1 : 0;
}
