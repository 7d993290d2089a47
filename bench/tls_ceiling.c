/*
 * bench/tls_ceiling.c — OpenSSL's own ceiling for one TLS handshake: the server's CPU time.
 *
 * What it measures: complete TLS handshakes (full, or resumed with --resume) between a server
 * and a client that live in this one process and this one thread, joined by a BIO pair (two
 * memory buffers, no sockets, no kernel). Per handshake: SSL_new on both ends, SSL_set_bio,
 * SSL_do_handshake on each end in turn until both have finished, then one SSL_read on the
 * client, which takes in the TLS 1.3 NewSessionTicket messages the server wrote after its
 * Finished (so issuing them is in the server's cost, and --resume can use them) and returns
 * WANT_READ; then both are marked quietly shut down (SSL_set_shutdown, no close_notify: the
 * same on both ends, and a session freed that way stays resumable) and freed.
 *
 * How: one thread runs both ends, so the thread's CPU clock (CLOCK_THREAD_CPUTIME_ID) is
 * read at every switch between server work, client work and this program's own bookkeeping,
 * and each interval is charged to the side that ran in it. The server's share (SSL_new,
 * SSL_set_bio, every SSL_do_handshake step including the tickets, SSL_free) is the figure
 * of interest; the client's is reported beside it.
 *
 * Why the server's CPU only: this is the yardstick for the daemon's server CPU per STARTTLS
 * handshake (ringmaild should stay within 1.25x of it). A daemon's handshake rate on a
 * loopback benchmark depends on the load generator, the kernel and the scheduler; the CPU
 * the server end of OpenSSL itself needs for the same negotiated group, certificate,
 * version and options does not, and nothing a server does can cost less. Rates are given
 * per core: 1e6 / (mean server µs per handshake).
 *
 * Defaults are OpenSSL's (TLS_server_method, default groups, ciphers and ticket count) and
 * each flag adds only what it names. A run stops with an error, and no Markdown row, when
 * a handshake fails or negotiates something other than what was asked (a group outside the
 * offered ones, a certificate the --sigalgs do not name, another version), so a row always
 * measures what its label says.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define PROG         "tls_ceiling"
#define MAX_PAIRS    4
#define MAX_VALUES   8           /* distinct values counted per negotiated property */
#define MAX_FLIGHTS  12          /* turns per end before a handshake counts as stuck */
#define PAIR_BUF     (64 * 1024) /* each direction of the BIO pair: a whole flight fits */
#define WARMUP_MIN   100         /* handshakes of warm-up at least, with --warmup > 0 */
#define MAX_SIGKINDS 16

/* ------------------------------------------------------------------ options */

static struct {
    const char *cert[MAX_PAIRS];
    const char *key[MAX_PAIRS];
    int ncert, nkey;
    const char *groups;        /* client's offer; NULL: OpenSSL's default list */
    const char *server_groups; /* NULL: OpenSSL's default list */
    const char *sigalgs;       /* client's; NULL: OpenSSL's default list */
    int version;
    bool resume;
    bool certreq;
    long tickets; /* -1: OpenSSL's default */
    double seconds;
    long count; /* 0: measure for `seconds` */
    double warmup;
    const char *json_path;
    const char *label;
    bool md_header;
    bool quiet;
} cfg = {.version = TLS1_3_VERSION, .tickets = -1, .seconds = 3, .warmup = 0.3};

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    exit(2);
}

static void usage(FILE *f)
{
    fputs("usage: " PROG " --cert FILE --key FILE [--cert FILE --key FILE ...] [options]\n"
          "Server CPU time per TLS handshake inside OpenSSL itself: server and client in one\n"
          "thread over a BIO pair, the thread's CPU clock charged to the end that ran.\n"
          "      --cert FILE            server certificate chain (PEM, leaf first); 1 to 4, one\n"
          "                             per key type (OpenSSL picks one per handshake)\n"
          "      --key FILE             the private key of the --cert in the same position\n"
          "      --groups LIST          groups the client offers, colon-separated (X25519,\n"
          "                             P-256, P-384, P-521, ffdhe2048; default OpenSSL's);\n"
          "                             naming ffdhe also turns on DHE (dh_auto) in the server\n"
          "      --server-groups LIST   the server's groups (default OpenSSL's)\n"
          "      --sigalgs LIST         the client's signature algorithms, e.g.\n"
          "                             ecdsa_secp384r1_sha384 or rsa_pss_rsae_sha256: chooses\n"
          "                             the certificate, and the one used must match them\n"
          "      --tls 1.2|1.3          the version, pinned on both ends (default 1.3)\n"
          "      --resume               offer the newest ticket the client got (resumptions)\n"
          "      --request-client-cert  the server asks for a client certificate and accepts\n"
          "                             none (the client has none), as sendmail does\n"
          "      --tickets N            TLS 1.3 tickets the server sends (default OpenSSL's)\n"
          "  -d, --duration SEC         measure for SEC seconds (default 3)\n"
          "  -n, --handshakes N         measure N handshakes instead\n"
          "      --warmup SEC           unmeasured handshakes first: SEC seconds and at least\n"
          "                             100 (default 0.3; 0: none)\n"
          "      --json PATH            also write the JSON result to PATH\n"
          "      --label TEXT           name of the run (JSON, first Markdown column)\n"
          "      --md-header            print the Markdown table header before the row\n"
          "  -q, --quiet                no summary line on stderr\n"
          "  -h, --help                 this text\n"
          "Output: one JSON object on stdout, then one Markdown row. Exit status 1, the\n"
          "reason on stderr and in the JSON, no row: a handshake failed or negotiated other\n"
          "than what was asked (group not offered, certificate not of --sigalgs, version,\n"
          "--resume without a resumption). TLS 1.2 notes: an ECDSA certificate needs its\n"
          "curve among --groups (RFC 8422); with ffdhe2048 the client offers no group (OpenSSL\n"
          "3.0 offers ffdhe in TLS 1.3 only), so DHE, whose 2048-bit group the server picks\n"
          "(modp_2048); a resumption has no key exchange (group \"none\").\n",
          f);
}

