#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "delivery/local_proto.h"

void local_reply_set(struct local_reply *r, enum local_status status, const char *enh,
                     const char *mailer, const char *fmt, ...)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    snprintf(r->enh, sizeof(r->enh), "%s", enh);
    if (mailer)
        snprintf(r->mailer, sizeof(r->mailer), "%s", mailer);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
}
