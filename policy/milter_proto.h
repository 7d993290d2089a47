/*
 * policy/milter_proto.h — the milter wire format (sendmail 8.17's libmilter, protocol
 * version 6): packet framing, the constants of mfdef.h/mfapi.h, and an incremental decoder
 * for what a filter sends to the MTA.
 *
 * A packet is a 4-byte big-endian length (of what follows), a command octet, then data.
 * Encoding appends to a caller's struct buf; decoding never allocates: a decoded reply's
 * fields point into the caller's input and live as long as it does. The decoder refuses
 * (MILTER_PROTO_ERROR with a short static reason) a length of 0 or above
 * MILTER_PROTO_MAX_LEN, an unknown reply code and any field that does not fit its code
 * (missing NUL, short integer, trailing bytes). Pure: no I/O, no clock, thread-safe.
 */
#ifndef RINGMAIL_POLICY_MILTER_PROTO_H
#define RINGMAIL_POLICY_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define MILTER_PROTO_VERSION 6
/* libmilter's MILTER_CHUNK_SIZE and default MILTER_MAX_DATA_SIZE: the most data it reads
 * or writes in one packet. ringmail never offers SMFIP_MDS_256K/1M. */
#define MILTER_CHUNK_MAX 65535u
/* The largest length field accepted from a filter: command octet, a full chunk, and room
 * for the index and NULs that frame a header edit carrying a full-size value. */
#define MILTER_PROTO_MAX_LEN (1u + MILTER_CHUNK_MAX + 16u)
#define MILTER_PROTO_HDR_LEN 4u

/* MTA -> filter commands (SMFIC_*) */
#define MILTER_CMD_ABORT   'A'
#define MILTER_CMD_BODY    'B'
#define MILTER_CMD_CONNECT 'C'
#define MILTER_CMD_MACRO   'D'
#define MILTER_CMD_BODYEOB 'E'
#define MILTER_CMD_HELO    'H'
#define MILTER_CMD_QUIT_NC 'K'
#define MILTER_CMD_HEADER  'L'
#define MILTER_CMD_MAIL    'M'
#define MILTER_CMD_EOH     'N'
#define MILTER_CMD_OPTNEG  'O'
#define MILTER_CMD_QUIT    'Q'
#define MILTER_CMD_RCPT    'R'
#define MILTER_CMD_DATA    'T'
#define MILTER_CMD_UNKNOWN 'U'

/* filter -> MTA replies (SMFIR_*; the negotiation reply is 'O') */
#define MILTER_R_ADDRCPT     '+'
#define MILTER_R_DELRCPT     '-'
#define MILTER_R_ADDRCPT_PAR '2'
#define MILTER_R_SHUTDOWN    '4'
#define MILTER_R_ACCEPT      'a'
#define MILTER_R_REPLBODY    'b'
#define MILTER_R_CONTINUE    'c'
#define MILTER_R_DISCARD     'd'
#define MILTER_R_CHGFROM     'e'
#define MILTER_R_CONN_FAIL   'f'
#define MILTER_R_ADDHEADER   'h'
#define MILTER_R_INSHEADER   'i'
#define MILTER_R_SETSYMLIST  'l'
#define MILTER_R_CHGHEADER   'm'
#define MILTER_R_OPTNEG      'O'
#define MILTER_R_PROGRESS    'p'
#define MILTER_R_QUARANTINE  'q'
#define MILTER_R_REJECT      'r'
#define MILTER_R_SKIP        's'
#define MILTER_R_TEMPFAIL    't'
#define MILTER_R_REPLYCODE   'y'

/* address families in SMFIC_CONNECT (SMFIA_*) */
#define MILTER_FAMILY_UNKNOWN 'U'
#define MILTER_FAMILY_UNIX    'L'
#define MILTER_FAMILY_INET    '4'
#define MILTER_FAMILY_INET6   '6'

/* actions a filter may take (SMFIF_*, mfapi.h) */
#define MILTER_ACT_ADDHDRS     0x001u
#define MILTER_ACT_CHGBODY     0x002u
#define MILTER_ACT_ADDRCPT     0x004u
#define MILTER_ACT_DELRCPT     0x008u
#define MILTER_ACT_CHGHDRS     0x010u
#define MILTER_ACT_QUARANTINE  0x020u
#define MILTER_ACT_CHGFROM     0x040u
#define MILTER_ACT_ADDRCPT_PAR 0x080u
#define MILTER_ACT_SETSYMLIST  0x100u

