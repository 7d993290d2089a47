/* policy/milter.c and milter_proto.c: (a) hand-made filter replies — the negotiation, the
 * NO/NR flags, every verdict, every modification, the macros sent per step and what must
 * fail the dialogue; (b) real filters over a unix socket: tests/unit/milter_filter.py
 * (Debian's python3-milter, i.e. libmilter) through a whole session, and opendkim signing a
 * message. (b) exits 77 when /usr/bin/python3 cannot import Milter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policy/milter.h"
#include "policy/milter_hdr.h"
#include "policy/milter_proto.h"

#define ALL_ACTIONS 0x1FFu
#define ALL_PROTO   0x1FFFFFu

static const struct milter_filter filter = {.name = "test", .socket = "unix:/nonexistent"};

/* ---- helpers ---- */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const void *q)
{
    const unsigned char *p = q;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One reply packet `code` + data appended to `b`. */
static void pkt(struct buf *b, char code, const void *data, size_t len)
{
    assert_int_equal(milter_proto_put(b, code, data, len), 0);
}

static void pkt_str(struct buf *b, char code, const char *s)
{
    pkt(b, code, s, strlen(s) + 1);
}

/* index + name NUL + value NUL */
static void pkt_idx(struct buf *b, char code, uint32_t idx, const char *name, const char *value)
{
    unsigned char d[256];
    put32(d, idx);
    size_t n = strlen(name) + 1, v = strlen(value) + 1;
    memcpy(d + 4, name, n);
    memcpy(d + 4 + n, value, v);
    pkt(b, code, d, 4 + n + v);
}

static void pkt2(struct buf *b, char code, const char *s1, const char *s2)
{
    char d[256];
    size_t n = strlen(s1) + 1, v = s2 ? strlen(s2) + 1 : 0;
    memcpy(d, s1, n);
    if (s2)
        memcpy(d + n, s2, v);
    pkt(b, code, d, n + v);
}

static void optneg(struct buf *b, uint32_t version, uint32_t actions, uint32_t proto,
                   const void *syms, size_t syms_len)
{
    unsigned char d[512];
    put32(d, version);
    put32(d + 4, actions);
    put32(d + 8, proto);
    if (syms_len)
        memcpy(d + 12, syms, syms_len);
    pkt(b, 'O', d, 12 + syms_len);
}

/* Feeds all of `b`; returns the status of the last call and the last result. */
static enum milter_feed_status feed(struct milter *m, struct buf *b, struct milter_result *res)
{
    size_t off = 0, used;
    enum milter_feed_status st = MILTER_FEED_MORE;
    while (off < b->len) {
        st = milter_feed(m, b->data + off, b->len - off, &used, res);
        off += used;
        if (st != MILTER_FEED_RESULT || off == b->len)
            break;
    }
    buf_free(b);
    return st;
}

static enum milter_verdict feed_verdict(struct milter *m, struct buf *b)
{
    struct milter_result res;
    assert_int_equal(feed(m, b, &res), MILTER_FEED_RESULT);
    return res.verdict;
}

static void feed_error(struct milter *m, struct buf *b, const char *why)
{
    struct milter_result res;
    assert_int_equal(feed(m, b, &res), MILTER_FEED_ERROR);
    if (!strstr(milter_error(m), why))
        fail_msg("error \"%s\" lacks \"%s\"", milter_error(m), why);
}

static void reply_code(struct milter *m, char code)
{
    struct buf b = {0};
    pkt(&b, code, NULL, 0);
    (void)feed_verdict(m, &b);
}

struct macros {
    const char *names[8], *values[8];
    int calls;
};

static const char *macro_cb(void *arg, const char *name)
{
    struct macros *mc = arg;
    mc->calls++;
    for (int i = 0; i < 8 && mc->names[i]; i++)
        if (strcmp(mc->names[i], name) == 0)
            return mc->values[i];
    return NULL;
}

/* A milter negotiated with `actions` and `proto`. */
static struct milter *nego(uint32_t actions, uint32_t proto, struct macros *mc)
{
    struct milter *m = milter_new(&filter, NULL, mc ? macro_cb : NULL, mc, 1000);
    assert_non_null(m);
    struct buf out = {0}, in = {0};
    assert_int_equal(milter_negotiate(m, &out), MILTER_WAIT);
    buf_free(&out);
    optneg(&in, 6, actions, proto, NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_CONTINUE);
    return m;
}

/* Drives a fresh message to EOM waiting; `out` is freed. */
static void to_eom(struct milter *m)
{
    struct buf out = {0};
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    assert_int_equal(milter_eom(m, &out), MILTER_WAIT);
    buf_free(&out);
}

/* ---- (a) pure ---- */

static void test_negotiate_offer(void **state)
{
    (void)state;
    struct milter *m = milter_new(&filter, NULL, NULL, NULL, 100);
    struct buf out = {0}, in = {0};
    assert_int_equal(milter_negotiate(m, &out), MILTER_WAIT);
    assert_int_equal(out.len, 17);
    assert_int_equal(get32(out.data), 13);
    assert_int_equal(out.data[4], 'O');
    assert_int_equal(get32(out.data + 5), 6);
    assert_int_equal(get32(out.data + 9), ALL_ACTIONS);
    assert_int_equal(get32(out.data + 13), ALL_PROTO);
    buf_free(&out);
    /* a reply split anywhere is the same reply */
    optneg(&in, 6, 0x21, 0x400, NULL, 0);
    struct milter_result res;
    size_t used;
    for (size_t i = 0; i + 1 < in.len; i++) {
        assert_int_equal(milter_feed(m, in.data + i, 1, &used, &res), MILTER_FEED_MORE);
        assert_int_equal(used, 1);
    }
    assert_int_equal(milter_feed(m, in.data + in.len - 1, 1, &used, &res), MILTER_FEED_RESULT);
    assert_int_equal(res.verdict, MILTER_CONTINUE);
    assert_int_equal(milter_actions(m), 0x21);
    assert_int_equal(milter_protocol(m), 0x400);
    buf_free(&in);
    /* negotiating twice is out of order */
    assert_int_equal(milter_negotiate(m, &out), MILTER_FAILED);
    assert_int_equal(out.len, 0);
    milter_free(m);
}

static void nego_fails(uint32_t version, uint32_t actions, uint32_t proto, const char *why)
{
    struct milter *m = milter_new(&filter, NULL, NULL, NULL, 100);
    struct buf out = {0}, in = {0};
    assert_int_equal(milter_negotiate(m, &out), MILTER_WAIT);
    buf_free(&out);
    optneg(&in, version, actions, proto, NULL, 0);
    feed_error(m, &in, why);
    /* failed for good */
    assert_int_equal(milter_connect(m, &out, "h", 'U', 0, NULL), MILTER_FAILED);
    assert_int_equal(out.len, 0);
    milter_free(m);
}

static void test_negotiate_refusals(void **state)
{
    (void)state;
    nego_fails(1, 0, 0, "version 1");
    nego_fails(7, 0, 0, "version 7");
    nego_fails(6, 0x200, 0, "actions 0x200");
    nego_fails(6, 0, MILTER_P_MDS_256K, "protocol 0x10000000");

    struct milter *m = milter_new(&filter, NULL, NULL, NULL, 100);
    struct buf out = {0}, in = {0};
    milter_negotiate(m, &out);
    pkt(&in, 'c', NULL, 0);
    feed_error(m, &in, "negotiation answered with 'c'");
    milter_free(m);

    m = milter_new(&filter, NULL, NULL, NULL, 100);
    milter_negotiate(m, &out);
    buf_free(&out);
    pkt(&in, 'O', "\0\0\0\6\0\0\0\0", 8);
    feed_error(m, &in, "shorter");
    milter_free(m);
}

static void test_old_versions(void **state)
{
    (void)state;
    struct milter *m = milter_new(&filter, NULL, NULL, NULL, 100);
    struct buf out = {0}, in = {0};
    milter_negotiate(m, &out);
    buf_free(&out);
    optneg(&in, 2, 0, 0, NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_CONTINUE);
    assert_int_equal(milter_protocol(m), MILTER_P_NOUNKNOWN | MILTER_P_NODATA);
    assert_int_equal(milter_unknown(m, &out, "XYZZY"), MILTER_NOWAIT);
    assert_int_equal(milter_mail(m, &out, "<a@b>", NULL, 0), MILTER_WAIT);
    buf_free(&out);
    reply_code(m, 'c');
    assert_int_equal(milter_data(m, &out), MILTER_NOWAIT);
    assert_int_equal(out.len, 0); /* DATA's default macro list is empty */
    milter_free(m);
}

static void test_connect_packet(void **state)
{
    (void)state;
    struct milter *m = nego(0, 0, NULL);
    struct buf out = {0};
    /* the default CONNECT list is sent even with no value defined (libmilter then forgets
     * stale values), then the command */
    assert_int_equal(milter_connect(m, &out, "mx.example", '6', 0x1234, "2001:db8::1"),
                     MILTER_WAIT);
    static const char want[] = "\0\0\0\2DC"
                               "\0\0\0\x1b"
                               "Cmx.example\0"
                               "6\x12\x34"
                               "2001:db8::1\0";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    buf_free(&out);
    milter_free(m);

    m = nego(0, 0, NULL);
    assert_int_equal(milter_connect(m, &out, "localhost", 'U', 99, NULL), MILTER_WAIT);
    static const char want_u[] = "\0\0\0\2DC\0\0\0\x0c"
                                 "Clocalhost\0U";
    assert_int_equal(out.len, sizeof(want_u) - 1);
    assert_memory_equal(out.data, want_u, sizeof(want_u) - 1);
    buf_free(&out);
    milter_free(m);
}

static void test_macros_per_step(void **state)
{
    (void)state;
    struct macros mc = {.names = {"j", "{daemon_name}", "i", "{rcpt_addr}", "{msg_id}", "_"},
                        .values = {"mx.test", "MTA", "QID1", "r@x", "<m@x>", ""}};
    struct milter *m = nego(0, MILTER_P_NOCONNECT, &mc);
    struct buf out = {0};
    /* macros even for a step the filter does not want (sendmail's milter_command) */
    assert_int_equal(milter_connect(m, &out, "h", '4', 25, "192.0.2.1"), MILTER_NOWAIT);
    static const char want[] = "\0\0\0\x21"
                               "DCj\0mx.test\0_\0\0{daemon_name}\0MTA\0";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    buf_free(&out);

    assert_int_equal(milter_mail(m, &out, "<s@x>", (const char *const[]){"SIZE=10"}, 1),
                     MILTER_WAIT);
    static const char want_mail[] = "\0\0\0\x09"
                                    "DMi\0QID1\0"
                                    "\0\0\0\x0f"
                                    "M<s@x>\0SIZE=10\0";
    assert_int_equal(out.len, sizeof(want_mail) - 1);
    assert_memory_equal(out.data, want_mail, sizeof(want_mail) - 1);
    buf_free(&out);
    reply_code(m, 'c');

    assert_int_equal(milter_rcpt(m, &out, "<r@x>", NULL, 0, false), MILTER_WAIT);
    assert_int_equal(out.len, 22 + 11);
    assert_memory_equal(out.data,
                        "\0\0\0\x12"
                        "DR{rcpt_addr}\0r@x\0",
                        22);
    buf_free(&out);
    reply_code(m, 'c');
    assert_int_equal(milter_eom(m, &out), MILTER_WAIT);
    assert_int_equal(out.len, 26);
    assert_memory_equal(out.data,
                        "\0\0\0\x11"
                        "DE{msg_id}\0<m@x>\0"
                        "\0\0\0\1E",
                        26);
    buf_free(&out);
    milter_free(m);
}

static void test_setsymlist(void **state)
{
    (void)state;
    struct macros mc = {.names = {"j", "{daemon_name}", "{msg_id}", "i", "{x}"},
                        .values = {"mx.test", "MTA", "<m@x>", "QID", "X"}};
    struct milter *m = milter_new(&filter, NULL, macro_cb, &mc, 100);
    struct buf out = {0}, in = {0};
    milter_negotiate(m, &out);
    buf_free(&out);
    /* CONNECT: just {daemon_name}; EOM (stage 5): i and {x}; DATA (4): empty list */
    static const char syms[] = "\0\0\0\0{daemon_name}\0"
                               "\0\0\0\5i, {x}\0"
                               "\0\0\0\4\0";
    optneg(&in, 6, 0x100, 0, syms, sizeof(syms) - 1);
    assert_int_equal(feed_verdict(m, &in), MILTER_CONTINUE);
    assert_int_equal(milter_connect(m, &out, "h", 'U', 0, NULL), MILTER_WAIT);
    assert_int_equal(out.len, 24 + 8);
    assert_memory_equal(out.data,
                        "\0\0\0\x14"
                        "DC{daemon_name}\0MTA\0",
                        24);
    buf_free(&out);
    reply_code(m, 'c');
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    assert_int_equal(out.len, 12 + 11); /* the default ENVFROM list: only i defined */
    buf_free(&out);
    reply_code(m, 'c');
    assert_int_equal(milter_data(m, &out), MILTER_WAIT);
    assert_int_equal(out.len, 5); /* an empty list: no 'D' packet */
    buf_free(&out);
    reply_code(m, 'c');
    assert_int_equal(milter_eom(m, &out), MILTER_WAIT);
    assert_int_equal(out.len, 18 + 5);
    assert_memory_equal(out.data,
                        "\0\0\0\x0e"
                        "DEi\0QID\0{x}\0X\0",
                        18);
    buf_free(&out);
    milter_free(m);

    m = milter_new(&filter, NULL, macro_cb, &mc, 100);
    milter_negotiate(m, &out);
    buf_free(&out);
    optneg(&in, 6, 0x100, 0, "\0\0\0\7x\0", 6);
    feed_error(m, &in, "macro list");
    milter_free(m);
}

static void test_no_and_nr_flags(void **state)
{
    (void)state;
    struct milter *m = nego(0,
                            MILTER_P_NOHELO | MILTER_P_NR_MAIL | MILTER_P_NR_HDR | MILTER_P_NOBODY |
                                MILTER_P_NR_EOH | MILTER_P_NORCPT,
                            NULL);
    struct buf out = {0};
    assert_int_equal(milter_helo(m, &out, "client"), MILTER_NOWAIT);
    assert_int_equal(out.len, 6); /* only the HELO macros' 'D' packet */
    assert_memory_equal(out.data, "\0\0\0\2DH", 6);
    buf_free(&out);
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_NOWAIT);
    assert_int_equal(out.data[out.len - 7], 'M');
    buf_free(&out);
    assert_int_equal(milter_rcpt(m, &out, "<r@x>", NULL, 0, false), MILTER_NOWAIT);
    buf_free(&out);
    assert_int_equal(milter_data(m, &out), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    assert_int_equal(milter_header(m, &out, "Subject", " hi"), MILTER_NOWAIT);
    assert_int_equal(out.len, 16);
    assert_memory_equal(out.data + 4, "LSubject\0hi\0", 12);
    buf_free(&out);
    assert_int_equal(milter_eoh(m, &out), MILTER_NOWAIT);
    buf_free(&out);
    assert_int_equal(milter_body(m, &out, "x\r\n", 3), MILTER_NOWAIT);
    assert_int_equal(out.len, 0);
    assert_int_equal(milter_eom(m, &out), MILTER_WAIT);
    buf_free(&out);
    reply_code(m, 'a');
    milter_free(m);
}

static void test_header_leadspc(void **state)
{
    (void)state;
    struct milter *m = nego(0, MILTER_P_HDR_LEADSPC | MILTER_P_NR_HDR, NULL);
    struct buf out = {0};
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    assert_int_equal(milter_header(m, &out, "Subject", " a\n\tb"), MILTER_NOWAIT);
    assert_int_equal(out.len, 4 + 15);
    assert_memory_equal(out.data + 4, "LSubject\0 a\n\tb\0", 15);
    buf_free(&out);
    milter_free(m);
}

static void test_verdicts(void **state)
{
    (void)state;
    struct buf out = {0}, in = {0};
    struct milter *m = nego(0, 0, NULL);
    /* RCPT: a refusal is for that recipient only; ACCEPT ends the message. A refused
     * unknown command is only that command's reply. */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    assert_int_equal(milter_unknown(m, &out, "XYZZY"), MILTER_WAIT);
    pkt(&in, 'y', "500 5.5.1 what?", 16);
    assert_int_equal(feed_verdict(m, &in), MILTER_REPLYCODE);
    assert_int_equal(milter_rcpt(m, &out, "<a@x>", NULL, 0, false), MILTER_WAIT);
    pkt(&in, 'r', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_REJECT);
    assert_int_equal(milter_rcpt(m, &out, "<b@x>", NULL, 0, false), MILTER_WAIT);
    pkt(&in, 't', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_TEMPFAIL);
    assert_int_equal(milter_rcpt(m, &out, "<c@x>", NULL, 0, false), MILTER_WAIT);
    pkt(&in, 'a', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_ACCEPT);
    buf_free(&out);
    assert_int_equal(milter_rcpt(m, &out, "<d@x>", NULL, 0, false), MILTER_DONE);
    assert_int_equal(milter_data(m, &out), MILTER_DONE);
    assert_int_equal(milter_eom(m, &out), MILTER_DONE);
    assert_int_equal(out.len, 0);
    /* ... until the next message */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    pkt(&in, 'd', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_DISCARD);
    buf_free(&out);
    assert_int_equal(milter_rcpt(m, &out, "<d@x>", NULL, 0, false), MILTER_DONE);
    assert_int_equal(milter_abort(m, &out), MILTER_NOWAIT);
    assert_int_equal(out.len, 0); /* the filter is done with it: no ABORT */
    /* DISCARD at RCPT ends the message */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    assert_int_equal(milter_rcpt(m, &out, "<d@x>", NULL, 0, false), MILTER_WAIT);
    pkt(&in, 'd', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_DISCARD);
    assert_int_equal(milter_data(m, &out), MILTER_DONE);
    /* body: REJECT ends the message; EOM's CONTINUE means ACCEPT */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    assert_int_equal(milter_eom(m, &out), MILTER_WAIT);
    pkt(&in, 'c', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_ACCEPT);
    buf_free(&out);
    /* SHUTDOWN ends the connection */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    pkt(&in, '4', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_SHUTDOWN);
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_DONE);
    buf_free(&out);
    assert_int_equal(milter_quit(m, &out), MILTER_NOWAIT);
    assert_memory_equal(out.data, "\0\0\0\1Q", 5);
    buf_free(&out);
    assert_int_equal(milter_helo(m, &out, "x"), MILTER_FAILED);
    milter_free(m);

    /* a refusal at CONNECT, or ACCEPT at HELO, is for the whole connection */
    m = nego(0, 0, NULL);
    assert_int_equal(milter_connect(m, &out, "h", 'U', 0, NULL), MILTER_WAIT);
    pkt(&in, 'f', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_CONN_FAIL);
    assert_int_equal(milter_helo(m, &out, "x"), MILTER_DONE);
    milter_free(m);
    m = nego(0, 0, NULL);
    assert_int_equal(milter_helo(m, &out, "x"), MILTER_WAIT);
    pkt(&in, 'a', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_ACCEPT);
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_DONE);
    buf_free(&out);
    milter_free(m);
}