static double number_arg(const char *opt, const char *s, double min, double max)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
        usage_error("--%s wants a number from %g to %g, not '%s'", opt, min, max, s);
    return v;
}

static void parse_args(int argc, char **argv)
{
    /* Long options without a short form return a letter that "d:n:qh" does not accept. */
    static const struct option longopts[] = {
        {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'K'},
        {"groups", required_argument, NULL, 'G'},
        {"server-groups", required_argument, NULL, 'S'},
        {"sigalgs", required_argument, NULL, 'A'},
        {"tls", required_argument, NULL, 'V'},
        {"resume", no_argument, NULL, 'R'},
        {"request-client-cert", no_argument, NULL, 'Q'},
        {"tickets", required_argument, NULL, 'T'},
        {"duration", required_argument, NULL, 'd'},
        {"handshakes", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'W'},
        {"json", required_argument, NULL, 'J'},
        {"label", required_argument, NULL, 'L'},
        {"md-header", no_argument, NULL, 'M'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    for (;;) {
        int c = getopt_long(argc, argv, "d:n:qh", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'C':
            if (cfg.ncert == MAX_PAIRS)
                usage_error("at most %d certificates", MAX_PAIRS);
            cfg.cert[cfg.ncert++] = optarg;
            break;
        case 'K':
            if (cfg.nkey == MAX_PAIRS)
                usage_error("at most %d keys", MAX_PAIRS);
            cfg.key[cfg.nkey++] = optarg;
            break;
        case 'G':
            cfg.groups = optarg;
            break;
        case 'S':
            cfg.server_groups = optarg;
            break;
        case 'A':
            cfg.sigalgs = optarg;
            break;
        case 'V':
            if (strcmp(optarg, "1.2") == 0)
                cfg.version = TLS1_2_VERSION;
            else if (strcmp(optarg, "1.3") == 0)
                cfg.version = TLS1_3_VERSION;
            else
                usage_error("--tls is 1.2 or 1.3, not '%s'", optarg);
            break;
        case 'R':
            cfg.resume = true;
            break;
        case 'Q':
            cfg.certreq = true;
            break;
        case 'T':
            cfg.tickets = (long)number_arg("tickets", optarg, 0, 16);
            break;
        case 'd':
            cfg.seconds = number_arg("duration", optarg, 0.001, 86400);
            cfg.count = 0;
            break;
        case 'n':
            cfg.count = (long)number_arg("handshakes", optarg, 1, 1e9);
            break;
        case 'W':
            cfg.warmup = number_arg("warmup", optarg, 0, 3600);
            break;
        case 'J':
            cfg.json_path = optarg;
            break;
        case 'L':
            cfg.label = optarg;
            break;
        case 'M':
            cfg.md_header = true;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (cfg.ncert == 0)
        usage_error("--cert and --key are required");
    if (cfg.ncert != cfg.nkey)
        usage_error("%d --cert but %d --key: give them in pairs", cfg.ncert, cfg.nkey);
}

/* ------------------------------------------------------------------ small helpers */

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *version_name(int v)
{
    return v == TLS1_2_VERSION ? "1.2" : "1.3";
}

/* "ECDSA-P256", "RSA-2048", "Ed25519"...: a certificate's key, as the reports spell it. */
static void describe_key(const EVP_PKEY *pk, char *out, size_t len)
{
    char curve[40];
    const char *nist = NULL;
    if (pk == NULL) {
        snprintf(out, len, "none");
    } else if (EVP_PKEY_is_a(pk, "RSA-PSS")) {
        snprintf(out, len, "RSAPSS-%d", EVP_PKEY_get_bits(pk));
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        snprintf(out, len, "RSA-%d", EVP_PKEY_get_bits(pk));
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve,
                                            NULL))
            snprintf(curve, sizeof curve, "%d", EVP_PKEY_get_bits(pk));
        else
            nist = EC_curve_nid2nist(OBJ_sn2nid(curve)); /* "P-256" */
        if (nist != NULL && nist[0] == 'P' && nist[1] == '-')
            snprintf(out, len, "ECDSA-P%s", nist + 2);
        else
            snprintf(out, len, "ECDSA-%s", curve);
    } else {
        /* "ED25519" -> "Ed25519", "ED448" -> "Ed448" */
        snprintf(out, len, "%s", EVP_PKEY_get0_type_name(pk));
        for (char *p = out + 1; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
    }
}

/* ------------------------------------------------------------------ what --sigalgs allow */

/* Each --sigalgs entry names the certificates it can sign with: one exact name
 * ("ECDSA-P384" for ecdsa_secp384r1_sha384), or a family prefix ("RSA-" for the rsae and
 * pkcs1 schemes). An entry this table does not know lifts the check. */
static struct {
    const char *cert[MAX_SIGKINDS];
    bool prefix[MAX_SIGKINDS];
    int n;
    bool any;
} allowed = {.any = true};

static void allow(const char *cert, bool prefix)
{
    if (allowed.n == MAX_SIGKINDS) {
        allowed.any = true;
        return;
    }
    allowed.cert[allowed.n] = cert;
    allowed.prefix[allowed.n] = prefix;
    allowed.n++;
}

static void allowed_from_sigalgs(const char *list)
{
    static const struct {
        const char *sigalg_prefix;
        const char *cert;
        bool prefix;
    } map[] = {
        {"ecdsa_secp256r1_", "ECDSA-P256", false},
        {"ecdsa_secp384r1_", "ECDSA-P384", false},
        {"ecdsa_secp521r1_", "ECDSA-P521", false},
        {"ecdsa_", "ECDSA-", true},
        {"ECDSA+", "ECDSA-", true},
        {"rsa_pss_pss_", "RSAPSS-", true},
        {"rsa_pss_rsae_", "RSA-", true},
        {"rsa_pkcs1_", "RSA-", true},
        {"RSA+", "RSA-", true},
        {"RSA-PSS+", "RSA-", true},
        {"ed25519", "Ed25519", false},
        {"ed448", "Ed448", false},
    };
    allowed.any = false;
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ":");
        bool known = false;
        for (size_t i = 0; i < sizeof map / sizeof map[0] && !known; i++) {
            size_t mlen = strlen(map[i].sigalg_prefix);
            if (mlen <= len && strncasecmp(p, map[i].sigalg_prefix, mlen) == 0) {
                allow(map[i].cert, map[i].prefix);
                known = true;
            }
        }
        if (!known && len > 0)
            allowed.any = true;
        p += len;
        if (*p == ':')
            p++;
    }
}

static bool cert_allowed(const char *cert)
{
    if (allowed.any)
        return true;
    for (int i = 0; i < allowed.n; i++) {
        const char *a = allowed.cert[i];
        if (allowed.prefix[i] ? strncmp(cert, a, strlen(a)) == 0 : strcmp(cert, a) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ counts */

struct count_of {
    char name[48];
    long n;
};

struct counts {
    struct count_of v[MAX_VALUES];
    int used;
    long other; /* beyond MAX_VALUES distinct names */
};

static struct {
    long handshakes;
    long resumed;
    long tickets_received; /* by the client, measured handshakes only */
    int64_t server_ns;
    int64_t client_ns;
    int64_t driver_ns;
    int64_t *per_hs; /* server ns of each measured handshake */
    size_t per_hs_cap;
    struct counts group, cert, cipher, version;
    long errors;
    char error[1024];
} res;

static void count_name(struct counts *c, const char *name)
{
    for (int i = 0; i < c->used; i++) {
        if (strcmp(c->v[i].name, name) == 0) {
            c->v[i].n++;
            return;
        }
    }
    if (c->used == MAX_VALUES) {
        c->other++;
        return;
    }
    snprintf(c->v[c->used].name, sizeof c->v[c->used].name, "%s", name);
    c->v[c->used++].n = 1;
}

static bool keep_sample(int64_t ns)
{
    if ((size_t)res.handshakes == res.per_hs_cap) {
        size_t cap = res.per_hs_cap < 1024 ? 1024 : res.per_hs_cap * 2;
        int64_t *grown = realloc(res.per_hs, cap * sizeof grown[0]);
        if (grown == NULL)
            return false;
        res.per_hs = grown;
        res.per_hs_cap = cap;
    }
    res.per_hs[res.handshakes] = ns;
    return true;
}

/* ------------------------------------------------------------------ the two ends */

struct bench {
    SSL_CTX *server_ctx;
    SSL_CTX *client_ctx;
    BIO *server_bio; /* the two halves of one BIO pair, kept for the whole run */
    BIO *client_bio;
    SSL_SESSION *ticket; /* --resume: the newest session the client was given */
    long tickets;        /* tickets the client received so far */
    char certs[MAX_PAIRS][48];
    int64_t mark; /* the thread's CPU clock when the current interval began */
    int64_t server_ns, client_ns, driver_ns;
    long seq; /* handshakes done, warm-up included */
};

/* The interval since the previous mark ran on behalf of *who. */
static inline void charge(struct bench *b, int64_t *who)
{
    int64_t now = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    *who += now - b->mark;
    b->mark = now;
}

/* Client side: every new session (a TLS 1.3 ticket, or the TLS 1.2 session) is counted,
 * and with --resume the newest is kept to be offered next time. */
static int on_client_session(SSL *ssl, SSL_SESSION *sess)
{
    struct bench *b = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    b->tickets++;
    if (!cfg.resume)
        return 0; /* not kept: OpenSSL drops its reference */
    SSL_SESSION_free(b->ticket);
    b->ticket = sess;
    return 1;
}

/* The server asks for a certificate and accepts whatever comes, nothing included. */
static int accept_any_client(int preverify_ok, X509_STORE_CTX *store)
{
    (void)preverify_ok;
    (void)store;
    return 1;
}

static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record a failed or mismatched handshake: the reason with what was offered goes to
 * stderr (with OpenSSL's error queue) and, shorter, into the JSON. */
static void fail(struct bench *b, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);

    char certs[160] = "";
    for (int i = 0, off = 0; i < cfg.ncert && off < (int)sizeof certs; i++)
        off += snprintf(certs + off, sizeof certs - (size_t)off, "%s%s", i ? "," : "", b->certs[i]);
    bool ecdsa = strstr(certs, "ECDSA-") != NULL;
    res.errors++;
    snprintf(res.error, sizeof res.error,
             "handshake %ld: %s; offered: TLS %s, groups %s, sigalgs %s, server certificates %s, "
             "server groups %s",
             b->seq + 1, what, version_name(cfg.version), cfg.groups ? cfg.groups : "default",
             cfg.sigalgs ? cfg.sigalgs : "default", certs,
             cfg.server_groups ? cfg.server_groups : "default");
    fprintf(stderr, PROG ": %s\n", res.error);
    unsigned long e;
    char line[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, line, sizeof line);
        fprintf(stderr, PROG ":   openssl: %s\n", line);
    }
    if (cfg.version == TLS1_2_VERSION && ecdsa)
        fprintf(stderr, PROG ": note: in TLS 1.2 an ECDSA certificate is usable only if its "
                             "curve is among the client's groups (RFC 8422)\n");
}

static bool load_pairs(struct bench *b)
{
    static const char *const slot_of[] = {"RSA", "RSA-PSS", "EC", "ED25519", "ED448"};
    const char *slots[MAX_PAIRS] = {NULL};
    for (int i = 0; i < cfg.ncert; i++) {
        SSL_CTX *ctx = b->server_ctx;
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg.cert[i]) != 1) {
            fprintf(stderr, PROG ": cannot load certificate chain %s\n", cfg.cert[i]);
            return false;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key[i], SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, PROG ": cannot load private key %s\n", cfg.key[i]);
            return false;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            fprintf(stderr, PROG ": %s is not the key of %s\n", cfg.key[i], cfg.cert[i]);
            return false;
        }
        const EVP_PKEY *pk = X509_get0_pubkey(SSL_CTX_get0_certificate(ctx));
        describe_key(pk, b->certs[i], sizeof b->certs[i]);
        for (size_t s = 0; s < sizeof slot_of / sizeof slot_of[0]; s++)
            if (pk != NULL && EVP_PKEY_is_a(pk, slot_of[s]))
                slots[i] = slot_of[s];
        for (int j = 0; j < i; j++) {
            if (slots[i] != NULL && slots[j] == slots[i]) {
                fprintf(stderr,
                        PROG ": %s (%s) and %s (%s) are both %s keys: OpenSSL keeps one "
                             "certificate per key type, the later would replace the earlier\n",
                        cfg.cert[j], b->certs[j], cfg.cert[i], b->certs[i], slots[i]);
                return false;
            }
        }
    }
    return true;
}

