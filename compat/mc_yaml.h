/*
 * compat/mc_yaml.h — the YAML that ringmail-mc2yaml writes: a small tree of keys built in
 * the order the .mc sets them, and its printer.
 *
 * Every node may be marked `future`: a key the daemon's schema does not know yet (maps,
 * masquerading, milters, ...). Unless asked to print them as live keys, future keys are
 * printed commented out — inside a live section as "# key: value" at their place, and
 * whole future sections at the end under a "# Not yet enforced by ringmaild" header — so
 * that every file the translator writes loads in today's ringmaild, and deleting "# "
 * turns the keys on once the daemon reads them. Scalars are quoted only when YAML would
 * read them as something else. Not thread-safe; one tree per translation.
 */
#ifndef RINGMAIL_COMPAT_MC_YAML_H
#define RINGMAIL_COMPAT_MC_YAML_H

#include <stdbool.h>

#include "util/buf.h"

struct mc_yaml;

struct mc_yaml *mc_yaml_new(void);
void mc_yaml_free(struct mc_yaml *root);
/* Sets the scalar at a dotted path ("limits.connections") under `node`, creating the
 * sections on the way and replacing an earlier value (later definitions win, as in m4).
 * `comment` (may be NULL) is printed after the value. NULL when out of memory. */
struct mc_yaml *mc_yaml_set(struct mc_yaml *node, const char *path, const char *value, bool future,
                            const char *comment);
/* Appends a scalar to the list at `path` unless an equal one is there already. */
struct mc_yaml *mc_yaml_add(struct mc_yaml *node, const char *path, const char *value, bool future,
                            const char *comment);
/* The list at `path`, emptied (created when missing): a list given whole, which an empty one
 * also is ("key: []", unlike a list never set). Fill it with mc_yaml_add. */
struct mc_yaml *mc_yaml_set_list(struct mc_yaml *node, const char *path, bool future);
/* Appends a new mapping to the list at `path`; fill it with mc_yaml_set. */
struct mc_yaml *mc_yaml_add_map(struct mc_yaml *node, const char *path, bool future);
/* A comment line printed above the node (why a listener is commented out, say). */
void mc_yaml_note(struct mc_yaml *node, const char *note);
/* The node at `path` (list items are not addressable), or NULL. */
struct mc_yaml *mc_yaml_get(struct mc_yaml *node, const char *path);
/* The value of a scalar node, or NULL (for NULL, a section or a list). */
const char *mc_yaml_value(const struct mc_yaml *node);
/* The `i`th item of a list node, or NULL. */
struct mc_yaml *mc_yaml_item(struct mc_yaml *list, unsigned i);
/* Removes the node at `path` (undefine); nothing when there is none. */
void mc_yaml_remove(struct mc_yaml *node, const char *path);
/* Prints the tree; with `future_keys` future keys are printed as live ones. */
void mc_yaml_print(const struct mc_yaml *root, bool future_keys, struct buf *out);

#endif