static void replycode_case(const char *text, bool ok)
{
    struct milter *m = nego(0, 0, NULL);
    struct buf out = {0}, in = {0};
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    buf_free(&out);
    pkt_str(&in, 'y', text);
    struct milter_result res;
    if (!ok) {
        feed_error(m, &in, "reply code");
    } else {
        assert_int_equal(feed(m, &in, &res), MILTER_FEED_RESULT);
        assert_int_equal(res.verdict, MILTER_REPLYCODE);
        assert_string_equal(res.reply, text);
        assert_int_equal(res.code, (text[0] - '0') * 100 + (text[1] - '0') * 10 + text[2] - '0');
    }
    milter_free(m);
}

static void test_replycode(void **state)
{
    (void)state;
    replycode_case("554 5.7.1 go away", true);
    replycode_case("451 4.7.1 later, 100%% sure", true);
    replycode_case("554-5.7.1 a\r\n554 5.7.1 b", true);
    replycode_case("421", true);
    replycode_case("250 ok", false);
    replycode_case("5x4 no", false);
    replycode_case("554-5.7.1 a", false);                /* the last line continues */
    replycode_case("554-5.7.1 a\r\n550 5.7.1 b", false); /* another code */
    replycode_case("554 a\r\n554 b", false);             /* a line that ends too early */
    replycode_case("554 a\nRSET", false);                /* a bare LF */
    replycode_case("554 a\r\n", false);
    replycode_case("554 a\x01", false);
}

