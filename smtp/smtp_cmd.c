/*
 * smtp/smtp_cmd.c — command lines: framing, the command table, the session verbs.
 *
 * Framing is strict (SMTP smuggling, DESIGN.md): a command line ends only at CRLF, and a
 * line holding a bare CR, a bare LF or a NUL is refused whole (500 5.5.2) rather than split
 * or cut short, so "MAIL FROM:<a>\nRCPT TO:<b>\r\n" can never run as two commands. An over-long
 * line is skipped to its end without being stored (a client cannot make us buffer more than
 * limits.max_command_line) and answered once.
 */
#include "smtp/smtp_server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_helo.h"
#include "util/metrics.h"

#define SMTP_CMD_LINE_DEFAULT 2048 /* when limits.max_command_line is 0 */
#define SMTP_CMD_ECHO_MAX     100  /* how much of an unknown command the reply repeats */

enum {
    SMTP_CMD_NOARG = 1 << 0, /* takes no parameters: any is 501 5.5.4 */
};

struct smtp_cmd {
    const char *name;
    void (*run)(struct smtp_server *s, const char *arg, size_t len);
    unsigned flags;
};

static void smtp_cmd_helo(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_ehlo(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_rset(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_noop(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_quit(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_help(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_vrfy(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_expn(struct smtp_server *s, const char *arg, size_t len);
static void smtp_cmd_starttls(struct smtp_server *s, const char *arg, size_t len);

/* Also the HELP topic list, in this order. */
static const struct smtp_cmd smtp_cmd_table[] = {
    {"HELO", smtp_cmd_helo, 0},
    {"EHLO", smtp_cmd_ehlo, 0},
    {"MAIL", smtp_cmd_mail, 0},
    {"RCPT", smtp_cmd_rcpt, 0},
    {"DATA", smtp_cmd_data, SMTP_CMD_NOARG},
    {"BDAT", smtp_cmd_bdat, 0},
    {"RSET", smtp_cmd_rset, 0},
    {"NOOP", smtp_cmd_noop, 0},
    {"QUIT", smtp_cmd_quit, 0},
    {"HELP", smtp_cmd_help, 0},
    {"VRFY", smtp_cmd_vrfy, 0},
    {"EXPN", smtp_cmd_expn, 0},
    {"STARTTLS", smtp_cmd_starttls, SMTP_CMD_NOARG},
    {"AUTH", smtp_cmd_auth, 0},
};

#define SMTP_CMD_COUNT (sizeof(smtp_cmd_table) / sizeof(smtp_cmd_table[0]))

static const struct smtp_cmd *smtp_cmd_lookup(const char *verb, size_t len)
{
    for (size_t i = 0; i < SMTP_CMD_COUNT; i++) {
        const struct smtp_cmd *c = &smtp_cmd_table[i];
        if (strlen(c->name) == len && strncasecmp(c->name, verb, len) == 0)
            return c;
    }
    return NULL;
}

static bool smtp_cmd_is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Runs one command line (CRLF removed). */
static void smtp_cmd_execute(struct smtp_server *s, const char *line, size_t len)
{
    s->cmd_name = "";
    s->cmd_arg = line;
    s->cmd_arglen = len;
    if (s->auth_reading) { /* RFC 4954 4: the line answers the 334, whatever it holds */
        smtp_auth_response(s, line, len);
        return;
    }
    if (memchr(line, '\r', len) || memchr(line, '\n', len)) {
        smtp_server_cmd_error(s, 500, "5.5.2", "Bare CR or LF in command line; refused");
        return;
    }
    /* Whatever reads the line as a C string would see a shorter command than we do. */
    if (memchr(line, '\0', len)) {
        smtp_server_cmd_error(s, 500, "5.5.2", "NUL character in command line; refused");
        return;
    }
    const char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    const struct smtp_cmd *cmd = smtp_cmd_lookup(line, vlen);
    metrics_command(cmd ? cmd->name : NULL);
    if (!cmd) {
        char echo[SMTP_CMD_ECHO_MAX + 1];
        smtp_server_printable(echo, sizeof(echo), line, len);
        smtp_server_cmd_error(s, 500, "5.5.1", "Command unrecognized: \"%s\"", echo);
        return;
    }
    const char *arg = line + vlen;
    const char *end = line + len;
    while (arg < end && smtp_cmd_is_space(*arg))
        arg++;
    while (end > arg && smtp_cmd_is_space(end[-1]))
        end--;
    s->cmd_name = cmd->name;
    s->cmd_arg = arg;
    s->cmd_arglen = (size_t)(end - arg);
    if ((cmd->flags & SMTP_CMD_NOARG) && arg < end)
        smtp_server_cmd_error(s, 501, "5.5.4", "Syntax error (no parameters allowed)");
    else
        cmd->run(s, arg, (size_t)(end - arg));
}

/* The rest of an over-long line: consumed unread up to its CRLF. */
static size_t smtp_cmd_discard(struct smtp_server *s, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' && s->discard_cr) {
            s->discarding = false;
            s->discard_cr = false;
            s->cmd_name = "";
            s->cmd_arg = NULL;
            s->cmd_arglen = 0;
            smtp_server_cmd_error(s, 500, "5.5.0", "Command line too long");
            return i + 1;
        }
        s->discard_cr = p[i] == '\r';
    }
    return len;
}

size_t smtp_cmd_input(struct smtp_server *s, const char *p, size_t len)
{
    if (s->discarding)
        return smtp_cmd_discard(s, p, len);
    size_t max = s->set->limits.max_command_line;
    if (!max)
        max = SMTP_CMD_LINE_DEFAULT;
    /* Only a CRLF within the first `max` octets ends an acceptable line. */
    size_t window = len < max ? len : max;
    const char *crlf = memmem(p, window, "\r\n", 2);
    if (crlf) {
        size_t n = (size_t)(crlf - p) + 2;
        smtp_cmd_execute(s, p, n - 2);
        s->cmd_arg = NULL;
        s->cmd_arglen = 0;
        return n;
    }
    if (len < max)
        return 0; /* incomplete: the caller keeps it */
    s->discarding = true;
    s->discard_cr = p[window - 1] == '\r';
    return window;
}

void smtp_cmd_ext(const struct smtp_server *s, struct smtp_ext *ext)
{
    memset(ext, 0, sizeof(*ext));
    if (!s->tx.esmtp) /* RFC 5321 4.1.1.11: parameters only after EHLO */
        return;
    ext->size = ext->eightbitmime = ext->dsn = ext->smtputf8 = true;
    ext->max_size = s->set->limits.max_message_size;
    ext->auth = smtp_auth_offered(s);
}

static void smtp_cmd_hello(struct smtp_server *s, const char *arg, size_t len, bool esmtp)
{
    if (!len) {
        smtp_server_cmd_error(s, 501, "5.0.0", "%s requires domain address", s->cmd_name);
        return;
    }
    /* The name goes into Received: and the logs; sendmail's rule (smtp_helo.h). */
    if (!smtp_helo_valid(arg, len)) {
        smtp_server_cmd_error(s, 501, "5.0.0", "Invalid domain name");
        return;
    }
    char name[SMTP_HELO_MAX + 1]; /* smtp_helo_valid() bounds it */
    memcpy(name, arg, len);
    name[len] = '\0';
    struct smtp_addr_error err;
    memset(&err, 0, sizeof(err));
    int verdict = s->io->check_helo ? s->io->check_helo(s->io->arg, name, esmtp, &err) : 0;
    if (verdict > 0) {
        smtp_server_check_wait(s, SMTP_CHECK_HELO,
                               &(struct smtp_check_args){.name = name, .esmtp = esmtp});
    } else if (verdict == 0) {
        smtp_cmd_hello_decided(s, name, esmtp, NULL, 0);
    } else {
        char line[SMTP_REPLY_LINE];
        size_t n = smtp_server_check_refusal(line, SMTP_CHECK_HELO, &err, NULL);
        smtp_cmd_hello_decided(s, name, esmtp, line, n);
    }
}

void smtp_cmd_hello_decided(struct smtp_server *s, const char *name, bool esmtp, const char *reply,
                            size_t len)
{
    /* RFC 5321 4.1.4: HELO/EHLO in a session resets it like RSET. */
    smtp_server_tx_drop(s, false);
    free(s->tx.helo);
    s->tx.helo = NULL;
    s->tx.esmtp = false;
    if (reply) { /* the client must HELO again; policy, not its fault */
        smtp_server_reject(s, false, name, strlen(name), reply, len);
        return;
    }
    char *helo = strdup(name);
    if (!helo) {
        smtp_server_reply(s, 452, "4.3.1", "Insufficient system storage");
        return;
    }
    s->tx.helo = helo;
    s->tx.esmtp = esmtp;
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_HELO, .arg = helo});

    char hello[512];
    snprintf(hello, sizeof(hello), "%s Hello %s %s, pleased to meet you", s->set->hostname, helo,
             s->client);
    if (!esmtp) {
        smtp_server_reply(s, 250, NULL, "%s", hello);
    } else {
        char size[32] = "SIZE";
        if (s->set->limits.max_message_size)
            snprintf(size, sizeof(size), "SIZE %llu",
                     (unsigned long long)s->set->limits.max_message_size);
        const char *lines[12] = {
            hello,     "ENHANCEDSTATUSCODES", "PIPELINING", "8BITMIME", size, "DSN", "SMTPUTF8",
            "CHUNKING"};
        char auth[300]; /* "AUTH " and runconf's list of at most 255 */
        size_t n = smtp_auth_ehlo(s, lines, 8, auth, sizeof(auth));
        if (s->set->starttls && !s->tls)
            lines[n++] = "STARTTLS";
        lines[n++] = "HELP";
        smtp_server_reply_lines(s, 250, NULL, lines, n);
    }
    smtp_server_set_phase(s, SMTP_PH_HELO);
}

static void smtp_cmd_helo(struct smtp_server *s, const char *arg, size_t len)
{
    smtp_cmd_hello(s, arg, len, false);
}

static void smtp_cmd_ehlo(struct smtp_server *s, const char *arg, size_t len)
{
    smtp_cmd_hello(s, arg, len, true);
}

static void smtp_cmd_rset(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    smtp_server_tx_drop(s, true);
    smtp_server_reply(s, 250, "2.0.0", "Reset state");
    smtp_server_set_phase(s, SMTP_PH_RSET);
}

static void smtp_cmd_noop(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    smtp_server_reply(s, 250, "2.0.0", "OK");
    smtp_server_set_phase(s, SMTP_PH_MISC);
}

static void smtp_cmd_quit(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    smtp_server_abort_message(s, NULL);
    smtp_server_reply(s, 221, "2.0.0", "%s closing connection", s->set->hostname);
    s->state = SMTP_SRV_CLOSED;
    /* The caller closes after sending; the quit timeout covers a caller that lingers for
     * the client's own close. */
    smtp_server_set_phase(s, SMTP_PH_QUIT);
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_CLOSE, .reason = "quit"});
}

static void smtp_cmd_help(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    char topics[256] = "Topics:";
    for (size_t i = 0; i < SMTP_CMD_COUNT; i++) {
        size_t used = strlen(topics);
        snprintf(topics + used, sizeof(topics) - used, " %s", smtp_cmd_table[i].name);
    }
    const char *lines[] = {"This is ringmail", topics,
                           "For local information send email to Postmaster at your site.",
                           "End of HELP info"};
    smtp_server_reply_lines(s, 214, "2.0.0", lines, sizeof(lines) / sizeof(lines[0]));
    smtp_server_set_phase(s, SMTP_PH_MISC);
}

static void smtp_cmd_vrfy(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    /* Address harvesting: never confirm or deny a user (RFC 5321 7.3). */
    smtp_server_reply(s, 252, "2.5.2",
                      "Cannot VRFY user; try RCPT to attempt delivery (or try finger)");
    smtp_server_set_phase(s, SMTP_PH_MISC);
}

static void smtp_cmd_expn(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    smtp_server_reply(s, 502, "5.7.0", "Sorry, we do not allow this operation");
    smtp_server_set_phase(s, SMTP_PH_MISC);
}

static void smtp_cmd_starttls(struct smtp_server *s, const char *arg, size_t len)
{
    (void)arg;
    (void)len;
    if (s->tls) {
        smtp_server_cmd_error(s, 503, "5.5.1", "TLS already active");
        return;
    }
    if (!s->set->starttls) {
        /* RFC 3207 4: the answer when TLS cannot be offered here (no certificates, or a
         * listener that disables it). */
        smtp_server_cmd_error(s, 454, "4.7.0", "TLS not available");
        return;
    }
    smtp_server_reply(s, 220, "2.0.0", "Ready to start TLS");
    /* From here every plaintext octet is discarded (RFC 3207 4.2, CVE-2011-0411). */
    s->state = SMTP_SRV_WAIT_TLS;
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_STARTTLS});
}
