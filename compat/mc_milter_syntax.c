/* compat/mc_milter_syntax.c — a filter's socket and a macro name, as sendmail reads them
 * (milter_open(), macid()). */
#include "compat/mc_milter_syntax.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "compat/mc_int.h"

/* "port@host": the port a number; the host a name, an address of `family`, or one in
 * brackets. */
static const char *mc_milter_inet(const char *rest, int family)
{
    const char *at = strchr(rest, '@');
    unsigned char bin[16];
    char addr[64];
    if (!at || !at[1])
        return "expected port@host after the scheme";
    size_t digits = strspn(rest, "0123456789");
    long port = digits && digits <= 5 && rest + digits == at ? strtol(rest, NULL, 10) : 0;
    if (port < 1 || port > 65535)
        return "bad port: expected a number from 1 to 65535 before '@' (service names are "
               "not looked up)";
    const char *host = at + 1;
    size_t len = strlen(host);
    if (host[0] == '[') {
        if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(addr))
            return "expected an address in brackets after '@'";
        snprintf(addr, sizeof(addr), "%.*s", (int)(len - 2), host + 1);
        return inet_pton(family, addr, bin) == 1 ? NULL : "not an address of this scheme's family";
    }
    return inet_pton(family, host, bin) == 1 || mc_domain_ok(host)
               ? NULL
               : "expected a host name or an address after '@'";
}

const char *mc_milter_socket(const char *socket, char *out, size_t outlen)
{
    static const char *const schemes[] = {"unix", "local", "inet", "inet6"};
    const char *colon = strchr(socket, ':');
    size_t k = 0, scheme = colon ? (size_t)(colon - socket) : 0;
    if (scheme == 0) {
        snprintf(out, outlen, "local:%s", colon ? colon + 1 : socket);
    } else {
        while (k < 4 &&
               !(strlen(schemes[k]) == scheme && strncasecmp(socket, schemes[k], scheme) == 0))
            k++;
        if (k == 4)
            return "unknown scheme: expected unix, local, inet or inet6";
        snprintf(out, outlen, "%s%s", schemes[k], colon);
    }
    const char *rest = strchr(out, ':') + 1;
    if (k == 2 || k == 3)
        return mc_milter_inet(rest, k == 2 ? AF_INET : AF_INET6);
    if (rest[0] != '/')
        return "expected an absolute path after the scheme";
    return strlen(rest) < sizeof(((struct sockaddr_un *)0)->sun_path)
               ? NULL
               : "the path is longer than a unix socket path may be (107 octets)";
}

bool mc_milter_macro_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 1)
        return isgraph((unsigned char)name[0]) && !strchr("{},", name[0]);
    if (len < 3 || name[0] != '{' || name[len - 1] != '}')
        return false;
    for (size_t i = 1; i + 1 < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_')
            return false;
    return true;
}
