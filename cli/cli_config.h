/*
 * cli/cli_config.h — which configuration a command-line program reads, and reading it.
 *
 * The same file ringmaild reads, found as sendmail's programs find sendmail.cf: the -C
 * option's file, else $RINGMAIL_CONFIG, else /etc/ringmail/ringmail.yaml when it exists,
 * else the built-in default (core/config.h). Read with config_load() from disk, so a
 * program sees exactly the settings the daemon started with (socket paths, hostname,
 * routing).
 *
 * Owns nothing: the path returned points into the argument, the environment or a string
 * constant; the config returned is the caller's (config_free()).
 */
#ifndef RINGMAIL_CLI_CLI_CONFIG_H
#define RINGMAIL_CLI_CLI_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "core/config.h"

#define CLI_CONFIG_ENV     "RINGMAIL_CONFIG"
#define CLI_CONFIG_DEFAULT "/etc/ringmail/ringmail.yaml"

/* The file to read, or NULL for the built-in default. `option`: -C's value or NULL. */
const char *cli_config_path(const char *option);

/* Reads the configuration cli_config_path(option) names; with `maps` false the maps are
 * not read (config_load_settings: a user's `sendmail` must work while the access map is
 * readable by root only). NULL after printing "PROG: FILE:LINE: why" to `err` (the caller
 * exits EX_CONFIG, as sendmail does for a bad sendmail.cf). */
struct config *cli_config_load(const char *option, bool maps, const char *prog, FILE *err);

#endif