static bool setup(struct bench *b)
{
    b->server_ctx = SSL_CTX_new(TLS_server_method());
    b->client_ctx = SSL_CTX_new(TLS_client_method());
    if (b->server_ctx == NULL || b->client_ctx == NULL) {
        fprintf(stderr, PROG ": SSL_CTX_new failed\n");
        return false;
    }
    SSL_CTX *s = b->server_ctx, *c = b->client_ctx;
    if (!SSL_CTX_set_min_proto_version(s, cfg.version) ||
        !SSL_CTX_set_max_proto_version(s, cfg.version) ||
        !SSL_CTX_set_min_proto_version(c, cfg.version) ||
        !SSL_CTX_set_max_proto_version(c, cfg.version)) {
        fprintf(stderr, PROG ": cannot pin TLS %s\n", version_name(cfg.version));
        return false;
    }
    if (!load_pairs(b))
        return false;
    if (cfg.server_groups != NULL && SSL_CTX_set1_groups_list(s, cfg.server_groups) != 1) {
        fprintf(stderr, PROG ": --server-groups '%s': unknown group\n", cfg.server_groups);
        return false;
    }
    if (cfg.groups != NULL && SSL_CTX_set1_groups_list(c, cfg.groups) != 1) {
        fprintf(stderr, PROG ": --groups '%s': unknown group\n", cfg.groups);
        return false;
    }
    if (cfg.sigalgs != NULL && SSL_CTX_set1_sigalgs_list(c, cfg.sigalgs) != 1) {
        fprintf(stderr, PROG ": --sigalgs '%s': unknown signature algorithm\n", cfg.sigalgs);
        return false;
    }
    if (cfg.sigalgs != NULL)
        allowed_from_sigalgs(cfg.sigalgs);
    /* TLS 1.2 DHE needs parameters; dh_auto sizes them to the certificate's strength. */
    if ((cfg.groups != NULL && strcasestr(cfg.groups, "ffdhe") != NULL) &&
        SSL_CTX_set_dh_auto(s, 1) != 1) {
        fprintf(stderr, PROG ": SSL_CTX_set_dh_auto failed\n");
        return false;
    }
    if (cfg.tickets >= 0 && SSL_CTX_set_num_tickets(s, (size_t)cfg.tickets) != 1) {
        fprintf(stderr, PROG ": SSL_CTX_set_num_tickets failed\n");
        return false;
    }
    if (cfg.certreq) {
        /* A session id context: without one OpenSSL refuses to resume with SSL_VERIFY_PEER
         * (SESSION_ID_CONTEXT_UNINITIALIZED); daemons set one. */
        static const unsigned char sid_ctx[] = "tls_ceiling";
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, accept_any_client);
        if (SSL_CTX_set_session_id_context(s, sid_ctx, sizeof sid_ctx - 1) != 1) {
            fprintf(stderr, PROG ": SSL_CTX_set_session_id_context failed\n");
            return false;
        }
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_app_data(c, b);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_client_session);
    if (BIO_new_bio_pair(&b->server_bio, PAIR_BUF, &b->client_bio, PAIR_BUF) != 1) {
        fprintf(stderr, PROG ": BIO_new_bio_pair failed\n");
        return false;
    }
    return true;
}