/* protocol steps and features (SMFIP_*, mfdef.h): NO* = do not send the step, NR* = the
 * filter does not reply to it */
#define MILTER_P_NOCONNECT   0x00000001u
#define MILTER_P_NOHELO      0x00000002u
#define MILTER_P_NOMAIL      0x00000004u
#define MILTER_P_NORCPT      0x00000008u
#define MILTER_P_NOBODY      0x00000010u
#define MILTER_P_NOHDRS      0x00000020u
#define MILTER_P_NOEOH       0x00000040u
#define MILTER_P_NR_HDR      0x00000080u
#define MILTER_P_NOUNKNOWN   0x00000100u
#define MILTER_P_NODATA      0x00000200u
#define MILTER_P_SKIP        0x00000400u
#define MILTER_P_RCPT_REJ    0x00000800u
#define MILTER_P_NR_CONN     0x00001000u
#define MILTER_P_NR_HELO     0x00002000u
#define MILTER_P_NR_MAIL     0x00004000u
#define MILTER_P_NR_RCPT     0x00008000u
#define MILTER_P_NR_DATA     0x00010000u
#define MILTER_P_NR_UNKN     0x00020000u
#define MILTER_P_NR_EOH      0x00040000u
#define MILTER_P_NR_BODY     0x00080000u
#define MILTER_P_HDR_LEADSPC 0x00100000u
#define MILTER_P_MDS_256K    0x10000000u
#define MILTER_P_MDS_1M      0x20000000u

/* The macro stages of SMFIR_SETSYMLIST (SMFIM_*): note DATA, EOM, EOH in that order. */
#define MILTER_SYM_CONNECT 0u
#define MILTER_SYM_HELO    1u
#define MILTER_SYM_ENVFROM 2u
#define MILTER_SYM_ENVRCPT 3u
#define MILTER_SYM_DATA    4u
#define MILTER_SYM_EOM     5u
#define MILTER_SYM_EOH     6u

/* Starts a packet with command `cmd` at the end of `out`; returns the packet's offset
 * for milter_proto_end, or -1 if `out` is full. Data is then appended with buf_append. */
long milter_proto_begin(struct buf *out, char cmd);
/* Writes the length of the packet begun at `start`; -1 (and the packet removed) if its
 * data is above MILTER_CHUNK_MAX, which libmilter would refuse. */
int milter_proto_end(struct buf *out, long start);
/* One whole packet. */
int milter_proto_put(struct buf *out, char cmd, const void *data, size_t len);

enum milter_proto_status {
    MILTER_PROTO_MORE,  /* a proper prefix of a packet: nothing consumed */
    MILTER_PROTO_REPLY, /* one reply decoded */
    MILTER_PROTO_ERROR,
};

/* One decoded reply. Strings point into the input and are NUL-terminated there (the wire
 * format carries the NULs); absent ones are NULL. */
struct milter_reply {
    char code;
    uint32_t index;           /* INSHEADER, CHGHEADER; the stage of SETSYMLIST */
    const char *str;          /* header name, address, reply text, quarantine reason */
    const char *str2;         /* header value, ESMTP arguments (NULL when not sent) */
    const unsigned char *raw; /* REPLBODY chunk; OPTNEG's symbol lists after the flags */
    size_t raw_len;
    uint32_t version, actions, protocol; /* OPTNEG */
};

/* Decodes the packet at the start of `in`; on REPLY, *consumed is its size. On ERROR,
 * *why is a short static text for the log. */
enum milter_proto_status milter_proto_decode(const void *in, size_t len, size_t *consumed,
                                             struct milter_reply *r, const char **why);

/* The length field of a packet whose first 4 octets are `hdr`, or 0 when it is out of
 * bounds (0 or above MILTER_PROTO_MAX_LEN). */
uint32_t milter_proto_length(const unsigned char hdr[MILTER_PROTO_HDR_LEN]);

/* Walks OPTNEG's symbol lists (u32 stage, NUL-terminated names) in r->raw: returns 1 with
 * the next stage and names, 0 at the end, -1 if malformed. `*off` starts at 0. */
int milter_proto_symlist_next(const struct milter_reply *r, size_t *off, uint32_t *stage,
                              const char **names);

#endif
