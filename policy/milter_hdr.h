/*
 * policy/milter_hdr.h — a message's header section as milters see and edit it.
 *
 * The fields are kept in order, each value as sendmail keeps it and hands it to filters:
 * the text after the colon with its leading whitespace, folded lines joined by "\n" (the
 * CR of each CRLF dropped, the continuation line's own leading whitespace kept). So
 * "Subject: a\r\n\tb\r\n" is ("Subject", " a\n\tb"); milter_header() drops the one
 * leading space unless the filter negotiated SMFIP_HDR_LEADSPC, as sendmail does.
 * Serialising turns every "\n" back into CRLF.
 *
 * Edits from a filter are checked before they apply: a name of printable ASCII without
 * ':', a value whose line breaks ("\n" or "\r\n") are each followed by a space or tab (so
 * a filter cannot end the header section early or make a bare CR); a refused edit leaves
 * the list as it was. Memory is the input's size plus the edits'. Owns every string;
 * not thread-safe.
 */
#ifndef RINGMAIL_POLICY_MILTER_HDR_H
#define RINGMAIL_POLICY_MILTER_HDR_H

#include <stddef.h>
#include <stdint.h>

#include "policy/milter.h"
#include "util/buf.h"

struct milter_hdr {
    char *name;
    char *value;
};

struct milter_hdrs {
    struct milter_hdr *v;
    size_t n, cap;
};

void milter_hdrs_init(struct milter_hdrs *h);
void milter_hdrs_free(struct milter_hdrs *h);

/* Appends the fields at the start of `msg` (CRLF lines; a bare LF is taken as a line end
 * too). The section ends at an empty line, which belongs to it, or at the first line that
 * is not a field (no name and colon, as sendmail: the body starts there); *body_off is
 * where the body starts. -1 if out of memory. */
int milter_hdrs_parse(struct milter_hdrs *h, const char *msg, size_t len, size_t *body_off);

/* The edits (values in the form above). -1: refused name or value, or out of memory. */
int milter_hdrs_add(struct milter_hdrs *h, const char *name, const char *value);
/* At position `index` (0 = first; past the end = appended), as sendmail's insheader. */
int milter_hdrs_insert(struct milter_hdrs *h, uint32_t index, const char *name, const char *value);
/* The nth field called `name` (case-insensitive; 0 is taken as 1) gets `value`, or is
 * deleted when `value` is "". Without an nth such field, a non-empty value is appended
 * and an empty one does nothing (sendmail's milter_changeheader). */
int milter_hdrs_change(struct milter_hdrs *h, const char *name, uint32_t nth, const char *value);
/* Applies a header modification collected by milter.h; others are not this module's and
 * return 0 unchanged. */
int milter_hdrs_apply(struct milter_hdrs *h, const struct milter_mod *mod);

/* Appends the fields as CRLF lines (not the empty line after them). */
int milter_hdrs_write(const struct milter_hdrs *h, struct buf *out);

#endif