static void teardown(struct bench *b)
{
    SSL_SESSION_free(b->ticket);
    BIO_free(b->server_bio);
    BIO_free(b->client_bio);
    SSL_CTX_free(b->server_ctx);
    SSL_CTX_free(b->client_ctx);
}

/* One turn of one end, its CPU time charged to *ns. False when it failed: a step that
 * neither completes the handshake nor waits for the peer's bytes. */
static bool take_turn(struct bench *b, SSL *ssl, bool *done, int64_t *ns, const char *end)
{
    if (*done)
        return true;
    int r = SSL_do_handshake(ssl);
    bool waiting = r != 1 && SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ;
    charge(b, ns);
    *done = r == 1;
    if (*done || waiting)
        return true;
    fail(b, "%s failed in %s", end, SSL_state_string_long(ssl));
    return false;
}

/* The negotiated group's name and NID. TLS 1.2 DHE has no group id in OpenSSL 3.0: the
 * server's ephemeral key names it, and *dh_bits gives its size. A TLS 1.2 resumption has
 * no key exchange (OpenSSL would name the original one's group): "none", NID 0. */
static int negotiated_group(SSL *cli, bool resumed, char *name, size_t len, int *dh_bits)
{
    *dh_bits = 0;
    if (resumed && SSL_version(cli) == TLS1_2_VERSION) {
        snprintf(name, len, "none");
        return 0;
    }
    int nid = SSL_get_negotiated_group(cli);
    const char *n = nid != 0 ? SSL_group_to_name(cli, nid) : NULL;
    if (n != NULL) {
        snprintf(name, len, "%s", n);
        return nid;
    }
    EVP_PKEY *tmp = NULL;
    snprintf(name, len, "none");
    nid = 0;
    if (SSL_get_peer_tmp_key(cli, &tmp) == 1 && tmp != NULL) {
        if (EVP_PKEY_is_a(tmp, "DH"))
            *dh_bits = EVP_PKEY_get_bits(tmp);
        if (!EVP_PKEY_get_utf8_string_param(tmp, OSSL_PKEY_PARAM_GROUP_NAME, name, len, NULL))
            snprintf(name, len, "%s-%d", EVP_PKEY_get0_type_name(tmp), EVP_PKEY_get_bits(tmp));
        nid = OBJ_sn2nid(name);
        EVP_PKEY_free(tmp);
    }
    return nid;
}

