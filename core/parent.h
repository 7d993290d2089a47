/*
 * core/parent.h — the privileged parent: the ringmaild process operators see.
 *
 * Small and without network input (DESIGN.md, "Processes"). As the user it was started as
 * (root in production) it reads the configuration and every file it names (keys,
 * certificates, maps) into a fileset, takes the spool lock, writes the pid file, binds the
 * listeners and forks the engine (core/daemon.h), which drops to run_as. It then only
 * waits: SIGHUP (or the engine asking) reads everything again and sends it to the engine,
 * so a key readable by root only is read at every reload too; SIGTERM/SIGINT are passed on
 * and the parent exits with the engine's status once it has stopped; an engine that dies
 * unexpectedly makes the parent exit with an error (the service manager restarts it).
 *
 * Detached (no --foreground) the command that started it waits until the engine serves or
 * start-up fails, and exits with that status, so errors still reach the terminal.
 */
#ifndef RINGMAIL_CORE_PARENT_H
#define RINGMAIL_CORE_PARENT_H

#include <stdbool.h>

/* Runs ringmaild until it stops; returns an exit status (sysexits). `config_path` NULL =
 * the built-in default. `syslog`: with `foreground`, log to syslog rather than stderr (under
 * systemd, so that the journal gets log.ident and facility mail). The service manager is
 * told how it goes (core/service.h). */
int parent_run(const char *config_path, bool foreground, bool syslog);

#endif
