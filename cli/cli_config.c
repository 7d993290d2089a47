#include "cli/cli_config.h"

struct config *cli_config_load(const char *option, bool maps, const char *prog, FILE *err)
{
    char why[1024];
    const char *path = config_find(option);
    struct config *cfg = maps ? config_load(path, NULL, why, sizeof(why))
                              : config_load_settings(path, why, sizeof(why));
    if (!cfg)
        fprintf(err, "%s: %s\n", prog, why);
    return cfg;
}
