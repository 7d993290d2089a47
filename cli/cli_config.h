/*
 * cli/cli_config.h — which configuration a command-line program reads, and reading it.
 *
 * The same file ringmaild reads, by the daemon's rule (config_find(), core/config.h): the
 * -C option's file, else $RINGMAIL_CONFIG, else /etc/ringmail/ringmail.yaml when it exists,
 * else the built-in default. Read with config_load() from disk, so a program sees exactly
 * the settings the daemon started with (socket paths, hostname, routing).
 *
 * Owns nothing: the config returned is the caller's (config_free()).
 */
#ifndef RINGMAIL_CLI_CLI_CONFIG_H
#define RINGMAIL_CLI_CLI_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "core/config.h"

/* Reads the configuration config_find(option) names (`option`: -C's value or NULL); with
 * `maps` false the maps are not read (config_load_settings: a user's `sendmail` must work
 * while the access map is readable by root only). NULL after printing "PROG: FILE:LINE: why" to
 * `err` (the caller exits EX_CONFIG, as sendmail does for a bad sendmail.cf). */
struct config *cli_config_load(const char *option, bool maps, const char *prog, FILE *err);

#endif
