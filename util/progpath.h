/*
 * util/progpath.h — where the programs installed beside the running one are.
 *
 * ringmaild, ringmail-sendmail and ringmail-postdrop are installed in one directory (and
 * run from the build directory in tests): each finds the others there, never on $PATH,
 * which a caller of a set-group-ID program or a root process must not choose.
 * Owns nothing; reads /proc/self/exe.
 */
#ifndef RINGMAIL_UTIL_PROGPATH_H
#define RINGMAIL_UTIL_PROGPATH_H

#include <stddef.h>

/* "<directory of this program>/<name>" into `out`: 0, or -1 when /proc/self/exe cannot
 * be read or the path does not fit. */
int progpath_sibling(const char *name, char *out, size_t outlen);

#endif
