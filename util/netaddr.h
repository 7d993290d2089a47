/*
 * util/netaddr.h — network addresses and prefixes (relay_from networks, listeners, logs).
 *
 * Pure functions over caller-owned structs; no allocation, no DNS. IPv4-mapped IPv6
 * client addresses (::ffff:a.b.c.d) match IPv4 prefixes, so a dual-stack listener does not
 * open a relay hole or close a legitimate one.
 */
#ifndef RINGMAIL_UTIL_NETADDR_H
#define RINGMAIL_UTIL_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct netaddr_prefix {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes */
    unsigned bits;    /* prefix length */
};

/* Parses "127.0.0.1", "127.0.0.0/8", "::1", "2001:db8::/32", "[::1]/128", and sendmail's
 * class-style partial IPv4 "10.1" (= 10.1.0.0/16). Host bits beyond the prefix must be
 * zero. 0, or -1 with a short reason in *why (static string). */
int netaddr_prefix_parse(const char *text, struct netaddr_prefix *out, const char **why);
/* Does the socket address fall inside the prefix? */
bool netaddr_prefix_match(const struct netaddr_prefix *p, const struct sockaddr *sa);
/* Formats a prefix as "a.b.c.d/n" or "x::y/n" (truncated to fit outlen, always
 * terminated when outlen > 0). A ::ffff:a.b.c.d/96+n prefix matches IPv4 clients too. */
void netaddr_prefix_format(const struct netaddr_prefix *p, char *out, size_t outlen);
/* Formats a socket address's host part ("127.0.0.1", "::1"; mapped IPv4 shown as IPv4);
 * "unknown" for other families (AF_UNIX) or when outlen is too small. */
void netaddr_format(const struct sockaddr *sa, char *out, size_t outlen);
/* Port of a socket address in host order (0 if not INET/INET6). */
uint16_t netaddr_port(const struct sockaddr *sa);
/* A client's IP as 16 bytes for tables keyed by client (IPv4 as mapped IPv6, so
 * ::ffff:1.2.3.4 and 1.2.3.4 are one client); all zeros for other families. */
void netaddr_key(const struct sockaddr *sa, uint8_t key[16]);
/* A hash of such a key (FNV-1a), for bucket tables. */
uint32_t netaddr_key_hash(const uint8_t key[16]);
/* Is `text` an IPv4 or IPv6 address literal (no brackets, no prefix)? */
bool netaddr_is_ip(const char *text);
/* Parses "ADDRESS:PORT" with an IPv4 literal, or "[ADDRESS]:PORT" with an IPv6 one (port
 * 1..65535): the address without brackets into addr (>= 46 bytes), its family (AF_INET or
 * AF_INET6) and the port. 0, or -1 with a short reason in *why (static string). */
int netaddr_hostport_parse(const char *text, char *addr, size_t addrlen, uint16_t *port,
                           int *family, const char **why);
/* Whether an address literal is a loopback one (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
bool netaddr_is_loopback(const char *addr);

#endif
