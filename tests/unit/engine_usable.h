/*
 * tests/unit/engine_usable.h — whether this kernel runs the engine (io_uring) at all, for
 * the main() of every test that needs it: if not, a test says why and is skipped (exit 77).
 */
#ifndef RINGMAIL_TESTS_ENGINE_USABLE_H
#define RINGMAIL_TESTS_ENGINE_USABLE_H

#include <stdbool.h>
#include <stdio.h>

#include "util/engine.h"

/* Whether this kernel runs the engine (io_uring); if not, says why on stderr, and main()
 * returns 77: skipped. */
static inline bool engine_fixture_usable(void)
{
    char err[512];
    if (engine_probe(err, sizeof err) < 0) {
        fprintf(stderr, "skipped: %s\n", err);
        return false;
    }
    return true;
}

#endif