/* Whether the client offered the group, by NID as the server received the list. TLS 1.2
 * DHE is different: OpenSSL 3.0 offers ffdhe groups in TLS 1.3 only, so in TLS 1.2
 * "--groups ffdhe2048" offers no group at all (hence no ECDHE), and the server picks the DH
 * parameters alone (dh_auto: the RFC 3526 MODP group as strong as its certificate). That
 * counts as what was asked when --groups names an ffdhe group of the same size. */
static bool group_offered(SSL *srv, int nid, int dh_bits)
{
    if (dh_bits > 0) {
        if (cfg.groups == NULL)
            return true;
        for (const char *p = cfg.groups; (p = strcasestr(p, "ffdhe")) != NULL; p += 5)
            if (atoi(p + 5) == dh_bits)
                return true;
        return false;
    }
    int offered[64];
    int n = SSL_get1_groups(srv, NULL);
    if (n <= 0 || n > (int)(sizeof offered / sizeof offered[0]))
        return false;
    SSL_get1_groups(srv, offered);
    for (int i = 0; i < n; i++)
        if (offered[i] == nid)
            return true;
    return false;
}

/* What was negotiated is what was asked for: version, group among those the client
 * offered (as the server received them), certificate allowed by --sigalgs, and with
 * --resume a resumption every time but the first. */
