/*
 * ringmail-sendmail — sendmail's command line (installed as sendmail, with mailq,
 * newaliases, hoststat and purgestat as links: argv[0] chooses, as sendmail's does).
 *
 * A message (the default mode) is prepared here (cli/msgprep: -t, Bcc, -i, CRLF) and handed
 * to the running daemon over its submission socket (cli/submit_client); when the daemon is
 * down it goes to the maildrop through ringmail-postdrop, and the daemon picks it up when it
 * starts. Either way it is durable before we exit 0. The other modes are the queue tools
 * (cli/mailq, cli/queuectl), newaliases, -bv/-bt (cli/verify), -bs (a byte proxy to the
 * socket) and -bd/-bD (ringmaild itself). Exit codes are sysexits, as sendmail's
 * (docs/command-line.md, "Exit codes").
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli/cli_config.h"
#include "cli/maildrop.h"
#include "cli/mailq.h"
#include "cli/newaliases.h"
#include "cli/msgprep.h"
#include "cli/queuectl.h"
#include "cli/sendmail_args.h"
#include "cli/submit_client.h"
#include "cli/verify.h"
#include "core/version.h"
#include "util/buf.h"
#include "util/progpath.h"

/* What the command line knows of the caller and the message's envelope. */
struct sm_envelope {
    const struct config *cfg;
    const struct sendmail_args *a;
    char *sender; /* qualified; "" = the null sender */
    char **rcpts; /* qualified, the command line's then the header's (-t) */
    size_t n_rcpts;
};

/* A message on its way: held until a chunk is full (so small messages declare their exact
 * SIZE and an 8-bit body), then streamed to the daemon or to ringmail-postdrop. */
struct sm_submission {
    struct sm_envelope *env;
    struct msgprep prep;
    struct submit_transcript transcript;
    struct buf pending;
    bool started, failed, eight_bit;
    struct submit_client *client;
    struct submit_reply *rcpt_replies;
    int postdrop_fd;
    pid_t postdrop_pid;
    int status;                /* sysexits */
    struct submit_reply reply; /* why it failed, for the error mode */
    char qid[64];
    char accepted_text[SUBMIT_REPLY_MAX]; /* the final reply's text after its codes */
};

/* "user" -> "user@hostname", "<a@b>" -> "a@b"; malloc'd. */
static char *sm_qualify(const char *addr, const char *hostname)
{
    size_t len = strlen(addr);
    if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
        addr++;
        len -= 2;
    }
    char *out;
    bool bare = len > 0 && !memchr(addr, '@', len);
    if (asprintf(&out, "%.*s%s%s", (int)len, addr, bare ? "@" : "", bare ? hostname : "") < 0)
        return NULL;
    return out;
}

static bool sm_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* The body type to declare: -B's, else 8BITMIME when an octet above 127 was seen. */
static const char *sm_body_type(const struct sm_submission *s)
{
    if (s->env->a->body_type)
        return strcasecmp(s->env->a->body_type, "8BITMIME") == 0 ? "8BITMIME" : "7BIT";
    return s->eight_bit ? "8BITMIME" : NULL;
}

/* SMTPUTF8 (RFC 6531) only when an address is not ASCII: a UTF-8 Subject from a cron job
 * travels as 8BITMIME, as Postfix's sendmail does, and is never bounced with 5.6.7 by a next
 * hop without SMTPUTF8. */
static bool sm_smtputf8(const struct sm_submission *s)
{
    if (!sm_ascii(s->env->sender, strlen(s->env->sender)))
        return true;
    for (size_t i = 0; i < s->env->n_rcpts; i++)
        if (!sm_ascii(s->env->rcpts[i], strlen(s->env->rcpts[i])))
            return true;
    return false;
}

static void sm_fail(struct sm_submission *s, int status, const struct submit_reply *reply)
{
    s->failed = true;
    s->status = status;
    if (reply)
        s->reply = *reply;
}

static void sm_fail_text(struct sm_submission *s, int status, const char *text)
{
    struct submit_reply r = {0};
    snprintf(r.text, sizeof(r.text), "%s", text);
    sm_fail(s, status, &r);
}

