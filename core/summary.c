#include "core/summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

void summary_listener(const struct config_listener *l, unsigned workers, bool have_certs)
{
    const char *tls = !l->starttls  ? "none (starttls: false)"
                      : !have_certs ? "none (no tls.certificates)"
                                    : "starttls";
    log_info("listening: name=%s, address=%s, port=%u, workers=%u, tls=%s", l->name, l->address,
             (unsigned)l->port, workers, tls);
}

/* The subject's CN out of X509_NAME_oneline()'s "/C=../CN=name/O=..". */
static void summary_cn(const char *subject, char *out, size_t len)
{
    const char *cn = strstr(subject, "/CN=");
    if (!cn) {
        snprintf(out, len, "(none)");
        return;
    }
    cn += 4;
    size_t n = strcspn(cn, "/");
    snprintf(out, len, "%.*s", (int)n, cn);
}

void summary_certs(const struct tls_ctx *ctx)
{
    if (!ctx) {
        log_info("tls: no certificates configured (tls.certificates): STARTTLS not offered");
        return;
    }
    struct tls_cert_info certs[8];
    size_t n = tls_ctx_certs(ctx, certs, 8);
    time_t now = time(NULL);
    for (size_t i = 0; i < n && i < 8; i++) {
        const struct tls_cert_info *c = &certs[i];
        char cn[128], until[32];
        struct tm tm;
        summary_cn(c->subject, cn, sizeof(cn));
        gmtime_r(&c->not_after, &tm);
        strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
        /* Days left, rounded down; an expired one counts the days since, as a negative. */
        long days = (long)((c->not_after - now) / 86400);
        char line[512];
        snprintf(line, sizeof(line),
                 "tls: certificate file=%s, type=%s, cn=%s, not_after=%s, days_left=%ld",
                 c->file ? c->file : "(built-in)", c->type, cn, until, days);
        if (c->not_after <= now)
            log_error("%s: EXPIRED, clients that verify certificates refuse it: renew it", line);
        else if (c->not_after - now < SUMMARY_CERT_WARN_DAYS * 86400)
            log_warn("%s: expires within %d days: renew it", line, SUMMARY_CERT_WARN_DAYS);
        else
            log_info("%s", line);
    }
}

/* config_print()'s text: every key, defaults included, in a stable order. NULL when out of
 * memory. */
static char *summary_text(const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    config_print(c, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The next top-level section of `*at`: its name (up to ':') in name[], its text (the key's
 * line and the indented lines under it) in *start..*end. 0 at the end. */
static int summary_section(const char **at, char *name, size_t namelen, const char **start,
                           const char **end)
{
    const char *p = *at;
    while (*p == '#' || *p == '\n') /* comments and blank lines belong to no section */
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p);
    if (!*p)
        return 0;
    *start = p;
    size_t n = strcspn(p, ":\n");
    snprintf(name, namelen, "%.*s", (int)n, p);
    do
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p);
    while (*p == ' ' || *p == '-');
    *end = p;
    *at = p;
    return 1;
}

/* The text of section `name` in `text`, or NULL. */
static const char *summary_find(const char *text, const char *name, const char **end)
{
    const char *start, *at = text;
    char got[64];
    while (summary_section(&at, got, sizeof(got), &start, end))
        if (strcmp(got, name) == 0)
            return start;
    return NULL;
}

void summary_changes(const struct config *old, const struct config *neu)
{
    char *a = summary_text(old), *b = summary_text(neu);
    if (!a || !b) {
        log_warn("reload: out of memory: cannot say what changed");
        free(a);
        free(b);
        return;
    }
    char changed[512] = "";
    size_t used = 0;
    /* Every section of the new text that the old one lacks or has otherwise, then those
     * the new one no longer has (config_print prints every key, so only a section that is
     * a list can come and go). */
    for (int pass = 0; pass < 2; pass++) {
        const char *from = pass ? a : b, *other = pass ? b : a;
        const char *at = from, *start, *end, *ostart, *oend;
        char name[64];
        while (summary_section(&at, name, sizeof(name), &start, &end)) {
            ostart = summary_find(other, name, &oend);
            if (ostart && pass)
                continue; /* compared in the first pass */
            if (ostart && end - start == oend - ostart &&
                memcmp(start, ostart, (size_t)(end - start)) == 0)
                continue;
            int w =
                snprintf(changed + used, sizeof(changed) - used, "%s%s", used ? ", " : "", name);
            if (w > 0 && (size_t)w < sizeof(changed) - used)
                used += (size_t)w;
        }
    }
    log_info("reload: changed: %s", used ? changed : "nothing");
    free(a);
    free(b);
}

void summary_duration(char *out, size_t len, time_t seconds)
{
    long s = (long)seconds, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    if (d)
        snprintf(out, len, "%ldd%ldh%ldm%lds", d, h, m, s % 60);
    else if (h)
        snprintf(out, len, "%ldh%ldm%lds", h, m, s % 60);
    else if (m)
        snprintf(out, len, "%ldm%lds", m, s % 60);
    else
        snprintf(out, len, "%lds", s % 60);
}