static bool check_and_count(struct bench *b, SSL *srv, SSL *cli, bool offered, bool measured)
{
    char group[48], cert[48];
    bool resumed = SSL_session_reused(srv) == 1;
    int dh_bits;
    int nid = negotiated_group(cli, resumed, group, sizeof group, &dh_bits);
    describe_key(X509_get0_pubkey(SSL_get0_peer_certificate(cli)), cert, sizeof cert);

    if (SSL_version(cli) != cfg.version || SSL_version(srv) != cfg.version) {
        fail(b, "negotiated %s, not TLS %s", SSL_get_version(cli), version_name(cfg.version));
        return false;
    }
    if (resumed != (SSL_session_reused(cli) == 1)) {
        fail(b, "server and client disagree on whether the session was resumed");
        return false;
    }
    if (nid == 0 && dh_bits == 0) {
        if (!(resumed && cfg.version == TLS1_2_VERSION)) {
            fail(b, "no key exchange group could be determined (%s)", group);
            return false;
        }
    } else if (!group_offered(srv, nid, dh_bits)) {
        fail(b, "negotiated group %s is not among the groups the client offered", group);
        return false;
    }
    if (cfg.resume && b->seq > 0 && !resumed) {
        fail(b, "--resume, but a full handshake: %s",
             offered ? "the server declined the session" : "the client had no ticket");
        return false;
    }
    if (!cert_allowed(cert)) {
        fail(b, "the server used its %s certificate, which --sigalgs %s does not name", cert,
             cfg.sigalgs);
        return false;
    }
    if (measured) {
        res.resumed += resumed;
        count_name(&res.group, group);
        count_name(&res.cert, cert);
        count_name(&res.cipher, SSL_get_cipher_name(cli));
        count_name(&res.version, SSL_get_version(cli));
    }
    return true;
}

/* One handshake. Every interval of this thread's CPU time is charged to the server, the
 * client or the driver (this program's own bookkeeping), by which one ran in it. */