/* The daemon is down: the maildrop file's head, then everything else goes to postdrop. */
static int sm_start_maildrop(struct sm_submission *s, const struct buf *header)
{
    const struct sendmail_args *a = s->env->a;
    char err[512];
    struct maildrop_envelope me = {
        /* "" makes the pickup use the file owner's own address, as we would */
        .sender = (char *)(a->sender ? (*s->env->sender ? s->env->sender : "<>") : ""),
        .fullname = (char *)a->fullname,
        .notify = (char *)a->dsn_notify,
        .ret = (char *)a->dsn_ret,
        .envid = (char *)a->envid,
        .body = (char *)sm_body_type(s),
        .rcpts = s->env->rcpts,
        .n_rcpts = s->env->n_rcpts,
    };
    struct buf head;
    buf_init(&head, 0);
    if (maildrop_format_head(&me, &head, err, sizeof(err)) < 0) {
        buf_free(&head);
        sm_fail_text(s, EX_DATAERR, err);
        return -1;
    }
    s->postdrop_fd =
        maildrop_postdrop_start(config_find(a->config), &s->postdrop_pid, err, sizeof(err));
    int rc = s->postdrop_fd < 0 ? -1 : 0;
    for (const struct buf *b = &head; rc == 0 && b; b = b == &head ? header : NULL)
        for (size_t off = 0; rc == 0 && off < b->len;) {
            ssize_t n = write(s->postdrop_fd, b->data + off, b->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                snprintf(err, sizeof(err), "writing to ringmail-postdrop: %s", strerror(errno));
                rc = -1;
            } else {
                off += (size_t)n;
            }
        }
    buf_free(&head);
    if (rc < 0)
        sm_fail_text(s, EX_TEMPFAIL, err);
    return rc;
}

/* The daemon is up: MAIL and RCPT. `final_size`: the message's size when all of it is here. */
static int sm_start_socket(struct sm_submission *s, const struct buf *header, uint64_t final_size)
{
    const struct sendmail_args *a = s->env->a;
    uint64_t size = final_size;
    struct stat st;
    if (!size && fstat(0, &st) == 0 && S_ISREG(st.st_mode))
        size = (uint64_t)st.st_size; /* an estimate, as RFC 1870 allows */
    struct submit_envelope env = {
        .sender = s->env->sender,
        .fullname = a->fullname,
        .notify = a->dsn_notify,
        .ret = a->dsn_ret,
        .envid = a->envid,
        .body = sm_body_type(s),
        .size = size,
        .smtputf8 = sm_smtputf8(s),
        .rcpts = (const char *const *)s->env->rcpts,
        .n_rcpts = s->env->n_rcpts,
    };
    struct submit_reply reply;
    if (!(s->rcpt_replies = calloc(env.n_rcpts, sizeof(*s->rcpt_replies)))) {
        sm_fail_text(s, EX_OSERR, "out of memory");
        return -1;
    }
    int n = submit_envelope(s->client, &env, &reply, s->rcpt_replies);
    if (n < 0) {
        sm_fail(s, reply.code ? submit_exit_status(&reply) : EX_TEMPFAIL, &reply);
        return -1;
    }
    if (n == 0) {
        /* Every recipient refused: nothing is sent; the last refusal sets the status. */
        sm_fail(s, submit_exit_status(&s->rcpt_replies[env.n_rcpts - 1]), NULL);
        s->reply.code = 0;
        s->reply.text[0] = '\0';
        return -1;
    }
    return submit_write(s->client, header->data, header->len, &reply) < 0
               ? (sm_fail(s, submit_exit_status(&reply), &reply), -1)
               : 0;
}

/* msgprep's header callback: the envelope recipients are final (the command line's, or with
 * -t the header's minus the command line's), qualified as sendmail qualifies them. */
