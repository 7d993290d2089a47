/*
 * core/service.h — telling the service manager how the daemon is doing (systemd's
 * sd_notify(3), through Debian's libsystemd).
 *
 * Only the privileged parent calls these: it is the process systemd started and watches
 * (MAINPID), and it alone knows every step: when the engine serves, when a reload starts
 * and how it ends, when a stop begins. READY=1 once the engine serves; RELOADING=1 when a
 * reload starts and READY=1 again when it has been applied or refused (a refused one
 * leaves the old configuration running and says so in STATUS=); STOPPING=1 at
 * SIGTERM/SIGINT. STATUS= carries a one-line summary an operator sees in `systemctl
 * status`.
 *
 * Without $NOTIFY_SOCKET (not started by systemd, or Type= other than notify) every call
 * does nothing. A failure to notify is logged once and never stops the daemon: the mail
 * matters more than the manager's view of it. Owns nothing; not thread-safe (the parent is
 * one thread).
 */
#ifndef RINGMAIL_CORE_SERVICE_H
#define RINGMAIL_CORE_SERVICE_H

/* The engine serves: READY=1 with STATUS=`status`. */
void service_ready(const char *status);
/* A reload starts: RELOADING=1 (and MONOTONIC_USEC=, which newer systemd wants). */
void service_reloading(void);
/* A stop starts: STOPPING=1. */
void service_stopping(void);
/* STATUS=`status` alone. */
void service_status(const char *status);

#endif
