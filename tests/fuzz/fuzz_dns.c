/* libFuzzer harness for the MX answer handling (dns_mx_parse): what a name server, or
 * anyone who can spoof one, sends is exactly what the resolver feeds it.
 *
 * The answer is copied into a buffer of its own size, so any read past it is an
 * AddressSanitizer report. Besides not crashing, a result must keep the header's
 * promises: at most DNS_MAX_HOSTS hosts, each a non-empty NUL-terminated name that is not
 * the root, no name twice, sorted by preference; an error string whenever the status is
 * not DNS_OK. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *answer = malloc(size ? size : 1);
    if (!answer)
        return 0;
    memcpy(answer, data, size);
    static struct dns_mx_list out;
    char error[96];
    uint64_t random = size;
    enum dns_status st = dns_mx_parse(answer, size, random, &out, error, sizeof error);
    check(st == DNS_OK || st == DNS_TEMPFAIL || st == DNS_NOTFOUND || st == DNS_NULLMX);
    check(strnlen(error, sizeof error) < sizeof error);
    if (st != DNS_OK)
        check(error[0] != '\0' && out.n == 0);
    check(out.n <= DNS_MAX_HOSTS);
    for (size_t i = 0; i < out.n; i++) {
        size_t len = strnlen(out.hosts[i].name, sizeof out.hosts[i].name);
        check(len > 0 && len < sizeof out.hosts[i].name && strcmp(out.hosts[i].name, ".") != 0);
        check(i == 0 || out.hosts[i - 1].pref <= out.hosts[i].pref);
        for (size_t j = 0; j < i; j++)
            check(strcasecmp(out.hosts[i].name, out.hosts[j].name) != 0);
    }
    free(answer);
    return 0;
}
