/* policy/dnsbl.c — DNSBL answers and replies, as sendmail's dnsbl.m4 and enhdnsbl.m4. */
#include "policy/dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One of enhdnsbl's result patterns against an answer ("127.0.0.2"): dot-separated tokens,
 * sendmail's $- one token, $+ / $* the rest; a trailing dot on either side is ignored. */
static bool dnsbl_match(const char *pattern, const char *answer)
{
    const char *p = pattern, *a = answer;
    for (;;) {
        if (strncmp(p, "$+", 2) == 0 || strncmp(p, "$*", 2) == 0)
            return true;
        size_t plen = strcspn(p, "."), alen = strcspn(a, ".");
        bool one = plen == 2 && strncmp(p, "$-", 2) == 0;
        if (!one && (plen != alen || strncasecmp(p, a, plen) != 0))
            return false;
        if (one && alen == 0)
            return false;
        p += plen;
        a += alen;
        if (*p == '.')
            p++;
        if (*a == '.')
            a++;
        if (!*p || !*a)
            return !*p && !*a;
    }
}

bool dnsbl_listed(const struct sockaddr_storage *addrs, size_t n_addrs, const char *const *results,
                  size_t n_results)
{
    if (!n_results)
        return n_addrs > 0;
    for (size_t i = 0; i < n_addrs; i++) {
        char text[INET6_ADDRSTRLEN];
        const void *raw = addrs[i].ss_family == AF_INET6
                              ? (const void *)&((const struct sockaddr_in6 *)&addrs[i])->sin6_addr
                              : (const void *)&((const struct sockaddr_in *)&addrs[i])->sin_addr;
        if (!inet_ntop(addrs[i].ss_family, raw, text, sizeof text))
            continue;
        for (size_t j = 0; j < n_results; j++)
            if (dnsbl_match(results[j], text))
                return true;
    }
    return false;
}

/* sendmail's right-hand side: quoted strings kept as written, tokens outside quotes joined
 * without the blanks between them, ${client_addr} macros replaced. A message without any
 * quote is plain text (blanks kept). */
static void dnsbl_expand(const char *message, const char *client_addr, char *out, size_t outlen)
{
    static const char *const macros[] = {"$&{client_addr}", "${client_addr}"};
    size_t n = 0;
    bool quoted = false, tokens = strchr(message, '"') != NULL; /* else plain text */
    for (const char *p = message; *p && n + 1 < outlen;) {
        size_t m = 0;
        for (size_t i = 0; i < sizeof macros / sizeof macros[0] && !m; i++)
            if (strncmp(p, macros[i], strlen(macros[i])) == 0)
                m = strlen(macros[i]);
        if (m) {
            n += (size_t)snprintf(out + n, outlen - n, "%s", client_addr);
            if (n >= outlen)
                n = outlen - 1;
            p += m;
        } else if (*p == '"') {
            quoted = !quoted;
            p++;
        } else if (tokens && !quoted && isspace((unsigned char)*p)) {
            p++;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
}

void dnsbl_reply(const char *message, const char *zone, const char *client_addr, bool temp,
                 struct dnsbl_reply *out)
{
    out->code = temp ? 451 : 550;
    snprintf(out->enh, sizeof out->enh, "%s", temp ? "4.4.3" : "5.7.1");
    if (temp) {
        snprintf(out->text, sizeof out->text, "Temporary lookup failure of %s at %s", client_addr,
                 zone);
        return;
    }
    if (!message || !message[0]) {
        snprintf(out->text, sizeof out->text, "Rejected: %s listed at %s", client_addr, zone);
        return;
    }
    char text[sizeof out->text];
    dnsbl_expand(message, client_addr, text, sizeof text);
    const char *t = text;
    if (isdigit((unsigned char)t[0]) && isdigit((unsigned char)t[1]) &&
        isdigit((unsigned char)t[2]) && (t[3] == ' ' || !t[3]) && (t[0] == '4' || t[0] == '5')) {
        out->code = atoi(t);
        t += t[3] ? 4 : 3;
        size_t elen = strspn(t, "0123456789.");
        if (elen >= 5 && elen < sizeof out->enh && t[0] == text[0] && t[1] == '.' &&
            (t[elen] == ' ' || !t[elen])) {
            snprintf(out->enh, sizeof out->enh, "%.*s", (int)elen, t);
            t += elen + (t[elen] == ' ');
        } else {
            snprintf(out->enh, sizeof out->enh, "%c.7.1", text[0]);
        }
    }
    snprintf(out->text, sizeof out->text, "%s", t);
}
