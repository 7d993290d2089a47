/*
 * smtp/smtp_helo.c — the HELO/EHLO argument check and its Received: token (smtp_helo.h
 * says why sendmail's rule and not Postfix's).
 */
#include "smtp/smtp_helo.h"

#include <string.h>

/* sendmail's set: what a domain name ("mx.example"), an address literal ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]") and the names sendmail has long let through ('_', '#') are made
 * of; nothing that opens a comment, a clause or a line in a header field. */
static bool smtp_helo_octet(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("[].-_#:", c) != NULL);
}

bool smtp_helo_valid(const char *arg, size_t len)
{
    if (len == 0 || len > SMTP_HELO_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!smtp_helo_octet((unsigned char)arg[i]))
            return false;
    return true;
}

size_t smtp_helo_received(const char *helo, char *out, size_t outlen)
{
    if (outlen == 0)
        return 0;
    size_t max = outlen - 1 < SMTP_HELO_MAX ? outlen - 1 : SMTP_HELO_MAX;
    size_t n = 0;
    for (; helo && helo[n] && n < max; n++)
        out[n] = smtp_helo_octet((unsigned char)helo[n]) ? helo[n] : '?';
    out[n] = '\0';
    return n;
}
