#include "delivery/route.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "smtp/smtp_named_error.h"

#include "util/netaddr.h"

/* Mailers that deliver over SMTP (sendmail's cf/mailer/smtp.m4). */
static const char *const route_smtp_mailers[] = {"smtp", "esmtp", "smtp8", "dsmtp", "relay"};

static bool route_is_smtp_mailer(const char *m)
{
    for (size_t i = 0; i < sizeof(route_smtp_mailers) / sizeof(route_smtp_mailers[0]); i++)
        if (strcmp(m, route_smtp_mailers[i]) == 0)
            return true;
    return false;
}

static bool route_is_known_mailer(const char *m)
{
    return route_is_smtp_mailer(m) || strcmp(m, "local") == 0 || strcmp(m, "error") == 0 ||
           strcmp(m, "lmtp") == 0;
}

static void route_lower_copy(char *out, size_t outlen, const char *in, size_t len)
{
    size_t n = len < outlen - 1 ? len : outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[n] = '\0';
}

static void route_set_error(struct route *out, const char *code, const char *status,
                            const char *text)
{
    out->kind = ROUTE_ERROR;
    snprintf(out->mailer, sizeof(out->mailer), "error");
    snprintf(out->code, sizeof(out->code), "%s", code);
    snprintf(out->status, sizeof(out->status), "%s", status);
    snprintf(out->text, sizeof(out->text), "%s", text);
}

/* "5.7.1" at p: its length, 0 if none. */
static size_t route_dsn_len(const char *p)
{
    size_t a = strspn(p, "0123456789");
    if (a != 1 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
        return 0;
    size_t b = strspn(p + 2, "0123456789");
    if (b < 1 || b > 3 || p[2 + b] != '.')
        return 0;
    size_t c = strspn(p + 3 + b, "0123456789");
    return c >= 1 && c <= 3 ? 3 + b + c : 0;
}

static bool route_is_code(const char *p)
{
    return (p[0] == '4' || p[0] == '5') && isdigit((unsigned char)p[1]) &&
           isdigit((unsigned char)p[2]) && (p[3] == '\0' || p[3] == ' ' || p[3] == '\t');
}

static const char *route_skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '"')
        p++;
    return p;
}

/* The text of an error, without the quotes sendmail's maps allow around it. */
static void route_set_text(struct route *out, const char *p)
{
    p = route_skip_space(p);
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == '"' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= sizeof(out->text))
        n = sizeof(out->text) - 1;
    memmove(out->text, p, n); /* p may point into out->text */
    out->text[n] = '\0';
}

/* "550 5.7.1 text" or "550 text" at p, status possibly known already (from "5.7.1:"). */
static int route_parse_reply(const char *p, struct route *out, char *err, size_t errlen)
{
    p = route_skip_space(p);
    if (!route_is_code(p)) {
        if (!out->status[0]) {
            snprintf(err, errlen,
                     "error: expected a reply code (550, 5.7.1:550) or a name "
                     "(nouser, nohost, unavailable, tempfail, ...)");
            return -1;
        }
        /* "error:5.7.1:text": the code follows from the status's class */
        snprintf(out->code, sizeof(out->code), "%s", out->status[0] == '4' ? "451" : "550");
    } else {
        memcpy(out->code, p, 3);
        out->code[3] = '\0';
        p = route_skip_space(p + 3);
        size_t d = route_dsn_len(p);
        if (!out->status[0] && d && d < sizeof(out->status) &&
            (p[d] == '\0' || p[d] == ' ' || p[d] == '\t' || p[d] == '"')) {
            memcpy(out->status, p, d);
            out->status[d] = '\0';
            p += d;
        }
    }
    if (!out->status[0])
        snprintf(out->status, sizeof(out->status), "%c.0.0", out->code[0]);
    if (out->status[0] != out->code[0]) {
        snprintf(err, errlen, "error: the enhanced status %s and the reply code %s disagree",
                 out->status, out->code);
        return -1;
    }
    route_set_text(out, p);
    return 0;
}

/* What follows "error:" (sendmail's MailerToTriple forms):
 * "5.7.1:550 text", "nouser:text" or "550:text", "550 5.7.1 text", "nouser text". */
static int route_parse_error(const char *p, struct route *out, char *err, size_t errlen)
{
    out->kind = ROUTE_ERROR;
    out->code[0] = out->status[0] = out->text[0] = '\0';
    p = route_skip_space(p);
    size_t d = route_dsn_len(p);
    if (d && p[d] == ':' && d < sizeof(out->status)) {
        memcpy(out->status, p, d);
        out->status[d] = '\0';
        return route_parse_reply(p + d + 1, out, err, errlen);
    }
    size_t w = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    if (w == 0 && strspn(p, "0123456789") == 3 && p[3] == ':') {
        char reply[320]; /* "550:text" reads as "550 text" */
        snprintf(reply, sizeof(reply), "%.3s %s", p, p + 4);
        return route_parse_reply(reply, out, err, errlen);
    }
    if (w == 0)
        return route_parse_reply(p, out, err, errlen);
    const struct smtp_named_error *ne = smtp_named_error(p, w);
    if (ne) {
        const char *rest = route_skip_space(p + w + (p[w] == ':'));
        route_set_error(out, ne->code, ne->dsn, *rest ? rest : ne->text);
        route_set_text(out, out->text);
        return 0;
    }
    snprintf(err, errlen, "error: unknown error name '%.*s'", (int)(w < 32 ? w : 32), p);
    return -1;
}