static void test_eom_mods(void **state)
{
    (void)state;
    struct milter *m = nego(ALL_ACTIONS, 0, NULL);
    to_eom(m);
    struct buf in = {0};
    pkt(&in, 'p', NULL, 0);
    pkt2(&in, 'h', "X-Added", "one");
    pkt_idx(&in, 'i', 0, "X-Top", "two");
    pkt_idx(&in, 'm', 2, "Subject", "three");
    pkt_idx(&in, 'm', 1, "X-Gone", "");
    pkt2(&in, 'e', "<new@x>", "BODY=8BITMIME");
    pkt2(&in, 'e', "<new2@x>", NULL);
    pkt2(&in, '2', "<add@x>", "NOTIFY=NEVER");
    pkt_str(&in, '+', "<plain@x>");
    pkt_str(&in, '-', "<del@x>");
    pkt(&in, 'b', "new ", 4);
    pkt(&in, 'b', "body\r\n", 6);
    pkt_str(&in, 'q', "suspicious");
    pkt(&in, 'c', NULL, 0);
    struct milter_result res;
    size_t off = 0, used;
    assert_int_equal(milter_feed(m, in.data, in.len, &used, &res), MILTER_FEED_RESULT);
    assert_int_equal(res.verdict, MILTER_PROGRESS);
    off += used;
    assert_int_equal(milter_feed(m, in.data + off, in.len - off, &used, &res), MILTER_FEED_RESULT);
    assert_int_equal(off + used, in.len);
    assert_int_equal(res.verdict, MILTER_ACCEPT);
    buf_free(&in);

    struct {
        enum milter_mod_type t;
        uint32_t idx;
        const char *name, *value;
    } want[] = {
        {MILTER_MOD_ADDHDR, 0, "X-Added", " one"},
        {MILTER_MOD_INSHDR, 0, "X-Top", " two"},
        {MILTER_MOD_CHGHDR, 2, "Subject", " three"},
        {MILTER_MOD_CHGHDR, 1, "X-Gone", ""},
        {MILTER_MOD_CHGFROM, 0, "<new@x>", "BODY=8BITMIME"},
        {MILTER_MOD_CHGFROM, 0, "<new2@x>", NULL},
        {MILTER_MOD_ADDRCPT, 0, "<add@x>", "NOTIFY=NEVER"},
        {MILTER_MOD_ADDRCPT, 0, "<plain@x>", NULL},
        {MILTER_MOD_DELRCPT, 0, "<del@x>", NULL},
        {MILTER_MOD_QUARANTINE, 0, "suspicious", NULL},
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    assert_int_equal(milter_mods_count(m), n);
    for (size_t i = 0; i < n; i++) {
        const struct milter_mod *mod = milter_mod_at(m, i);
        assert_int_equal(mod->type, want[i].t);
        assert_int_equal(mod->index, want[i].idx);
        assert_string_equal(mod->name, want[i].name);
        if (want[i].value)
            assert_string_equal(mod->value, want[i].value);
        else
            assert_null(mod->value);
    }
    assert_null(milter_mod_at(m, n));
    const char *body;
    size_t blen;
    assert_true(milter_body_replaced(m, &body, &blen));
    assert_int_equal(blen, 10);
    assert_memory_equal(body, "new body\r\n", 10);

    /* a new message forgets them */
    struct buf out = {0};
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    buf_free(&out);
    assert_int_equal(milter_mods_count(m), 0);
    assert_false(milter_body_replaced(m, &body, &blen));
    milter_free(m);
}

static void test_mod_errors(void **state)
{
    (void)state;
    struct buf in = {0}, out = {0};
    /* an action the filter did not negotiate */
    struct milter *m = nego(ALL_ACTIONS & ~MILTER_ACT_ADDHDRS, 0, NULL);
    to_eom(m);
    pkt2(&in, 'h', "X-A", "b");
    feed_error(m, &in, "did not negotiate");
    milter_free(m);
    m = nego(MILTER_ACT_ADDRCPT, 0, NULL);
    to_eom(m);
    pkt2(&in, '2', "<a@x>", "X=Y");
    feed_error(m, &in, "did not negotiate");
    milter_free(m);
    /* outside EOM */
    m = nego(ALL_ACTIONS, 0, NULL);
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    buf_free(&out);
    pkt2(&in, 'h', "X-A", "b");
    feed_error(m, &in, "not at end of message");
    milter_free(m);
    /* a body above the bound (1000 in nego) */
    m = nego(ALL_ACTIONS, 0, NULL);
    to_eom(m);
    static char big[600];
    memset(big, 'x', sizeof(big));
    pkt(&in, 'b', big, sizeof(big));
    pkt(&in, 'b', big, sizeof(big));
    feed_error(m, &in, "replaced body above 1000");
    milter_free(m);
    /* header edits above the bound */
    m = nego(ALL_ACTIONS, 0, NULL);
    to_eom(m);
    big[200] = '\0';
    for (int i = 0; i < 6; i++)
        pkt2(&in, 'h', "X-A", big);
    feed_error(m, &in, "modifications above 1000");
    milter_free(m);
    /* SETSYMLIST is only for the negotiation */
    m = nego(ALL_ACTIONS, 0, NULL);
    to_eom(m);
    pkt(&in, 'l', "\0\0\0\0j\0", 6);
    feed_error(m, &in, "not allowed after eom");
    milter_free(m);
}

static void test_wire_errors(void **state)
{
    (void)state;
    struct buf in = {0}, out = {0};
    struct milter *m;
#define WAITING_MAIL()                                                                             \
    do {                                                                                           \
        m = nego(ALL_ACTIONS, 0, NULL);                                                            \
        assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);                     \
        buf_free(&out);                                                                            \
    } while (0)

    WAITING_MAIL();
    assert_int_equal(buf_append(&in, "\0\0\0\0c", 5), 0);
    feed_error(m, &in, "length 0");
    milter_free(m);
    WAITING_MAIL();
    /* refused on its four length octets, before any data */
    assert_int_equal(buf_append(&in, "\0\x01\0\x11", 4), 0);
    feed_error(m, &in, "too large");
    milter_free(m);
    WAITING_MAIL();
    pkt(&in, 'Z', NULL, 0);
    feed_error(m, &in, "unknown reply code");
    milter_free(m);
    WAITING_MAIL();
    pkt(&in, 'c', "x", 1);
    feed_error(m, &in, "data after a reply");
    milter_free(m);
    WAITING_MAIL();
    pkt(&in, 'y', "554 no NUL", 10);
    feed_error(m, &in, "NUL");
    milter_free(m);
    WAITING_MAIL();
    pkt(&in, 'a', NULL, 0);
    pkt(&in, 'c', NULL, 0); /* a second reply nobody asked for */
    struct milter_result res;
    size_t used;
    assert_int_equal(milter_feed(m, in.data, in.len, &used, &res), MILTER_FEED_RESULT);
    assert_int_equal(used, 5);
    assert_int_equal(milter_feed(m, in.data + 5, in.len - 5, &used, &res), MILTER_FEED_ERROR);
    assert_non_null(strstr(milter_error(m), "no reply is due"));
    buf_free(&in);
    milter_free(m);
    /* at EOM: short index, missing value NUL, empty header name */
    static const char *const bad[] = {"\0\0\0", "\0\0\0\1X\0v", "\0\0\0\1\0v\0"};
    static const size_t bad_len[] = {3, 7, 7};
    for (int i = 0; i < 3; i++) {
        m = nego(ALL_ACTIONS, 0, NULL);
        to_eom(m);
        pkt(&in, 'i', bad[i], bad_len[i]);
        feed_error(m, &in, "indexed reply malformed");
        milter_free(m);
    }
    /* SKIP: only after a body chunk, only when negotiated; PROGRESS only at EOM */
    WAITING_MAIL();
    pkt(&in, 's', NULL, 0);
    feed_error(m, &in, "skip after mail");
    milter_free(m);
    WAITING_MAIL();
    pkt(&in, 'p', NULL, 0);
    feed_error(m, &in, "progress after mail");
    milter_free(m);
    WAITING_MAIL();
    reply_code(m, 'c');
    assert_int_equal(milter_body(m, &out, "x", 1), MILTER_WAIT);
    pkt(&in, 's', NULL, 0);
    feed_error(m, &in, "without negotiating");
    buf_free(&out);
    milter_free(m);
    /* caller errors fail the dialogue too */
    WAITING_MAIL();
    assert_int_equal(milter_rcpt(m, &out, "<r@x>", NULL, 0, false), MILTER_FAILED);
    assert_non_null(strstr(milter_error(m), "out of order"));
    milter_free(m);
    static char huge[MILTER_CHUNK_MAX + 1];
    m = nego(0, 0, NULL);
    assert_int_equal(milter_body(m, &out, huge, sizeof(huge)), MILTER_FAILED);
    milter_free(m);
#undef WAITING_MAIL
}