static bool handshake(struct bench *b, bool measured)
{
    SSL *srv = NULL, *cli = NULL;
    bool ok = false;
    int64_t s0 = b->server_ns, c0 = b->client_ns;
    long tickets0 = b->tickets;

    /* Each SSL takes one reference to its half of the pair; the run keeps its own. */
    if (BIO_up_ref(b->server_bio) != 1 || BIO_up_ref(b->client_bio) != 1) {
        fail(b, "BIO_up_ref failed");
        return false;
    }
    charge(b, &b->driver_ns);

    srv = SSL_new(b->server_ctx);
    if (srv != NULL) {
        SSL_set_bio(srv, b->server_bio, b->server_bio);
        SSL_set_accept_state(srv);
    }
    charge(b, &b->server_ns);

    cli = SSL_new(b->client_ctx);
    bool client_ok = cli != NULL, offered = false;
    if (client_ok) {
        SSL_set_bio(cli, b->client_bio, b->client_bio);
        SSL_set_connect_state(cli);
        if (cfg.resume && b->ticket != NULL) {
            /* A copy: OpenSSL's client marks a TLS 1.3 session it resumed as used up. */
            SSL_SESSION *copy = SSL_SESSION_dup(b->ticket);
            client_ok = copy != NULL && SSL_set_session(cli, copy) == 1;
            offered = true;
            SSL_SESSION_free(copy);
        }
    }
    charge(b, &b->client_ns);

    if (srv == NULL || cli == NULL) {
        if (srv == NULL)
            BIO_free(b->server_bio);
        if (cli == NULL)
            BIO_free(b->client_bio);
        fail(b, "SSL_new failed");
        goto out;
    }
    if (!client_ok) {
        fail(b, "cannot offer the saved session");
        goto out;
    }

    bool server_done = false, client_done = false;
    for (int turn = 0; !(server_done && client_done); turn++) {
        if (turn == MAX_FLIGHTS) {
            fail(b, "no progress after %d turns (client: %s; server: %s)", turn,
                 SSL_state_string_long(cli), SSL_state_string_long(srv));
            goto out;
        }
        if (!take_turn(b, cli, &client_done, &b->client_ns, "client") ||
            !take_turn(b, srv, &server_done, &b->server_ns, "server"))
            goto out;
    }

    /* The tickets the server wrote after its handshake: the client takes them in and then
     * has nothing to read (no application data was sent). */
    unsigned char byte;
    int r = SSL_read(cli, &byte, 1);
    bool drained = r <= 0 && SSL_get_error(cli, r) == SSL_ERROR_WANT_READ;
    charge(b, &b->client_ns);
    if (!drained) {
        fail(b, "client reading the session tickets: %s",
             r > 0 ? "unexpected application data" : "error");
        goto out;
    }
    if (BIO_ctrl_pending(b->server_bio) != 0 || BIO_ctrl_pending(b->client_bio) != 0) {
        fail(b, "bytes left unread after the handshake");
        goto out;
    }
    ok = check_and_count(b, srv, cli, offered, measured);
    if (ok && measured)
        res.tickets_received += b->tickets - tickets0;

out:
    charge(b, &b->driver_ns);
    if (srv != NULL) {
        SSL_set_shutdown(srv, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(srv);
    }
    charge(b, &b->server_ns);
    if (cli != NULL) {
        SSL_set_shutdown(cli, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(cli);
    }
    charge(b, &b->client_ns);
    b->seq++;
    if (ok && measured) {
        if (!keep_sample(b->server_ns - s0)) {
            fail(b, "out of memory");
            return false;
        }
        res.handshakes++;
        res.server_ns += b->server_ns - s0;
        res.client_ns += b->client_ns - c0;
    }
    return ok;
}

/* ------------------------------------------------------------------ report */

static void json_string(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_counts(FILE *f, const char *key, const struct counts *c)
{
    fprintf(f, "\"%s\":{", key);
    for (int i = 0; i < c->used; i++) {
        if (i > 0)
            fputc(',', f);
        json_string(f, c->v[i].name);
        fprintf(f, ":%ld", c->v[i].n);
    }
    if (c->other > 0)
        fprintf(f, "%s\"(other)\":%ld", c->used > 0 ? "," : "", c->other);
    fputc('}', f);
}

/* "x25519" when one value was seen, "x25519 900, secp256r1 100" otherwise. */
static void md_counts(FILE *f, const struct counts *c)
{
    if (c->used == 1 && c->other == 0) {
        fputs(c->v[0].name, f);
        return;
    }
    for (int i = 0; i < c->used; i++)
        fprintf(f, "%s%s %ld", i > 0 ? ", " : "", c->v[i].name, c->v[i].n);
    if (c->other > 0)
        fprintf(f, ", other %ld", c->other);
}

static void md_text(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static int cmp_ns(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa;
    int64_t b = *(const int64_t *)pb;
    if (a < b)
        return -1;
    return a > b ? 1 : 0;
}

/* The value below which a fraction q of the sorted samples lie (nearest rank), in µs. */
static double quantile_us(double q)
{
    if (res.handshakes == 0)
        return 0;
    size_t n = (size_t)res.handshakes;
    size_t i = (size_t)(q * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)res.per_hs[i] / 1e3;
}

static void write_json(FILE *f, const struct bench *b, double wall, long warmup_n,
                       double clock_read_ns, long tickets_cfg)
{
    double n = res.handshakes > 0 ? (double)res.handshakes : 1;
    double server_us = (double)res.server_ns / 1e3 / n;
    fputs("{\"tool\":\"" PROG "\",\"label\":", f);
    json_string(f, cfg.label);
    fputs(",\"openssl\":", f);
    json_string(f, OpenSSL_version(OPENSSL_VERSION));
    fputs(",\"certs\":[", f);
    for (int i = 0; i < cfg.ncert; i++) {
        fputs(i > 0 ? "," : "", f);
        json_string(f, b->certs[i]);
    }
    fputs("],\"groups\":", f);
    json_string(f, cfg.groups);
    fputs(",\"server_groups\":", f);
    json_string(f, cfg.server_groups);
    fputs(",\"sigalgs\":", f);
    json_string(f, cfg.sigalgs);
    fprintf(f,
            ",\"tls\":\"%s\",\"resume\":%s,\"request_client_cert\":%s,\"tickets\":%ld,"
            "\"handshakes\":%ld,\"resumed\":%ld,\"tickets_received\":%ld,"
            "\"warmup_handshakes\":%ld,\"seconds\":%.3f,"
            "\"server_cpu_us_per_hs\":%.2f,\"server_cpu_us_p50\":%.2f,"
            "\"server_cpu_us_p99\":%.2f,\"client_cpu_us_per_hs\":%.2f,"
            "\"driver_cpu_us_per_hs\":%.2f,\"server_hs_per_s_one_core\":%.1f,"
            "\"clock_read_ns\":%.0f,\"negotiated\":{",
            version_name(cfg.version), cfg.resume ? "true" : "false",
            cfg.certreq ? "true" : "false", tickets_cfg, res.handshakes, res.resumed,
            res.tickets_received, warmup_n, wall, server_us, quantile_us(0.5), quantile_us(0.99),
            (double)res.client_ns / 1e3 / n, (double)res.driver_ns / 1e3 / n,
            server_us > 0 ? 1e6 / server_us : 0, clock_read_ns);
    json_counts(f, "group", &res.group);
    fputc(',', f);
    json_counts(f, "cert", &res.cert);
    fputc(',', f);
    json_counts(f, "cipher", &res.cipher);
    fputc(',', f);
    json_counts(f, "version", &res.version);
    fprintf(f, "},\"errors\":%ld,\"error\":", res.errors);
    json_string(f, res.errors > 0 ? res.error : NULL);
    fputs("}\n", f);
}

static bool report(const struct bench *b, double wall, long warmup_n, double clock_read_ns)
{
    long tickets_cfg = (long)SSL_CTX_get_num_tickets(b->server_ctx);
    if (res.handshakes > 0)
        qsort(res.per_hs, (size_t)res.handshakes, sizeof res.per_hs[0], cmp_ns);
    write_json(stdout, b, wall, warmup_n, clock_read_ns, tickets_cfg);
    bool ok = true;
    if (cfg.json_path != NULL) {
        FILE *f = fopen(cfg.json_path, "w");
        if (f == NULL) {
            fprintf(stderr, PROG ": %s: %s\n", cfg.json_path, strerror(errno));
            ok = false;
        } else {
            write_json(f, b, wall, warmup_n, clock_read_ns, tickets_cfg);
            if (fclose(f) != 0) {
                fprintf(stderr, PROG ": %s: %s\n", cfg.json_path, strerror(errno));
                ok = false;
            }
        }
    }
    if (res.errors > 0)
        return false; /* no Markdown row for a run that did not measure what it says */

    double n = res.handshakes > 0 ? (double)res.handshakes : 1;
    double server_us = (double)res.server_ns / 1e3 / n;
    if (cfg.md_header)
        fputs("| run | TLS | groups | sigalgs | resume | cert req | tickets | handshakes | "
              "resumed | server µs/hs | server µs p50 | server hs/s (1 core) | client µs/hs | "
              "negotiated |\n"
              "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
              stdout);
    fputs("| ", stdout);
    md_text(stdout, cfg.label != NULL ? cfg.label : "");
    fprintf(stdout, " | %s | ", version_name(cfg.version));
    md_text(stdout, cfg.groups != NULL ? cfg.groups : "default");
    fputs(" | ", stdout);
    md_text(stdout, cfg.sigalgs != NULL ? cfg.sigalgs : "default");
    fprintf(stdout, " | %s | %s | %ld | %ld | %ld | %.1f | %.1f | %.0f | %.1f | ",
            cfg.resume ? "yes" : "no", cfg.certreq ? "yes" : "no", tickets_cfg, res.handshakes,
            res.resumed, server_us, quantile_us(0.5), server_us > 0 ? 1e6 / server_us : 0,
            (double)res.client_ns / 1e3 / n);
    md_counts(stdout, &res.group);
    fputs(", ", stdout);
    md_counts(stdout, &res.cert);
    fputs(", ", stdout);
    md_counts(stdout, &res.cipher);
    fputs(" |\n", stdout);
    if (!cfg.quiet)
        fprintf(stderr, PROG ": %ld handshakes (%ld resumed) in %.2f s: server %.1f µs each\n",
                res.handshakes, res.resumed, wall, server_us);
    return ok;
}

/* ------------------------------------------------------------------ main */

/* The cost of one read of the thread CPU clock, which every switch between the ends pays
 * once (it is a system call: the vDSO does not serve thread clocks). */
static double clock_read_cost(void)
{
    enum { READS = 2000 };
    int64_t t0 = clock_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < READS; i++)
        (void)clock_ns(CLOCK_THREAD_CPUTIME_ID);
    return (double)(clock_ns(CLOCK_MONOTONIC) - t0) / READS;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    struct bench b = {0};
    if (!setup(&b)) {
        ERR_print_errors_fp(stderr);
        teardown(&b);
        return 2;
    }
    double clock_read_ns = clock_read_cost();
    b.mark = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    bool ok = true;
    long warmup_n = 0;
    if (cfg.warmup > 0) {
        int64_t start = clock_ns(CLOCK_MONOTONIC);
        while (ok && (warmup_n < WARMUP_MIN ||
                      (double)(clock_ns(CLOCK_MONOTONIC) - start) / 1e9 < cfg.warmup)) {
            ok = handshake(&b, false);
            warmup_n++;
        }
    }

    int64_t start = clock_ns(CLOCK_MONOTONIC), elapsed = 0;
    int64_t s0 = b.server_ns, c0 = b.client_ns, d0 = b.driver_ns;
    while (ok) {
        elapsed = clock_ns(CLOCK_MONOTONIC) - start;
        if (cfg.count > 0 ? res.handshakes >= cfg.count : (double)elapsed / 1e9 >= cfg.seconds)
            break;
        ok = handshake(&b, true);
    }
    /* Interval totals agree with the per-handshake sums; the driver's are only here. */
    res.driver_ns = b.driver_ns - d0;
    if (ok && (res.server_ns != b.server_ns - s0 || res.client_ns != b.client_ns - c0)) {
        fprintf(stderr, PROG ": internal error: CPU time accounting does not add up\n");
        ok = false;
    }
    bool reported = report(&b, (double)elapsed / 1e9, warmup_n, clock_read_ns);
    teardown(&b);
    free(res.per_hs);
    return ok && reported ? 0 : 1;
}
