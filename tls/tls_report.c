/*
 * tls/tls_report.c — `ringmaild --tls-info`: what this build of OpenSSL and this
 * configuration will actually offer, so an operator can check a group name or a
 * certificate before a client finds out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tls/tls_int.h"

static const char *tls_version_name(int v)
{
    switch (v) {
    case 0:
        return "any";
    case TLS1_VERSION:
        return "TLSv1.0";
    case TLS1_1_VERSION:
        return "TLSv1.1";
    case TLS1_2_VERSION:
        return "TLSv1.2";
    case TLS1_3_VERSION:
        return "TLSv1.3";
    default:
        return "none";
    }
}

static void tls_report_cert(const struct tls_cert_info *ci, FILE *out)
{
    char when[32];
    struct tm tm;
    gmtime_r(&ci->not_after, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    long days = (long)((ci->not_after - time(NULL)) / 86400);
    fprintf(out, "  %s%s%s  %s\n", ci->type, ci->curve[0] ? " curve=" : "", ci->curve, ci->file);
    fprintf(out, "    subject: %s\n    issuer:  %s\n", ci->subject, ci->issuer);
    if (ci->not_after <= time(NULL))
        fprintf(out, "    expires: %s (EXPIRED)\n", when);
    else
        fprintf(out, "    expires: %s (expires in %ld days)\n", when, days);
}

void tls_ctx_report(const struct tls_ctx *c, FILE *out)
{
    char providers[256];
    tls_ctx_providers(c, providers, sizeof(providers));
    fprintf(out, "providers: %s\n", providers);
    fprintf(out, "protocols: %s to %s\n", tls_version_name(c->min_version),
            tls_version_name(c->max_version));

    size_t n = tls_ctx_groups(c, NULL, 0);
    struct tls_group_info *g = calloc(n ? n : 1, sizeof(*g));
    if (g) {
        tls_ctx_groups(c, g, n);
        fprintf(out, "groups (%zu):\n", n);
        for (size_t i = 0; i < n; i++)
            fprintf(out, "  %-24s secbits=%-4u tls=%s..%s\n", g[i].name, g[i].secbits,
                    tls_version_name(g[i].min_tls), tls_version_name(g[i].max_tls));
        free(g);
    }

    struct tls_cert_info certs[TLS_MAX_CERTS];
    size_t nc = tls_ctx_certs(c, certs, TLS_MAX_CERTS);
    fprintf(out, "certificates (%zu):\n", nc);
    for (size_t i = 0; i < nc; i++)
        tls_report_cert(&certs[i], out);
}