static int sm_header_done(void *arg, const struct msgprep *m)
{
    struct sm_submission *s = arg;
    struct sm_envelope *e = s->env;
    if (!(e->rcpts = calloc(m->n_rcpts ? m->n_rcpts : 1, sizeof(*e->rcpts)))) {
        sm_fail_text(s, EX_OSERR, "out of memory");
        return EX_OSERR;
    }
    for (; e->n_rcpts < m->n_rcpts; e->n_rcpts++)
        if (!(e->rcpts[e->n_rcpts] = sm_qualify(m->rcpts[e->n_rcpts], e->cfg->hostname))) {
            sm_fail_text(s, EX_OSERR, "out of memory");
            return EX_OSERR;
        }
    if (e->n_rcpts == 0) {
        sm_fail_text(s, EX_USAGE, "No recipient addresses found in header");
        return EX_USAGE;
    }
    return EX_OK;
}

static int sm_start(struct sm_submission *s, uint64_t final_size)
{
    const struct buf *header = &s->prep.header;
    s->started = true;
    s->eight_bit |= !sm_ascii(header->data, header->len);
    struct submit_reply reply;
    bool no_daemon;
    s->client = submit_connect(s->env->cfg->submission_socket, s->env->cfg->hostname,
                               &s->transcript, &reply, &no_daemon);
    if (s->client)
        return sm_start_socket(s, header, final_size);
    if (no_daemon)
        return sm_start_maildrop(s, header);
    sm_fail(s, EX_TEMPFAIL, &reply);
    return -1;
}

