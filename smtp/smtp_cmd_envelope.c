/*
 * smtp/smtp_cmd_envelope.c — MAIL and RCPT: the envelope of one transaction.
 *
 * Paths and ESMTP parameters are parsed by smtp_addr; this file adds the order of
 * commands (RFC 5321 4.1.4), the recipient limit, the server's say on MAIL (io->check_mail:
 * room in the queue) and on RCPT (io->check_rcpt: the relay decision), given at once or
 * later (smtp_server_check.c), and the slow-down of clients that guess recipients
 * (sendmail's BadRcptThrottle).
 */
#include "smtp/smtp_server_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "FROM:" / "TO:" before the path; sendmail's wording when it is missing. */
static bool smtp_cmd_keyword(struct smtp_server *s, const char **arg, size_t *len, const char *kw,
                             const char *what)
{
    size_t n = strlen(kw);
    if (*len < n || strncasecmp(*arg, kw, n) != 0) {
        smtp_server_cmd_error(s, 501, "5.5.2", "Syntax error in parameters scanning \"%s\"", what);
        return false;
    }
    *arg += n;
    *len -= n;
    return true;
}

static void smtp_cmd_addr_error(struct smtp_server *s, const struct smtp_addr_error *err)
{
    smtp_server_cmd_error(s, err->code, err->enh, "%s", err->reason);
}

/* Parses the path at `arg`: 0 with *consumed set, or -1 after the error reply. UTF-8 is
 * allowed here because whether it may be depends on SMTPUTF8, a parameter after the path;
 * smtp_cmd_path_utf8() then enforces it. */
static int smtp_cmd_path(struct smtp_server *s, const char *arg, size_t len, unsigned flags,
                         struct smtp_path *path, size_t *consumed)
{
    struct smtp_addr_error err;
    if (smtp_path_parse(arg, len, flags | SMTP_PATH_ALLOW_UTF8, path, consumed, &err) < 0) {
        smtp_cmd_addr_error(s, &err);
        return -1;
    }
    return 0;
}

/* A UTF-8 path without SMTPUTF8 (RFC 6531 3.4): parsed again strictly, so the refusal is
 * smtp_addr's own. */
static int smtp_cmd_path_utf8(struct smtp_server *s, const char *arg, size_t len, unsigned flags,
                              bool smtputf8, struct smtp_path *path)
{
    struct smtp_addr_error err;
    size_t used;
    if (!path->utf8 || smtputf8)
        return 0;
    if (smtp_path_parse(arg, len, flags, path, &used, &err) < 0) {
        smtp_cmd_addr_error(s, &err);
        return -1;
    }
    return 0;
}

static void smtp_cmd_no_storage(struct smtp_server *s)
{
    smtp_server_reply(s, 452, "4.3.1", "Insufficient system storage");
    smtp_server_set_phase(s, SMTP_PH_MISC);
}

void smtp_cmd_mail(struct smtp_server *s, const char *arg, size_t len)
{
    if (!s->tx.helo) {
        smtp_server_cmd_error(s, 503, "5.0.0", "Polite people say HELO first");
        return;
    }
    if (s->tx.sender) {
        smtp_server_cmd_error(s, 503, "5.5.0", "Sender already specified");
        return;
    }
    if (!smtp_auth_mail_allowed(s))
        return;
    if (!smtp_cmd_keyword(s, &arg, &len, "FROM:", "from"))
        return;

    struct smtp_path path;
    struct smtp_mail_params params;
    struct smtp_addr_error err;
    struct smtp_ext ext;
    size_t used;
    if (smtp_cmd_path(s, arg, len, SMTP_PATH_ALLOW_NULL, &path, &used) < 0)
        return;
    smtp_cmd_ext(s, &ext);
    /* like every parameter, the local ones only after EHLO */
    int r = s->tx.esmtp && s->set->local
                ? smtp_mail_params_parse_local(arg + used, len - used, &ext, &params, &err)
                : smtp_mail_params_parse(arg + used, len - used, &ext, &params, &err);
    if (r < 0) {
        smtp_cmd_addr_error(s, &err);
        return;
    }
    if (smtp_cmd_path_utf8(s, arg, len, SMTP_PATH_ALLOW_NULL, params.smtputf8, &path) < 0) {
        smtp_mail_params_free(&params);
        return;
    }
    memset(&err, 0, sizeof(err));
    int verdict = s->io->check_mail ? s->io->check_mail(s->io->arg, &path, &params, &err) : 0;
    if (verdict > 0) {
        smtp_server_check_wait(s, SMTP_CHECK_MAIL,
                               &(struct smtp_check_args){.name = path.mailbox, .mail = &params});
    } else if (verdict == 0) {
        smtp_cmd_mail_decided(s, path.mailbox, &params, NULL, 0);
    } else {
        char line[SMTP_REPLY_LINE];
        size_t n = smtp_server_check_refusal(line, SMTP_CHECK_MAIL, &err, NULL);
        smtp_cmd_mail_decided(s, path.mailbox, &params, line, n);
    }
}

