/*
 * compat/mc_milter_syntax.h — sendmail's spellings for mail filters, shared by the .mc
 * translator (compat/mc_milter.c) and the configuration (core/config_milter.c), so a socket
 * or a macro name the translator writes is one the configuration loads.
 *
 * Pure: no allocation, no I/O, no name lookups (a host name is checked as a name, never
 * resolved). Thread-safe.
 */
#ifndef RINGMAIL_COMPAT_MC_MILTER_SYNTAX_H
#define RINGMAIL_COMPAT_MC_MILTER_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

/* A filter's socket (S=) as ringmaild writes it, into `out`: the scheme lower-cased, and a
 * bare path or an empty scheme (sendmail's default, a unix socket) as "local:path". NULL when
 * it is usable, else why not: an unknown scheme, a relative or too long unix path, a port
 * that is not a number from 1 to 65535 (service names are not looked up), a host that is
 * neither a name nor an address of the scheme's family. */
const char *mc_milter_socket(const char *socket, char *out, size_t outlen);

/* sendmail's macid(): one printable character other than '{', '}' and ',' ("j", "_"), or
 * a name in braces of letters, digits and '_' ("{daemon_name}"). */
bool mc_milter_macro_ok(const char *name);

#endif
