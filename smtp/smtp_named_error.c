#include "smtp/smtp_named_error.h"

#include <string.h>
#include <strings.h>

static const struct smtp_named_error smtp_named_errors[] = {
    {"nouser", "550", "5.1.1", "User unknown"},
    {"nohost", "550", "5.1.2", "Host unknown"},
    {"unavailable", "550", "5.0.0", "Service unavailable"},
    {"noperm", "550", "5.0.0", "Insufficient permission"},
    {"dataerr", "554", "5.6.0", "Data format error"},
    {"software", "554", "5.3.0", "Internal error"},
    {"protocol", "554", "5.5.0", "Remote protocol error"},
    {"config", "554", "5.3.5", "Local configuration error"},
    {"usage", "554", "5.5.4", "Command line usage error"},
    {"tempfail", "451", "4.0.0", "Deferred"},
    {"oserr", "451", "4.0.0", "Operating system error"},
};

const struct smtp_named_error *smtp_named_error(const char *name, size_t len)
{
    for (size_t i = 0; len && i < sizeof(smtp_named_errors) / sizeof(smtp_named_errors[0]); i++)
        if (strlen(smtp_named_errors[i].name) == len &&
            strncasecmp(name, smtp_named_errors[i].name, len) == 0)
            return &smtp_named_errors[i];
    return NULL;
}