static int sm_write(struct sm_submission *s, const void *data, size_t len)
{
    if (s->client) {
        struct submit_reply reply;
        if (submit_write(s->client, data, len, &reply) < 0) {
            sm_fail(s, submit_exit_status(&reply), &reply);
            return -1;
        }
        return 0;
    }
    for (const char *p = data; len > 0;) {
        ssize_t n = write(s->postdrop_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            char err[256];
            snprintf(err, sizeof(err), "writing to ringmail-postdrop: %s", strerror(errno));
            sm_fail_text(s, EX_TEMPFAIL, err);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* msgprep's body output: held until a chunk is full, then passed on. Non-zero stops
 * msgprep (the caller then reads the rest of the input and drops it, so a writer never
 * gets SIGPIPE). */
static int sm_body(void *arg, const char *data, size_t len)
{
    struct sm_submission *s = arg;
    if (s->started)
        return sm_write(s, data, len) < 0 ? s->status : 0;
    s->eight_bit |= !sm_ascii(data, len);
    if (buf_append(&s->pending, data, len) < 0) {
        sm_fail_text(s, EX_OSERR, "out of memory");
        return EX_OSERR;
    }
    if (s->pending.len >= SUBMIT_CHUNK) {
        if (sm_start(s, 0) < 0 || sm_write(s, s->pending.data, s->pending.len) < 0)
            return s->status;
        buf_free(&s->pending);
    }
    return 0;
}

/* A reply's text after its codes ("550 5.1.1 text" -> "text"), the lines joined by "; ". */
static void sm_reply_text(const struct submit_reply *r, char *out, size_t outlen)
{
    const char *p = r->text;
    size_t used = 0;
    out[0] = '\0';
    while (*p) {
        size_t len = strcspn(p, "\n");
        const char *t = p, *end = p + len;
        if (r->code && len >= 4 && isdigit((unsigned char)t[0]))
            t += 4;
        if (r->code && end - t > 6 && isdigit((unsigned char)t[0]) && t[1] == '.') {
            const char *sp = memchr(t, ' ', (size_t)(end - t));
            t = sp ? sp + 1 : t;
        }
        int n = snprintf(out + used, outlen - used, "%s%.*s", used ? "; " : "", (int)(end - t), t);
        if (n < 0 || (size_t)n >= outlen - used)
            return;
        used += (size_t)n;
        p = *end ? end + 1 : end;
    }
}

/* The end of the message: what is still held goes, then the last chunk or postdrop's
 * commit. */
static void sm_finish(struct sm_submission *s)
{
    const struct buf *header = &s->prep.header;
    bool whole = !s->failed && !s->started; /* all of the message is in hand */
    if (whole && sm_start(s, header->len + s->pending.len) == 0)
        sm_write(s, s->pending.data, s->pending.len);
    struct submit_reply reply;
    if (!s->failed && s->client) {
        if (submit_finish(s->client, s->qid, sizeof(s->qid), &reply) < 0)
            sm_fail(s, submit_exit_status(&reply), &reply);
        else
            sm_reply_text(&reply, s->accepted_text, sizeof(s->accepted_text));
    }
    /* The daemon is there but cannot take it now (a 4xx, or it went away): the message
     * waits in the maildrop, as sendmail's MSP keeps it in its client queue, rather than
     * being lost by a caller that ignores the exit status. (A message larger than one
     * chunk has been streamed already and is no longer in hand: that one exits 75.) */
    if (whole && s->client && s->failed && s->status == EX_TEMPFAIL) {
        submit_free(s->client);
        s->client = NULL;
        free(s->rcpt_replies);
        s->rcpt_replies = NULL;
        s->failed = false;
        s->status = EX_OK;
        s->reply = (struct submit_reply){0};
        if (sm_start_maildrop(s, header) == 0)
            sm_write(s, s->pending.data, s->pending.len);
    }
    buf_free(&s->pending);
    if (s->postdrop_fd >= 0) {
        char err[256] = "";
        /* A message that did not arrive whole must never be committed: postdrop is stopped
         * before it sees the end of its input. */
        if (s->failed)
            kill(s->postdrop_pid, SIGKILL);
        int status = maildrop_postdrop_finish(s->postdrop_fd, s->postdrop_pid, err, sizeof(err));
        s->postdrop_fd = -1;
        if (!s->failed && status != EX_OK) {
            char text[512];
            snprintf(text, sizeof(text), "the message could not be put in the maildrop%s%s",
                     *err ? ": " : "", err);
            sm_fail_text(s, status, text);
        }
    }
}

/* One error line as sendmail prints it: "bob@example.com... User unknown". */
static void sm_error_line(struct buf *out, const char *who, const struct submit_reply *r)
{
    char text[SUBMIT_REPLY_MAX];
    sm_reply_text(r, text, sizeof(text));
    if (who && text[0] != '<')
        buf_printf(out, "%s... %s\n", who, text);
    else
        buf_printf(out, "%s\n", text);
}

/* Every error of the submission, one line each. */
static void sm_errors(const struct sm_submission *s, struct buf *out)
{
    for (size_t i = 0; s->rcpt_replies && i < s->env->n_rcpts; i++)
        if (s->rcpt_replies[i].code / 100 != 2)
            sm_error_line(out, s->env->rcpts[i], &s->rcpt_replies[i]);
    if (s->reply.code)
        sm_error_line(out, s->env->sender, &s->reply);
    else if (s->reply.text[0])
        buf_printf(out, "%s: %s\n", s->env->a->progname, s->reply.text);
}

/* sendmail -oem: the errors go back to the sender as a message from MAILER-DAEMON (the null
 * sender), with the original header, through the same socket. 0 once the daemon took it. */
static int sm_mail_errors(const struct sm_submission *s, const struct buf *errors)
{
    const struct config *cfg = s->env->cfg;
    if (!*s->env->sender)
        return -1;
    const struct buf *header = &s->prep.header;
    struct buf m;
    buf_init(&m, 0);
    buf_printf(&m,
               "From: Mail Delivery Subsystem <MAILER-DAEMON@%s>\r\n"
               "To: <%s>\r\n"
               "Subject: Returned mail: see transcript for details\r\n"
               "Auto-Submitted: auto-generated (failure)\r\n"
               "\r\n"
               "The original message was not accepted for delivery.\r\n"
               "\r\n"
               "   ----- Transcript of session follows -----\r\n",
               cfg->hostname, s->env->sender);
    for (const char *p = errors->data, *end = p + errors->len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        buf_printf(&m, "%.*s\r\n", (int)len, p);
        p += len + 1;
    }
    buf_printf(&m, "\r\n   ----- Original message header follows -----\r\n\r\n");
    buf_append(&m, header->data, header->len);
    struct submit_reply reply;
    bool no_daemon;
    struct submit_client *c =
        submit_connect(cfg->submission_socket, cfg->hostname, NULL, &reply, &no_daemon);
    const char *rcpt = s->env->sender;
    struct submit_envelope env = {.sender = "", .rcpts = &rcpt, .n_rcpts = 1, .size = m.len};
    struct submit_reply rcpt_reply;
    char qid[64];
    int rc = c && submit_envelope(c, &env, &reply, &rcpt_reply) == 1 &&
                     submit_write(c, m.data, m.len, &reply) == 0 &&
                     submit_finish(c, qid, sizeof(qid), &reply) == 0
                 ? 0
                 : -1;
    submit_free(c);
    buf_free(&m);
    return rc;
}

/* Reports what went wrong as -oe asks; the exit status. */
static int sm_report(const struct sm_submission *s)
{
    const struct sendmail_args *a = s->env->a;
    int status = s->status;
    for (size_t i = 0; status == EX_OK && s->rcpt_replies && i < s->env->n_rcpts; i++)
        if (s->rcpt_replies[i].code / 100 != 2)
            status = submit_exit_status(&s->rcpt_replies[i]);
    if (status == EX_OK || a->error_mode == 'q')
        return status;
    struct buf errors;
    buf_init(&errors, 0);
    sm_errors(s, &errors);
    char mode = a->error_mode;
    /* -oew: the user's terminal when there is one (sendmail writes to the login's tty),
     * else mail. */
    if (mode == 'w')
        mode = isatty(2) ? 'p' : 'm';
    if ((mode == 'm' || mode == 'e') && sm_mail_errors(s, &errors) == 0) {
        status = EX_OK;
    } else {
        fwrite(errors.data, 1, errors.len, stderr);
        if (mode == 'e')
            status = EX_OK;
    }
    buf_free(&errors);
    return status;
}

static void sm_envelope_free(struct sm_envelope *e)
{
    free(e->sender);
    for (size_t i = 0; i < e->n_rcpts; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
}

/* The envelope sender: -f/-r's (qualified; "" or "<>" is the null sender), else the
 * caller's login at this host. EX_OK or the status to exit with (said on stderr). */
static int sm_sender(struct sm_envelope *e)
{
    const struct sendmail_args *a = e->a;
    if (a->sender) {
        bool null = !*a->sender || strcmp(a->sender, "<>") == 0;
        e->sender = null ? strdup("") : sm_qualify(a->sender, e->cfg->hostname);
    } else {
        const struct passwd *pw = getpwuid(getuid());
        if (!pw) {
            fprintf(stderr, "%s: Who are you? (uid %ld has no passwd entry)\n", a->progname,
                    (long)getuid());
            return EX_NOUSER;
        }
        e->sender = sm_qualify(pw->pw_name, e->cfg->hostname);
    }
    if (!e->sender) {
        fprintf(stderr, "%s: out of memory\n", a->progname);
        return EX_OSERR;
    }
    return EX_OK;
}

/* -v: each recipient's outcome as sendmail's MSP prints it after handing the message to
 * its MTA ("bob@example.com... Sent (<qid> Message accepted for delivery)"). */
static void sm_verbose_outcome(const struct sm_submission *s, bool via_daemon)
{
    for (size_t i = 0; i < s->env->n_rcpts; i++) {
        if (!via_daemon)
            printf("%s... Queued in the maildrop (the mail daemon is not running or cannot take it "
                   "now)\n",
                   s->env->rcpts[i]);
        else if (s->rcpt_replies[i].code / 100 == 2)
            printf("%s... Sent (%s)\n", s->env->rcpts[i], s->accepted_text);
    }
}

/* Reads the message from stdin through msgprep; after a failure the rest is read and
 * dropped. */
static void sm_read_message(struct sm_submission *s)
{
    char in[16384];
    int status = EX_OK;
    for (;;) {
        ssize_t n = read(0, in, sizeof(in));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            char err[256];
            snprintf(err, sizeof(err), "reading the message: %s", strerror(errno));
            if (!s->failed)
                sm_fail_text(s, EX_IOERR, err);
            return;
        }
        if (n == 0) {
            if (status == EX_OK && !s->failed)
                status = msgprep_finish(&s->prep);
            break;
        }
        if (status == EX_OK && !s->failed)
            status = msgprep_feed(&s->prep, in, (size_t)n);
        if (status == EX_OK && !s->failed && s->prep.done) {
            status = msgprep_finish(&s->prep); /* a lone dot ended it: the rest is not read */
            break;
        }
    }
    /* msgprep's own errors (a NUL octet, a line too long, no recipients); a callback's
     * failure is already recorded. */
    if (status != EX_OK && !s->failed)
        sm_fail_text(s, status, s->prep.error);
}

/* The default mode: the message on stdin to its recipients. */
static int sm_deliver(const struct config *cfg, const struct sendmail_args *a)
{
    struct sm_envelope env = {.cfg = cfg, .a = a};
    struct sm_submission s = {.env = &env, .postdrop_fd = -1};
    if (a->verbose)
        s.transcript.verbose = stdout;
    FILE *xlog = a->xlog ? fopen(a->xlog, "a") : NULL;
    if (a->xlog && !xlog)
        fprintf(stderr, "%s: cannot open %s: %s\n", a->progname, a->xlog, strerror(errno));
    s.transcript.xlog = xlog;
    buf_init(&s.pending, 0);
    unsigned max_line = cfg->limits.max_text_line;
    struct msgprep_settings ps = {
        .read_recipients = a->read_recipients,
        .ignore_dots = a->ignore_dots,
        .max_size = cfg->limits.max_message_size,
        .max_header = cfg->limits.max_header_size,
        .max_line = max_line > 2 ? max_line - 2 : 0,
        .cmdline_rcpts = a->recipients,
        .n_cmdline_rcpts = a->n_recipients,
        .on_header = sm_header_done,
        .on_body = sm_body,
        .arg = &s,
    };
    int status = sm_sender(&env);
    if (status == EX_OK) {
        status = msgprep_init(&s.prep, &ps);
        if (status != EX_OK)
            fprintf(stderr, "%s: %s\n", a->progname, s.prep.error);
    }
    if (status == EX_OK) {
        sm_read_message(&s);
        sm_finish(&s);
        status = sm_report(&s);
    }
    bool via_daemon = s.client != NULL;
    submit_free(s.client); /* QUIT: the transcript ends before the delivery lines */
    /* -v: then the delivery attempt as the daemon logs it (sendmail -v shows the delivery
     * itself; here the daemon does it, and WATCH passes its lines on). */
    if (status == EX_OK && a->verbose && s.started) {
        sm_verbose_outcome(&s, via_daemon);
        fflush(stdout);
        if (via_daemon && *s.qid)
            queuectl_watch(cfg, s.qid, stdout);
    }
    msgprep_free(&s.prep);
    buf_free(&s.pending);
    free(s.rcpt_replies);
    sm_envelope_free(&env);
    if (xlog)
        fclose(xlog);
    return status;
}

/* sendmail -bs: SMTP on stdin/stdout, spoken by the daemon itself. */
static int sm_smtp(const struct config *cfg, const struct sendmail_args *a)
{
    struct submit_reply reply;
    bool no_daemon;
    int rc = submit_proxy(cfg->submission_socket, 0, 1, &reply, &no_daemon);
    if (rc == 0)
        return EX_OK;
    if (rc == -1) {
        /* The client is waiting for a greeting: give it SMTP's answer, and ours on stderr. */
        printf("421 4.3.2 %s mail daemon not running, try again later\r\n", cfg->hostname);
        fflush(stdout);
    }
    fprintf(stderr, "%s: %s\n", a->progname, reply.text);
    return rc == -1 ? EX_TEMPFAIL : EX_IOERR;
}

/* sendmail -bd / -bD: ringmaild itself, with the same configuration and -q's interval. */
static int sm_daemon(const struct sendmail_args *a)
{
    char prog[PATH_MAX];
    if (progpath_sibling("ringmaild", prog, sizeof(prog)) < 0) {
        fprintf(stderr, "%s: cannot find ringmaild beside this program\n", a->progname);
        return EX_OSFILE;
    }
    const char *config = config_find(a->config);
    const char *argv[8];
    char interval[32];
    size_t n = 0;
    argv[n++] = prog;
    if (config) {
        argv[n++] = "--config";
        argv[n++] = config;
    }
    if (a->mode == SM_MODE_DAEMON_FG)
        argv[n++] = "--foreground";
    if (a->queue_interval_sec) { /* -q30m: the daemon's queue interval, as sendmail's */
        snprintf(interval, sizeof(interval), "%lus", a->queue_interval_sec);
        argv[n++] = "--queue-interval";
        argv[n++] = interval;
    }
    argv[n] = NULL;
    fflush(NULL);
    execv(prog, (char *const *)argv);
    fprintf(stderr, "%s: cannot run %s: %s\n", a->progname, prog, strerror(errno));
    return EX_OSERR;
}

/* mailq / -bp, with -qR/-qS/-qI and -qQ restricting the listing as sendmail's do. */
static int sm_mailq(const struct config *cfg, const struct sendmail_args *a)
{
    char **filters = queuectl_filter_tokens(a);
    if (!filters) {
        fprintf(stderr, "%s: out of memory\n", a->progname);
        return EX_OSERR;
    }
    int rc = mailq_main(cfg, a->json, (const char *const *)filters, a->n_queue_filters,
                        a->queue_quarantine, stdout, stderr);
    queuectl_filter_tokens_free(filters);
    return rc;
}

static int sm_run(const struct config *cfg, const struct sendmail_args *a)
{
    switch (a->mode) {
    case SM_MODE_DELIVER:
        return sm_deliver(cfg, a);
    case SM_MODE_SMTP:
        return sm_smtp(cfg, a);
    case SM_MODE_PRINTQ:
        return sm_mailq(cfg, a);
    case SM_MODE_ALIASES:
        return newaliases_main(cfg, stdout, stderr);
    case SM_MODE_VERIFY:
        return verify_addresses(cfg, a->recipients, a->n_recipients, stdout);
    case SM_MODE_TEST:
        return verify_test_mode(cfg, stdin, stdout);
    case SM_MODE_DAEMON:
    case SM_MODE_DAEMON_FG:
        return sm_daemon(a);
    case SM_MODE_QUEUE_RUN:
        return queuectl_flush(cfg, a, stdout, stderr);
    case SM_MODE_HOSTSTAT:
        return queuectl_hoststat(cfg, false, stdout, stderr);
    case SM_MODE_PURGESTAT:
        return queuectl_hoststat(cfg, true, stdout, stderr);
    case SM_MODE_PICKUP:
        return maildrop_submit_file(cfg, a->pickup_file, stderr);
    case SM_MODE_VERSION:
        break;
    }
    return EX_SOFTWARE;
}

int main(int argc, char **argv)
{
    struct sendmail_args a;
    char err[1024];
    signal(SIGPIPE, SIG_IGN);
    int status = sendmail_args_parse(argc, argv, &a, err, sizeof(err));
    for (size_t i = 0; i < a.n_warnings; i++)
        fprintf(stderr, "%s\n", a.warnings[i]);
    if (status != EX_OK) {
        fprintf(stderr, "%s\n", err);
        sendmail_args_free(&a);
        return status;
    }
    if (a.mode == SM_MODE_VERSION) {
        printf("Version ringmail %s\n", RINGMAIL_VERSION);
        sendmail_args_free(&a);
        return EX_OK;
    }
    /* Only the modes that answer from the maps read them (they may be root's alone). */
    bool maps = a.mode == SM_MODE_VERIFY || a.mode == SM_MODE_TEST || a.mode == SM_MODE_ALIASES;
    struct config *cfg = cli_config_load(a.config, maps, a.progname, stderr);
    status = cfg ? sm_run(cfg, &a) : EX_CONFIG;
    config_free(cfg);
    sendmail_args_free(&a);
    fflush(stdout);
    return status;
}