void smtp_cmd_mail_decided(struct smtp_server *s, const char *mailbox,
                           struct smtp_mail_params *params, const char *reply, size_t len)
{
    if (reply) {
        smtp_mail_params_free(params);
        /* The server's condition or policy, not the client's fault: no error counted. */
        smtp_server_reject(s, false, mailbox, strlen(mailbox), reply, len);
        return;
    }
    s->tx.sender = strdup(mailbox);
    if (!s->tx.sender) {
        smtp_mail_params_free(params);
        smtp_cmd_no_storage(s);
        return;
    }
    if (!s->authenticated) { /* RFC 4954 5: an unauthenticated client's AUTH= is not kept */
        free(params->auth);
        params->auth = NULL;
    }
    s->tx.mail_params = *params; /* freed with the transaction */
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_MAIL, .arg = s->tx.sender});
    smtp_server_reply(s, 250, "2.1.0", "<%s>... Sender ok", s->tx.sender);
    smtp_server_set_phase(s, SMTP_PH_MAIL);
}

static int smtp_cmd_add_rcpt(struct smtp_server *s, const char *rcpt,
                             const struct smtp_rcpt_params *params)
{
    struct smtp_transaction *tx = &s->tx;
    /* Grows by doubling; bounded by limits.max_recipients. */
    if ((tx->n_rcpts & (tx->n_rcpts - 1)) == 0) {
        size_t cap = tx->n_rcpts ? tx->n_rcpts * 2 : 1;
        struct smtp_rcpt *r = realloc(tx->rcpts, cap * sizeof(*r));
        if (!r)
            return -1;
        tx->rcpts = r;
    }
    char *mailbox = strdup(rcpt);
    if (!mailbox)
        return -1;
    tx->rcpts[tx->n_rcpts].mailbox = mailbox;
    tx->rcpts[tx->n_rcpts].params = *params;
    tx->n_rcpts++;
    return 0;
}

/* RFC 5321 4.5.3.1.10: a client over the limit sends the rest in a later transaction, as
 * sendmail and Postfix let it. So this is no error: counted, a pipelining sender with many
 * recipients would be slowed down and dropped (421) with its first batch unsent. */
static void smtp_cmd_too_many_rcpts(struct smtp_server *s, const char *arg, size_t len)
{
    char line[64];
    size_t n = smtp_reply_format(line, sizeof(line), 452, "4.5.3", "Too many recipients");
    while (len && (*arg == ' ' || *arg == '\t')) {
        arg++;
        len--;
    }
    smtp_server_reject(s, false, arg, len, line, n);
}

void smtp_cmd_rcpt(struct smtp_server *s, const char *arg, size_t len)
{
    const struct smtp_server_limits *l = &s->set->limits;
    if (!s->tx.sender) {
        smtp_server_cmd_error(s, 503, "5.0.0", "Need MAIL before RCPT");
        return;
    }
    if (!smtp_cmd_keyword(s, &arg, &len, "TO:", "to"))
        return;
    if (l->max_recipients && s->tx.n_rcpts >= l->max_recipients) {
        smtp_cmd_too_many_rcpts(s, arg, len);
        return;
    }

    struct smtp_path path;
    struct smtp_rcpt_params params;
    struct smtp_addr_error err;
    struct smtp_ext ext;
    size_t used;
    if (smtp_cmd_path(s, arg, len, SMTP_PATH_ALLOW_POSTMASTER, &path, &used) < 0 ||
        smtp_cmd_path_utf8(s, arg, len, SMTP_PATH_ALLOW_POSTMASTER, s->tx.mail_params.smtputf8,
                           &path) < 0)
        return;
    smtp_cmd_ext(s, &ext);
    if (smtp_rcpt_params_parse(arg + used, len - used, &ext, &params, &err) < 0) {
        smtp_cmd_addr_error(s, &err);
        return;
    }
    /* Guessing recipients: past the threshold every RCPT answer costs a second. */
    if (l->bad_rcpt_throttle && s->bad_rcpts >= l->bad_rcpt_throttle)
        smtp_server_slow_down(s);

    /* the raw path for the log, as sendmail's arg1= */
    const char *raw = arg;
    while (raw < arg + used && (*raw == ' ' || *raw == '\t'))
        raw++;
    size_t rawlen = used - (size_t)(raw - arg);

    memset(&err, 0, sizeof(err));
    int verdict = s->io->check_rcpt ? s->io->check_rcpt(s->io->arg, &path, &params, &err) : 0;
    if (verdict > 0) {
        smtp_server_check_wait(
            s, SMTP_CHECK_RCPT,
            &(struct smtp_check_args){
                .name = path.mailbox, .raw = raw, .rawlen = rawlen, .rcpt = &params});
    } else if (verdict == 0) {
        smtp_cmd_rcpt_decided(s, path.mailbox, raw, rawlen, &params, NULL, 0);
    } else {
        char line[SMTP_REPLY_LINE];
        size_t n = smtp_server_check_refusal(line, SMTP_CHECK_RCPT, &err, path.mailbox);
        smtp_cmd_rcpt_decided(s, path.mailbox, raw, rawlen, &params, line, n);
    }
}

void smtp_cmd_rcpt_decided(struct smtp_server *s, const char *mailbox, const char *raw,
                           size_t rawlen, const struct smtp_rcpt_params *params, const char *reply,
                           size_t len)
{
    if (reply) {
        s->bad_rcpts++;
        smtp_server_reject(s, false, raw, rawlen, reply, len);
        return;
    }
    if (smtp_cmd_add_rcpt(s, mailbox, params) < 0) {
        smtp_cmd_no_storage(s);
        return;
    }
    smtp_server_event(s, &(struct smtp_event){.type = SMTP_EV_RCPT,
                                              .arg = s->tx.rcpts[s->tx.n_rcpts - 1].mailbox});
    smtp_server_reply(s, 250, "2.1.5", "<%s>... Recipient ok", mailbox);
    smtp_server_set_phase(s, SMTP_PH_RCPT);
}