/* "[host]", "[IPv6:addr]", "[host]:port", "host", "host:port", a bare address literal.
 * `*port_given` says whether a port was written (25 is kept as 0 either way). */
static int route_parse_host(const char *h, struct route *out, bool *port_given, char *err,
                            size_t errlen)
{
    const char *port = NULL;
    size_t len;
    out->mx = true;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (!close) {
            snprintf(err, errlen, "unbalanced '[' in '%s'", h);
            return -1;
        }
        h++;
        if (strncasecmp(h, "IPv6:", 5) == 0)
            h += 5;
        len = (size_t)(close - h);
        out->mx = false;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1]) {
            snprintf(err, errlen, "expected [host] or [host]:port, not '%s'", h - 1);
            return -1;
        }
    } else {
        len = strlen(h);
        const char *colon = strrchr(h, ':');
        /* two colons are an IPv6 literal: no port without brackets */
        if (colon && strchr(h, ':') == colon) {
            port = colon + 1;
            len = (size_t)(colon - h);
        }
    }
    if (len == 0 || len >= sizeof(out->host) || memchr(h, ' ', len) || memchr(h, '\t', len)) {
        snprintf(err, errlen, len ? "bad host name '%s'" : "no host in '%s'", h);
        return -1;
    }
    route_lower_copy(out->host, sizeof(out->host), h, len);
    if (len > 1 && out->host[len - 1] == '.')
        out->host[len - 1] = '\0'; /* mx.example.com. */
    if (netaddr_is_ip(out->host))
        out->mx = false;
    out->port = 0;
    *port_given = port != NULL;
    if (port) {
        char *end;
        long v = strtol(port, &end, 10);
        if (!isdigit((unsigned char)*port) || *end || v < 1 || v > 65535) {
            snprintf(err, errlen, "bad port '%s'", port);
            return -1;
        }
        out->port = v == 25 ? 0 : (uint16_t)v;
    }
    return 0;
}

/* What follows "lmtp:" (Postfix's forms): "unix:/path" or "/path", a unix socket;
 * "inet:host:port", "host:port", "[host]:port", "host" (port 24, RFC 2033's lmtp port).
 * Never an MX lookup: an LMTP server is a host, not a domain's mail exchanger. */
static int route_parse_lmtp(const char *v, struct route *out, char *err, size_t errlen)
{
    out->kind = ROUTE_SMTP;
    if (strncasecmp(v, "unix:", 5) == 0 || *v == '/') {
        const char *path = *v == '/' ? v : v + 5;
        size_t n = strlen(path);
        if (*path != '/' || n >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
            n >= sizeof(out->host) || strpbrk(path, " \t")) {
            snprintf(err, errlen,
                     "lmtp: expected an absolute socket path of at most %zu octets, not '%s'",
                     sizeof(((struct sockaddr_un *)0)->sun_path) - 1, path);
            return -1;
        }
        memcpy(out->host, path, n + 1); /* a path keeps its case */
        out->unix_socket = true;
        return 0;
    }
    if (strncasecmp(v, "inet:", 5) == 0)
        v += 5;
    if (!*v) {
        snprintf(err, errlen, "lmtp: expected unix:/path, /path or host:port");
        return -1;
    }
    bool port_given;
    if (route_parse_host(v, out, &port_given, err, errlen) < 0)
        return -1;
    out->mx = false;
    if (!port_given)
        out->port = ROUTE_LMTP_PORT;
    return 0;
}

