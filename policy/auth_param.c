#include "policy/auth_param.h"

#include <stdbool.h>
#include <string.h>

#include "smtp/smtp_addr.h"
#include "util/xtext.h"

/* proto.m4's trust_auth: "R$* $| $&{auth_authen} $@ identical", and the same in brackets. */
static bool auth_param_names(const char *given, const char *authen)
{
    char decoded[SMTP_AUTH_PARAM_MAX + 1];
    ssize_t n = xtext_decode(given, strlen(given), decoded, sizeof(decoded));
    if (n < 0 || memchr(decoded, '\0', (size_t)n))
        return false;
    size_t alen = strlen(authen);
    if ((size_t)n == alen)
        return memcmp(decoded, authen, alen) == 0;
    return (size_t)n == alen + 2 && decoded[0] == '<' && decoded[alen + 1] == '>' &&
           memcmp(decoded + 1, authen, alen) == 0;
}

const char *auth_param_record(const char *given, const char *authen, char *out, size_t outlen)
{
    if (!authen)
        return NULL;
    if (given)
        return strcmp(given, "<>") == 0 || auth_param_names(given, authen) ? given : "<>";
    size_t need = xtext_encode(authen, out, outlen);
    return need == 0 || need > SMTP_AUTH_PARAM_MAX || need >= outlen ? "<>" : out;
}
