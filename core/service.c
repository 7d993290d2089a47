#include "core/service.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "util/log.h"

/* One warning at most: a manager that refuses one message refuses the next ones too. */
static bool service_warned;

static void service_notify(const char *state)
{
    /* 0: $NOTIFY_SOCKET is kept for the next message; no socket makes this a no-op. */
    int rc = sd_notify(0, state);
    if (rc < 0 && !service_warned) {
        service_warned = true;
        log_warn("cannot notify the service manager (NOTIFY_SOCKET): %s", strerror(-rc));
    }
}

/* STATUS= is one line: a newline inside would start another assignment. */
static void service_with_status(const char *head, const char *status)
{
    char msg[1024];
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", head, status);
    for (char *c = msg + strlen(head); *c; c++)
        if (*c == '\n')
            *c = ' ';
    service_notify(msg);
}

void service_ready(const char *status)
{
    service_with_status("READY=1\n", status);
}

void service_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    service_notify(msg);
}

void service_stopping(void)
{
    service_notify("STOPPING=1\nSTATUS=stopping");
}

void service_status(const char *status)
{
    service_with_status("", status);
}
