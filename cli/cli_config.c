#include "cli/cli_config.h"

#include <stdlib.h>
#include <unistd.h>

const char *cli_config_path(const char *option)
{
    if (option && *option)
        return option;
    const char *env = getenv(CLI_CONFIG_ENV);
    if (env && *env)
        return env;
    /* Only when it exists: a machine without one runs the built-in default, as the daemon
     * started without --config does. */
    if (access(CLI_CONFIG_DEFAULT, F_OK) == 0)
        return CLI_CONFIG_DEFAULT;
    return NULL;
}

struct config *cli_config_load(const char *option, bool maps, const char *prog, FILE *err)
{
    char why[1024];
    const char *path = cli_config_path(option);
    struct config *cfg = maps ? config_load(path, NULL, why, sizeof(why))
                              : config_load_settings(path, why, sizeof(why));
    if (!cfg)
        fprintf(err, "%s: %s\n", prog, why);
    return cfg;
}