static void test_skip(void **state)
{
    (void)state;
    struct milter *m = nego(0, MILTER_P_SKIP, NULL);
    struct buf out = {0}, in = {0};
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    assert_int_equal(milter_body(m, &out, "x", 1), MILTER_WAIT);
    pkt(&in, 's', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_SKIP);
    buf_free(&out);
    assert_int_equal(milter_body(m, &out, "y", 1), MILTER_NOWAIT);
    assert_int_equal(out.len, 0);
    assert_int_equal(milter_eom(m, &out), MILTER_WAIT);
    reply_code(m, 'a');
    /* the next message has its whole body sent again */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    assert_int_equal(milter_body(m, &out, "z", 1), MILTER_WAIT);
    buf_free(&out);
    milter_free(m);
}

static void test_abort_and_rcpt_rej(void **state)
{
    (void)state;
    struct milter *m = nego(0, 0, NULL);
    struct buf out = {0}, in = {0};
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    /* refused recipients are not sent without SMFIP_RCPT_REJ (macros still are) */
    assert_int_equal(milter_rcpt(m, &out, "<r@x>", NULL, 0, true), MILTER_NOWAIT);
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.data, "\0\0\0\2DR", 6);
    buf_free(&out);
    assert_int_equal(milter_abort(m, &out), MILTER_NOWAIT);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "\0\0\0\1A", 5);
    buf_free(&out);
    assert_int_equal(milter_abort(m, &out), MILTER_NOWAIT);
    assert_int_equal(out.len, 0);
    /* HELO in a message aborts it first */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    assert_int_equal(milter_helo(m, &out, "again"), MILTER_WAIT);
    assert_memory_equal(out.data, "\0\0\0\1A", 5);
    buf_free(&out);
    pkt(&in, 'c', NULL, 0);
    assert_int_equal(feed_verdict(m, &in), MILTER_CONTINUE);
    /* abort while a step waits is the caller's error */
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    assert_int_equal(milter_abort(m, &out), MILTER_FAILED);
    buf_free(&out);
    milter_free(m);

    m = nego(0, MILTER_P_RCPT_REJ, NULL);
    assert_int_equal(milter_mail(m, &out, "<s@x>", NULL, 0), MILTER_WAIT);
    reply_code(m, 'c');
    buf_free(&out);
    assert_int_equal(milter_rcpt(m, &out, "<r@x>", NULL, 0, true), MILTER_WAIT);
    buf_free(&out);
    milter_free(m);
}