int route_parse(const char *value, const char *default_mailer, const char *domain,
                struct route *out, char *err, size_t errlen)
{
    const char *source = out->source;
    memset(out, 0, sizeof(*out));
    out->source = source;
    value = route_skip_space(value);
    size_t m = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    char mailer[sizeof(out->mailer)];
    route_lower_copy(mailer, sizeof(mailer), value, m);
    /* "mailhub:2525" is a host and a port when a default mailer allows a bare host; with
     * none (the mailertable) the part before ':' is always the mailer. */
    bool has_mailer = m > 0 && m < sizeof(mailer) && value[m] == ':' &&
                      (!default_mailer || route_is_known_mailer(mailer));
    const char *rest = has_mailer ? value + m + 1 : value;
    if (!has_mailer) {
        if (!default_mailer) {
            snprintf(err, errlen, "expected mailer:host, like esmtp:[mx.example.com]");
            return -1;
        }
        snprintf(mailer, sizeof(mailer), "%s", default_mailer);
    }
    snprintf(out->mailer, sizeof(out->mailer), "%s", mailer);
    if (strcmp(mailer, "error") == 0)
        return route_parse_error(rest, out, err, errlen);
    if (strcmp(mailer, "local") == 0) {
        out->kind = ROUTE_LOCAL;
        snprintf(out->host, sizeof(out->host), "%s", route_skip_space(rest));
        return 0;
    }
    if (strcmp(mailer, "lmtp") == 0)
        return route_parse_lmtp(route_skip_space(rest), out, err, errlen);
    if (!route_is_smtp_mailer(mailer)) {
        /* a mailer ringmail does not have: defer, so that nothing bounces for it */
        route_set_error(out, "451", "4.3.5", "");
        snprintf(out->text, sizeof(out->text),
                 "Unknown mailer %s (ringmail delivers by smtp, "
                 "esmtp, smtp8, dsmtp, relay, lmtp, local and error)",
                 mailer);
        return 0;
    }
    out->kind = ROUTE_SMTP;
    rest = route_skip_space(rest);
    if (!*rest && domain && *domain)
        rest = domain; /* "esmtp:" = this mailer to the recipient's own domain */
    bool port_given;
    return route_parse_host(rest, out, &port_given, err, errlen);
}

static bool route_in_list(const char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strlen(list[i]) == len && strncasecmp(list[i], s, len) == 0)
            return true;
    return false;
}

/* A value from the configuration that cannot be parsed defers (4.3.5) with the reason. */
static void route_from_value(const char *value, const char *default_mailer, const char *domain,
                             const char *source, struct route *out)
{
    char why[200];
    out->source = source;
    if (route_parse(value, default_mailer, domain, out, why, sizeof(why)) == 0)
        return;
    route_set_error(out, "451", "4.3.5", "");
    snprintf(out->text, sizeof(out->text), "Local configuration error: %s '%s': %s", source, value,
             why);
    out->source = source;
}

static const char *route_mailertable(const struct route_settings *s, const char *domain)
{
    const char *v = s->mailertable(s->mailertable_arg, domain);
    if (domain[0] != '[')
        for (const char *d = strchr(domain, '.'); !v && d; d = strchr(d + 1, '.'))
            v = s->mailertable(s->mailertable_arg, d);
    return v ? v : s->mailertable(s->mailertable_arg, ".");
}

void route_resolve(const struct route_settings *s, const char *rcpt, struct route *out)
{
    memset(out, 0, sizeof(*out));
    const char *at = strrchr(rcpt, '@');
    char domain[ROUTE_HOST_MAX];
    size_t dlen = at ? strlen(at + 1) : 0;
    if (dlen >= sizeof(domain)) {
        route_set_error(out, "550", "5.1.2", "Host unknown (domain name too long)");
        out->source = "mx";
        return;
    }
    route_lower_copy(domain, sizeof(domain), at ? at + 1 : "", dlen);
    if (dlen > 1 && domain[dlen - 1] == '.')
        domain[--dlen] = '\0';
    if (dlen == 0 || route_in_list(s->local_domains, s->n_local_domains, domain, dlen)) {
        size_t ulen = at ? (size_t)(at - rcpt) : strlen(rcpt);
        if (s->mail_hub && *s->mail_hub &&
            !route_in_list(s->local_users, s->n_local_users, rcpt, ulen)) {
            route_from_value(s->mail_hub, "relay", NULL, "mail_hub", out);
            return;
        }
        out->kind = ROUTE_LOCAL;
        snprintf(out->mailer, sizeof(out->mailer), "local");
        out->source = "local_domains";
        return;
    }
    const char *mt = s->mailertable ? route_mailertable(s, domain) : NULL;
    if (mt) {
        route_from_value(mt, NULL, domain, "mailertable", out);
        return;
    }
    if (s->smart_host && *s->smart_host) {
        route_from_value(s->smart_host, "relay", NULL, "smart_host", out);
        return;
    }
    /* a domain literal, user@[192.0.2.1], goes to that address */
    route_from_value(domain, "esmtp", NULL, "mx", out);
}

size_t route_key(const struct route *r, char *out, size_t outlen)
{
    int n;
    if (r->unix_socket)
        n = snprintf(out, outlen, "%s:unix:%s", r->mailer, r->host);
    else if (r->mx && !r->port)
        n = snprintf(out, outlen, "%s:%s", r->mailer, r->host);
    else if (r->mx)
        n = snprintf(out, outlen, "%s:%s:%u", r->mailer, r->host, (unsigned)r->port);
    else if (!r->port)
        n = snprintf(out, outlen, "%s:[%s]", r->mailer, r->host);
    else
        n = snprintf(out, outlen, "%s:[%s]:%u", r->mailer, r->host, (unsigned)r->port);
    return n < 0 ? 0 : (size_t)n;
}
