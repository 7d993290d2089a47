/*
 * smtp/smtp_named_error.h — sendmail's named errors: the sysexits names its error mailer
 * takes ("error:nouser", "error:tempfail text") and the reply each one gives. One table
 * for the mailertable's routes (delivery/route.h) and the aliases' and virtusertable's
 * values (compat/alias_expand.h). Pure, static data.
 */
#ifndef RINGMAIL_SMTP_SMTP_NAMED_ERROR_H
#define RINGMAIL_SMTP_SMTP_NAMED_ERROR_H

#include <stddef.h>

struct smtp_named_error {
    const char *name, *code, *dsn, *text;
};

/* The error named by the first `len` bytes of `name` (case-insensitive), or NULL. */
const struct smtp_named_error *smtp_named_error(const char *name, size_t len);

#endif
