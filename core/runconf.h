/*
 * core/runconf.h — one generation of the running configuration.
 *
 * A runconf owns a loaded struct config and the module settings derived from it (SMTP
 * server settings, relay policy), so a session reads everything from one consistent
 * generation. Reference counted: the daemon holds the current one, every session holds the
 * one it started with; SIGHUP builds a new one and sessions in progress keep theirs.
 * runconf_ref/unref are thread-safe.
 */
#ifndef RINGMAIL_CORE_RUNCONF_H
#define RINGMAIL_CORE_RUNCONF_H

#include <stdatomic.h>

#include "core/config.h"
#include "smtp/smtp_relay.h"
#include "smtp/smtp_server.h"

struct runconf {
    atomic_uint refs;
    unsigned generation;
    struct config *cfg;
    struct smtp_server_settings smtp;
    struct smtp_relay_policy relay;
};

/* Takes ownership of cfg. NULL only when memory runs out (cfg is then freed). */
struct runconf *runconf_new(struct config *cfg, unsigned generation);
struct runconf *runconf_ref(struct runconf *rc);
void runconf_unref(struct runconf *rc);

#endif