/* ---- (b) real filters ---- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static pid_t child; /* the filter of the running test, stopped by its teardown */

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (f)
            dup2(fileno(f), 2);
        execv(argv[0], argv);
        _exit(127);
    }
    child = pid;
    return pid;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        close(fd);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    return -1;
}

static void stop(pid_t pid)
{
    child = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

struct live {
    int fd;
    struct milter *m;
    struct buf out;
    int progress;
    char reply[256]; /* the last REPLYCODE text */
};

/* Sends what the step appended; when it waits, reads until its result. */
static enum milter_verdict live(struct live *l, enum milter_wait w)
{
    for (size_t off = 0; off < l->out.len;) {
        ssize_t n = write(l->fd, l->out.data + off, l->out.len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    buf_free(&l->out);
    if (w != MILTER_WAIT)
        return MILTER_CONTINUE;
    char b[4096];
    for (;;) {
        ssize_t n = read(l->fd, b, sizeof(b));
        if (n <= 0)
            fail_msg("filter closed the connection: %s", milter_error(l->m));
        for (size_t off = 0; off < (size_t)n;) {
            struct milter_result res;
            size_t used;
            enum milter_feed_status st = milter_feed(l->m, b + off, (size_t)n - off, &used, &res);
            off += used;
            if (st == MILTER_FEED_ERROR)
                fail_msg("milter: %s", milter_error(l->m));
            if (st == MILTER_FEED_RESULT && res.verdict == MILTER_PROGRESS)
                l->progress++;
            else if (st == MILTER_FEED_RESULT) {
                assert_int_equal(off, (size_t)n);
                if (res.reply)
                    snprintf(l->reply, sizeof(l->reply), "%s", res.reply);
                return res.verdict;
            }
        }
    }
}

struct live_macros {
    char rcpt[128]; /* {rcpt_addr}: the RCPT's address without its angle brackets */
};

static void set_rcpt(struct live_macros *lm, const char *rcpt)
{
    snprintf(lm->rcpt, sizeof(lm->rcpt), "%.*s", (int)strlen(rcpt) - 2, rcpt + 1);
}

static const char *live_macro(void *arg, const char *name)
{
    struct live_macros *lm = arg;
    if (strcmp(name, "j") == 0)
        return "mx.ringmail.test";
    if (strcmp(name, "i") == 0)
        return "QID123";
    if (strcmp(name, "{rcpt_addr}") == 0)
        return lm->rcpt;
    if (strcmp(name, "{msg_id}") == 0)
        return "<id@ringmail.test>";
    if (strcmp(name, "{daemon_name}") == 0)
        return "MTA";
    return NULL;
}

static const char message[] = "From: <a@example.test>\r\n"
                              "To: <b@example.test>\r\n"
                              "Subject: hello\r\n"
                              "\tfolded\r\n"
                              "X-Remove: me\r\n"
                              "Date: Fri, 04 Dec 2026 16:00:00 +0000\r\n"
                              "Message-ID: <id@ringmail.test>\r\n"
                              "\r\n"
                              "line one\r\n"
                              "line two\r\n";

/* A message from `sender` to `rcpts` through the filter; returns the last verdict. */
static enum milter_verdict live_message(struct live *l, struct live_macros *lm, const char *sender,
                                        const char *const *rcpts, size_t n_rcpts,
                                        struct milter_hdrs *h)
{
    enum milter_verdict v =
        live(l, milter_mail(l->m, &l->out, sender, (const char *const[]){"SIZE=100"}, 1));
    if (v != MILTER_CONTINUE)
        return v;
    for (size_t i = 0; i < n_rcpts; i++) {
        set_rcpt(lm, rcpts[i]);
        v = live(l, milter_rcpt(l->m, &l->out, rcpts[i], NULL, 0, false));
        if (v != MILTER_CONTINUE)
            return v;
    }
    v = live(l, milter_data(l->m, &l->out));
    if (v != MILTER_CONTINUE)
        return v;
    size_t body;
    assert_int_equal(milter_hdrs_parse(h, message, sizeof(message) - 1, &body), 0);
    for (size_t i = 0; i < h->n; i++) {
        v = live(l, milter_header(l->m, &l->out, h->v[i].name, h->v[i].value));
        if (v != MILTER_CONTINUE)
            return v;
    }
    v = live(l, milter_eoh(l->m, &l->out));
    if (v != MILTER_CONTINUE)
        return v;
    v = live(l, milter_body(l->m, &l->out, message + body, sizeof(message) - 1 - body));
    if (v != MILTER_CONTINUE && v != MILTER_SKIP)
        return v;
    return live(l, milter_eom(l->m, &l->out));
}

static void live_open(struct live *l, struct live_macros *lm, const char *sock)
{
    l->fd = connect_unix(sock);
    assert_true(l->fd >= 0);
    l->m = milter_new(&filter, NULL, live_macro, lm, 1 << 20);
    assert_non_null(l->m);
    buf_init(&l->out, 0);
    l->progress = 0;
    assert_int_equal(live(l, milter_negotiate(l->m, &l->out)), MILTER_CONTINUE);
}

static void live_close(struct live *l)
{
    live(l, milter_quit(l->m, &l->out));
    milter_free(l->m);
    close(l->fd);
}

static void test_python_milter(void **state)
{
    (void)state;
    char script[4096], sock[128], log[128];
    snprintf(script, sizeof(script), "%s", __FILE__);
    snprintf(script + strlen(dirname(script)), sizeof(script) - strlen(script),
             "/milter_filter.py");
    snprintf(sock, sizeof(sock), "%s/py.sock", tmpdir);
    snprintf(log, sizeof(log), "%s/py.log", tmpdir);
    pid_t pid = spawn((char *const[]){"/usr/bin/python3", script, sock, NULL}, log);

    struct live_macros lm = {0};
    struct live l;
    live_open(&l, &lm, sock);
    /* the filter's @noreply header callback, libmilter's SKIP; no LEADSPC, no RCPT_REJ */
    assert_true(milter_protocol(l.m) & MILTER_P_NR_HDR);
    assert_true(milter_protocol(l.m) & MILTER_P_SKIP);
    assert_false(milter_protocol(l.m) & MILTER_P_HDR_LEADSPC);
    assert_int_equal(milter_actions(l.m), ALL_ACTIONS);

    assert_int_equal(
        live(&l, milter_connect(l.m, &l.out, "client.example", '4', 4242, "192.0.2.1")),
        MILTER_CONTINUE);
    assert_int_equal(live(&l, milter_helo(l.m, &l.out, "client.example")), MILTER_CONTINUE);

    /* 1: every modification */
    struct milter_hdrs h;
    milter_hdrs_init(&h);
    const char *rcpts[] = {"<a@example.test>", "<b@example.test>"};
    assert_int_equal(live_message(&l, &lm, "<s@example.test>", rcpts, 2, &h), MILTER_ACCEPT);
    assert_int_equal(l.progress, 1);
    assert_int_equal(milter_mods_count(l.m), 8);
    const struct milter_mod *mod = milter_mod_at(l.m, 0);
    assert_int_equal(mod->type, MILTER_MOD_ADDHDR);
    assert_string_equal(mod->name, "X-Seen");
    static const char *const seen[] = {
        " connect=client.example/192.0.2.1/j=mx.ringmail.test",
        " helo=client.example",
        " mail=<s@example.test> SIZE=100/i=QID123",
        " rcpt=<a@example.test>/a@example.test",
        " rcpt=<b@example.test>/b@example.test",
        " hdr=Subject:hello|\tfolded",
        " hdr=X-Remove:me",
        " eoh body=20/msg_id=<id@ringmail.test>",
    };
    for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
        if (!strstr(mod->value, seen[i]))
            fail_msg("X-Seen \"%s\" lacks \"%s\"", mod->value, seen[i]);
    mod = milter_mod_at(l.m, 1);
    assert_int_equal(mod->type, MILTER_MOD_INSHDR);
    assert_int_equal(mod->index, 0);
    assert_string_equal(mod->value, " inserted");
    mod = milter_mod_at(l.m, 2);
    assert_int_equal(mod->type, MILTER_MOD_CHGHDR);
    assert_int_equal(mod->index, 1);
    assert_string_equal(mod->name, "Subject");
    mod = milter_mod_at(l.m, 3);
    assert_int_equal(mod->type, MILTER_MOD_CHGHDR);
    assert_string_equal(mod->value, "");
    mod = milter_mod_at(l.m, 4);
    assert_int_equal(mod->type, MILTER_MOD_ADDRCPT);
    assert_string_equal(mod->name, "<added@example.test>");
    assert_string_equal(mod->value, "NOTIFY=NEVER");
    mod = milter_mod_at(l.m, 5);
    assert_int_equal(mod->type, MILTER_MOD_DELRCPT);
    assert_string_equal(mod->name, "<b@example.test>");
    mod = milter_mod_at(l.m, 6);
    assert_int_equal(mod->type, MILTER_MOD_CHGFROM);
    assert_string_equal(mod->name, "<changed@example.test>");
    assert_string_equal(mod->value, "BODY=8BITMIME");
    mod = milter_mod_at(l.m, 7);
    assert_int_equal(mod->type, MILTER_MOD_QUARANTINE);
    assert_string_equal(mod->name, "held for review");
    const char *body;
    size_t blen;
    assert_true(milter_body_replaced(l.m, &body, &blen));
    assert_int_equal(blen, 15);
    assert_memory_equal(body, "replaced body\r\n", 15);
    /* the header edits applied as the glue will */
    for (size_t i = 0; i < milter_mods_count(l.m); i++)
        assert_int_equal(milter_hdrs_apply(&h, milter_mod_at(l.m, i)), 0);
    struct buf ser = {0};
    assert_int_equal(milter_hdrs_write(&h, &ser), 0);
    assert_int_equal(buf_append(&ser, "", 1), 0);
    assert_true(strncmp(ser.data, "X-Top: inserted\r\nFrom: <a@example.test>\r\n", 41) == 0);
    assert_non_null(strstr(ser.data, "\r\nSubject: changed subject\r\nDate:"));
    assert_null(strstr(ser.data, "\r\nX-Remove:"));
    assert_non_null(strstr(ser.data, "\r\nX-Seen: connect="));
    buf_free(&ser);
    milter_hdrs_free(&h);

    /* 2: TEMPFAIL at MAIL; 3: REJECT with a reply code at RCPT, then DISCARD at RCPT */
    assert_int_equal(live_message(&l, &lm, "<tempfail-mail@example.test>", rcpts, 1, &h),
                     MILTER_TEMPFAIL);
    milter_hdrs_free(&h);
    assert_int_equal(live(&l, milter_mail(l.m, &l.out, "<s@example.test>", NULL, 0)),
                     MILTER_CONTINUE);
    set_rcpt(&lm, "<reject@example.test>");
    assert_int_equal(live(&l, milter_rcpt(l.m, &l.out, "<reject@example.test>", NULL, 0, false)),
                     MILTER_REPLYCODE);
    assert_string_equal(l.reply, "550 5.7.1 no such user here");
    assert_int_equal(live(&l, milter_rcpt(l.m, &l.out, "<discard@example.test>", NULL, 0, false)),
                     MILTER_DISCARD);
    assert_int_equal(milter_data(l.m, &l.out), MILTER_DONE);
    live(&l, milter_abort(l.m, &l.out));

    /* 4: a multi-line reply at EOM, after the body was skipped */
    const char *one[] = {"<a@example.test>"};
    assert_int_equal(live_message(&l, &lm, "<mlreply-skip@example.test>", one, 1, &h),
                     MILTER_REPLYCODE);
    assert_string_equal(l.reply, "554-5.7.1 first line\r\n554 5.7.1 second line");
    milter_hdrs_free(&h);
    live_close(&l);
    stop(pid);
}

/* opendkim signs a message from an internal client: a DKIM-Signature with d=example.test
 * comes back as a header addition or insertion. */
static void test_opendkim(void **state)
{
    (void)state;
    if (access("/usr/sbin/opendkim", X_OK) != 0 || access("/usr/sbin/opendkim-genkey", X_OK) != 0)
        skip();
    char cmd[512], conf[128], sock[128], log[128];
    snprintf(cmd, sizeof(cmd), "/usr/sbin/opendkim-genkey -D %s -d example.test -s sel", tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(conf, sizeof(conf), "%s/opendkim.conf", tmpdir);
    snprintf(sock, sizeof(sock), "%s/dkim.sock", tmpdir);
    snprintf(log, sizeof(log), "%s/dkim.log", tmpdir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "Socket local:%s\nMode s\nDomain example.test\nKeyFile %s/sel.private\n"
            "Selector sel\nBackground no\nSyslog no\nPidFile %s/dkim.pid\n"
            "RequireSafeKeys no\n",
            sock, tmpdir, tmpdir);
    fclose(f);
    pid_t pid = spawn((char *const[]){"/usr/sbin/opendkim", "-f", "-x", conf, NULL}, log);

    struct live_macros lm = {0};
    struct live l;
    live_open(&l, &lm, sock);
    assert_int_equal(live(&l, milter_connect(l.m, &l.out, "localhost", '4', 4242, "127.0.0.1")),
                     MILTER_CONTINUE);
    assert_int_equal(live(&l, milter_helo(l.m, &l.out, "localhost")), MILTER_CONTINUE);
    struct milter_hdrs h;
    milter_hdrs_init(&h);
    const char *rcpts[] = {"<b@example.test>"};
    enum milter_verdict v = live_message(&l, &lm, "<a@example.test>", rcpts, 1, &h);
    assert_true(v == MILTER_ACCEPT);
    bool signed_ = false;
    for (size_t i = 0; i < milter_mods_count(l.m); i++) {
        const struct milter_mod *mod = milter_mod_at(l.m, i);
        if ((mod->type == MILTER_MOD_INSHDR || mod->type == MILTER_MOD_ADDHDR) &&
            strcmp(mod->name, "DKIM-Signature") == 0 && strstr(mod->value, "d=example.test")) {
            signed_ = true;
            assert_int_equal(milter_hdrs_apply(&h, mod), 0);
        }
    }
    assert_true(signed_);
    struct buf ser = {0};
    assert_int_equal(milter_hdrs_write(&h, &ser), 0);
    assert_int_equal(buf_append(&ser, "", 1), 0);
    assert_non_null(strstr(ser.data, "DKIM-Signature: v=1;"));
    buf_free(&ser);
    milter_hdrs_free(&h);
    live_close(&l);
    stop(pid);
}

/* A failed assertion leaves its test early: its filter must not outlive it. */
static int stop_child(void **state)
{
    (void)state;
    if (child > 0)
        stop(child);
    return 0;
}

static int live_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_milter.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int live_teardown(void **state)
{
    (void)state;
    return getenv("KEEP") ? 0 : nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_negotiate_offer),    cmocka_unit_test(test_negotiate_refusals),
        cmocka_unit_test(test_old_versions),       cmocka_unit_test(test_connect_packet),
        cmocka_unit_test(test_macros_per_step),    cmocka_unit_test(test_setsymlist),
        cmocka_unit_test(test_no_and_nr_flags),    cmocka_unit_test(test_header_leadspc),
        cmocka_unit_test(test_verdicts),           cmocka_unit_test(test_replycode),
        cmocka_unit_test(test_eom_mods),           cmocka_unit_test(test_mod_errors),
        cmocka_unit_test(test_wire_errors),        cmocka_unit_test(test_skip),
        cmocka_unit_test(test_abort_and_rcpt_rej),
    };
    const struct CMUnitTest real[] = {
        cmocka_unit_test_teardown(test_python_milter, stop_child),
        cmocka_unit_test_teardown(test_opendkim, stop_child),
    };
    signal(SIGPIPE, SIG_IGN);
    int failed = cmocka_run_group_tests_name("pure", pure, NULL, NULL);
    if (failed)
        return failed;
    if (system("/usr/bin/python3 -c 'import Milter' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: /usr/bin/python3 cannot import Milter (python3-milter)\n");
        return 77;
    }
    return cmocka_run_group_tests_name("real filters", real, live_setup, live_teardown);
}
