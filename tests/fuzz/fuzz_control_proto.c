/* libFuzzer harness for the control socket's request parser and target matcher
 * (core/control_proto.h): any local user may write a request line to the socket.
 *
 * Input: the request line, then (after the first LF) a queue id, a sender and recipients,
 * one per line, to match against. A parse must either fail with a one-line printable
 * reason (it is sent back as "ERR 64 <reason>") and nothing held, or give a request whose
 * pieces are what the line said: every queue id valid and QID_LEN long, every filter R, S
 * or I with a non-empty text, no arguments for HOSTSTAT and PURGESTAT, exactly one queue
 * id for WATCH. One CR before the LF changes nothing. control_match must agree with a plain
 * reimplementation of the rules (case-insensitive substrings, `!` negates, all must hold,
 * a listed queue id or ALL). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/control_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_reason(const char *err)
{
    check(err[0] != '\0');
    for (const char *p = err; *p; p++)
        check((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

/* Whether `needle` occurs in `hay`, ASCII letters compared without case. */
static bool contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

static bool reference_match(const struct control_request *req, const char *qid, const char *sender,
                            char *const *rcpts, size_t n_rcpts)
{
    if (req->n_qids && !req->all) {
        bool listed = false;
        for (size_t i = 0; i < req->n_qids; i++)
            listed |= strncmp(req->qids[i], qid, QID_LEN) == 0;
        if (!listed)
            return false;
    }
    for (size_t i = 0; i < req->n_filters; i++) {
        const struct control_filter *f = &req->filters[i];
        bool found = false;
        if (f->kind == 'I')
            found = contains(qid, f->text);
        else if (f->kind == 'S')
            found = contains(sender, f->text);
        else
            for (size_t k = 0; k < n_rcpts; k++)
                found |= contains(rcpts[k], f->text);
        if (found == f->negate)
            return false;
    }
    return true;
}

static void check_request(const struct control_request *req)
{
    check(req->line != NULL);
    const char *name = control_verb_name(req->verb);
    check(strcmp(name, "?") != 0);
    size_t targets = req->n_qids + req->n_filters + (req->all ? 1 : 0);
    if (req->verb == CONTROL_HOSTSTAT || req->verb == CONTROL_PURGESTAT)
        check(targets == 0);
    if (req->verb == CONTROL_WATCH)
        check(req->n_qids == 1 && req->n_filters == 0 && !req->all);
    if (req->verb != CONTROL_FLUSH && req->verb != CONTROL_HOSTSTAT &&
        req->verb != CONTROL_PURGESTAT)
        check(targets > 0 || req->all);
    bool needs = false;
    for (size_t i = 0; i < req->n_qids; i++)
        check(strlen(req->qids[i]) == QID_LEN && qid_valid(req->qids[i]));
    for (size_t i = 0; i < req->n_filters; i++) {
        const struct control_filter *f = &req->filters[i];
        check(f->kind == 'R' || f->kind == 'S' || f->kind == 'I');
        check(f->text && f->text[0] != '\0');
        for (const char *p = f->text; *p; p++)
            check((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
        needs |= f->kind != 'I';
    }
    check(control_needs_envelope(req) == needs);
}

/* The parse of `line` with a CR before its end must be the same as without. */
static void check_cr_same(const char *line, size_t len, const struct control_request *req, int rc)
{
    char *with_cr = malloc(len + 1);
    check(with_cr != NULL);
    memcpy(with_cr, line, len);
    with_cr[len] = '\r';
    struct control_request again;
    char err[256];
    int rc2 = control_parse(with_cr, len + 1, &again, err, sizeof(err));
    /* one octet more may cross the length limit, and a line that ends in CR already then
     * ends in two (the first one an octet of the request); nothing else differs */
    if ((len + 1 < CONTROL_LINE_MAX || rc != 0) && (len == 0 || line[len - 1] != '\r')) {
        check(rc2 == rc);
        if (rc == 0) {
            check(again.verb == req->verb && again.all == req->all);
            check(again.n_qids == req->n_qids && again.n_filters == req->n_filters);
        }
    }
    if (rc2 == 0)
        control_request_free(&again);
    free(with_cr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t len = nl ? (size_t)(nl - in) : size;

    struct control_request req;
    char err[256] = "";
    int rc = control_parse(in, len, &req, err, sizeof(err));
    if (rc < 0) {
        check(rc == -1);
        check_reason(err);
        check(req.line == NULL && req.qids == NULL && req.filters == NULL);
        check(req.n_qids == 0 && req.n_filters == 0);
    } else {
        check(rc == 0);
        check_request(&req);
    }
    check_cr_same(in, len, &req, rc);
    if (rc < 0)
        return 0;

    /* The message to match: lines after the request (NUL octets end a field early). */
    char *rest = nl ? strndup(nl + 1, size - len - 1) : strdup("");
    check(rest != NULL);
    char *fields[18] = {0};
    size_t n_fields = 0;
    for (char *save = NULL, *t = strtok_r(rest, "\n", &save); t && n_fields < 18;
         t = strtok_r(NULL, "\n", &save))
        fields[n_fields++] = t;
    char qid[QID_LEN + 1];
    snprintf(qid, sizeof(qid), "%s", n_fields > 0 ? fields[0] : "");
    const char *sender = n_fields > 1 ? fields[1] : "";
    char *const *rcpts = n_fields > 2 ? fields + 2 : fields;
    size_t n_rcpts = n_fields > 2 ? n_fields - 2 : 0;
    bool got = control_match(&req, qid, sender, (const char *const *)rcpts, n_rcpts);
    check(got == reference_match(&req, qid, sender, rcpts, n_rcpts));
    if (req.n_qids && req.n_filters == 0) /* a listed id always matches */
        check(control_match(&req, req.qids[0], sender, (const char *const *)rcpts, n_rcpts));
    free(rest);
    control_request_free(&req);
    return 0;
}
