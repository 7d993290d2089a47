/*
 * core/localrcpt.h — local recipients on the engine's side, from the configuration's
 * aliases, virtusertable, system users (the parent's list) and luser_relay
 * (compat/alias_expand.h): the RCPT check, their expansion into the envelope when a
 * message is committed, and the queue manager's hooks (delivery/qmgr.h, "local
 * recipients").
 *
 * Expanding at commit is sendmail's way (its qf holds the expanded recipients): each
 * mailbox, aliases' program or file and remote address of an alias becomes a recipient of
 * its own, with its own state, retries and bounce, and ORCPT the address the client gave.
 * A recipient whose expansion cannot be written that way (an :include: that cannot be read
 * now, a luser_relay host, an error) stays as given and the queue manager expands it when
 * it delivers. Pure over `cfg`: no I/O, nothing logged.
 */
#ifndef RINGMAIL_CORE_LOCALRCPT_H
#define RINGMAIL_CORE_LOCALRCPT_H

#include <stdbool.h>
#include <stddef.h>

#include "compat/alias_expand.h"
#include "delivery/qmgr.h"
#include "queue/envelope.h"

struct config;

/* Whether `mailbox` ("user@domain" or "user") is in a local domain (class w). */
bool localrcpt_is_local(const struct config *cfg, const char *mailbox);

/* The RCPT check of a local recipient: true, or false with sendmail's reply in `why`
 * ("550 5.1.1 User unknown", an alias's or virtusertable's error:). Every local part is
 * accepted with mail_hub (the hub knows its users) unless an alias refuses it. */
bool localrcpt_check(const struct config *cfg, const char *mailbox, struct alias_refusal *why);

/* Recipients for the envelope, with the strings they own. */
struct localrcpt_list {
    struct envelope_rcpt *v;
    size_t n, cap;
    char **owned;
    size_t n_owned, cap_owned;
};
/* Appends the envelope recipients for one accepted recipient: the address itself when it
 * is not local (or cannot be expanded now), else its expansion. `orcpt` NULL = none given.
 * 0 or -ENOMEM; free with localrcpt_list_free() in both cases. */
int localrcpt_envelope(const struct config *cfg, const char *addr, const char *orcpt,
                       unsigned notify, struct localrcpt_list *out);
void localrcpt_list_free(struct localrcpt_list *l);

/* The queue manager's local settings for `cfg` (the hooks read cfg, which must outlive
 * them); `lmtp` holds mailers.lmtp's route when it is set. 0, or -1 with `err` (a
 * malformed mailers.lmtp). */
int localrcpt_qmgr_settings(const struct config *cfg, struct qmgr_local_settings *out,
                            struct route *lmtp, char *err, size_t errlen);

#endif
