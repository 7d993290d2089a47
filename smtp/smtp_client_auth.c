/*
 * smtp/smtp_client_auth.c — AUTH mechanisms for the outbound client
 * (smtp/smtp_client_auth.h).
 */
#include "smtp/smtp_client_auth.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/base64.h"

/* Without M:, the strongest first: CRAM-MD5 never shows the password to the server. */
#define SMTP_CLIENT_AUTH_DEFAULT "CRAM-MD5 PLAIN LOGIN"

static const struct {
    const char *name;
    unsigned bit;
} smtp_client_auth_mechs[] = {
    {"PLAIN", SMTP_AUTH_PLAIN},
    {"LOGIN", SMTP_AUTH_LOGIN},
    {"CRAM-MD5", SMTP_AUTH_CRAM_MD5},
};

#define SMTP_CLIENT_AUTH_N (sizeof(smtp_client_auth_mechs) / sizeof(smtp_client_auth_mechs[0]))

static unsigned smtp_client_auth_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < SMTP_CLIENT_AUTH_N; i++)
        if (strlen(smtp_client_auth_mechs[i].name) == len &&
            strncasecmp(smtp_client_auth_mechs[i].name, name, len) == 0)
            return smtp_client_auth_mechs[i].bit;
    return 0;
}

/* A list of mechanism names (separated by spaces or commas): with `accept` 0 the union of
 * the bits it names; otherwise the first named bit that `accept` holds (0 = none). */
static unsigned smtp_client_auth_words(const char *s, size_t len, unsigned accept)
{
    unsigned out = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && (s[i] == ' ' || s[i] == ','))
            i++;
        size_t start = i;
        while (i < len && s[i] != ' ' && s[i] != ',')
            i++;
        unsigned bit = smtp_client_auth_bit(s + start, i - start);
        if (bit & accept)
            return bit;
        out |= bit;
    }
    return accept ? 0 : out;
}

unsigned smtp_client_auth_offer(const char *params, size_t len)
{
    return smtp_client_auth_words(params, len, 0);
}

unsigned smtp_client_auth_choose(const struct smtp_client_auth *a, unsigned offered)
{
    if (!a->hmac_md5)
        offered &= ~SMTP_AUTH_CRAM_MD5;
    const char *order = a->mechs && *a->mechs ? a->mechs : SMTP_CLIENT_AUTH_DEFAULT;
    return offered ? smtp_client_auth_words(order, strlen(order), offered) : 0;
}

const char *smtp_client_auth_name(unsigned mech)
{
    for (size_t i = 0; i < SMTP_CLIENT_AUTH_N; i++)
        if (smtp_client_auth_mechs[i].bit == mech)
            return smtp_client_auth_mechs[i].name;
    return "?";
}

static const char *smtp_client_auth_str(const char *s)
{
    return s ? s : "";
}

/* The authentication id: I, else U. */
static const char *smtp_client_auth_authcid(const struct smtp_client_auth *a)
{
    return a->authid && *a->authid ? a->authid : smtp_client_auth_str(a->user);
}

/* base64 of `len` octets and CRLF, appended. */
static int smtp_client_auth_line(struct buf *out, const void *p, size_t len, const char **why)
{
    if (base64_append(out, p, len) < 0 || buf_append(out, "\r\n", 2) < 0) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

static bool smtp_client_auth_too_long(const struct smtp_client_auth *a)
{
    return strlen(smtp_client_auth_str(a->user)) > SMTP_CLIENT_AUTH_MAX ||
           strlen(smtp_client_auth_str(a->authid)) > SMTP_CLIENT_AUTH_MAX ||
           strlen(smtp_client_auth_str(a->password)) > SMTP_CLIENT_AUTH_MAX;
}

int smtp_client_auth_start(const struct smtp_client_auth *a, unsigned mech, struct buf *out,
                           const char **why)
{
    if (smtp_client_auth_too_long(a)) {
        *why = "credentials too long";
        return -1;
    }
    if (buf_printf(out, "AUTH %s", smtp_client_auth_name(mech)) < 0) {
        *why = "out of memory";
        return -1;
    }
    if (mech != SMTP_AUTH_PLAIN) {
        if (buf_append(out, "\r\n", 2) < 0) {
            *why = "out of memory";
            return -1;
        }
        return 0;
    }
    /* RFC 4616: authzid NUL authcid NUL passwd; the authzid only when it differs, since
     * many servers refuse one they were not asked to honour */
    const char *authcid = smtp_client_auth_authcid(a);
    const char *authzid = a->user && strcmp(a->user, authcid) != 0 ? a->user : "";
    char msg[3 * SMTP_CLIENT_AUTH_MAX + 3];
    int n = snprintf(msg, sizeof(msg), "%s%c%s%c%s", authzid, 0, authcid, 0,
                     smtp_client_auth_str(a->password));
    int rc = -1;
    if (buf_append(out, " ", 1) < 0)
        *why = "out of memory";
    else
        rc = smtp_client_auth_line(out, msg, (size_t)n, why);
    explicit_bzero(msg, sizeof(msg));
    return rc;
}

static int smtp_client_auth_cram(const struct smtp_client_auth *a, const char *challenge,
                                 struct buf *out, const char **why)
{
    unsigned char ch[SMTP_CLIENT_TEXT_MAX], mac[16];
    ssize_t n = base64_decode(challenge, strlen(challenge), ch, sizeof(ch));
    if (n <= 0) {
        *why = "CRAM-MD5 challenge is not base64";
        return -1;
    }
    const char *pw = smtp_client_auth_str(a->password);
    if (a->hmac_md5(pw, strlen(pw), ch, (size_t)n, mac) < 0) {
        *why = "HMAC-MD5 failed";
        return -1;
    }
    char resp[SMTP_CLIENT_AUTH_MAX + 34];
    int len = snprintf(resp, sizeof(resp), "%s ", smtp_client_auth_authcid(a));
    for (size_t i = 0; i < sizeof(mac); i++)
        len += snprintf(resp + len, sizeof(resp) - (size_t)len, "%02x", mac[i]);
    int rc = smtp_client_auth_line(out, resp, (size_t)len, why);
    explicit_bzero(mac, sizeof(mac));
    return rc;
}

int smtp_client_auth_respond(const struct smtp_client_auth *a, unsigned mech, unsigned step,
                             const char *challenge, struct buf *out, const char **why)
{
    if (mech == SMTP_AUTH_LOGIN && step < 2) { /* "Username:", then "Password:" */
        const char *s = step == 0 ? smtp_client_auth_authcid(a) : smtp_client_auth_str(a->password);
        return smtp_client_auth_line(out, s, strlen(s), why);
    }
    if (mech == SMTP_AUTH_CRAM_MD5 && step == 0)
        return smtp_client_auth_cram(a, challenge, out, why);
    *why = "unexpected 334 challenge";
    return -1;
}
