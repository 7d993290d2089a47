/*
 * tests/tools/bounce_sample.c — sample delivery status notifications from queue/bounce,
 * for tests/integration/test_bounce_format.py (which parses them with Python's email
 * package) and for a person who wants to look at one.
 *
 *   bounce_sample NAME          the sample NAME on stdout
 *   bounce_sample --all DIR     every sample as DIR/NAME.eml, and the original message
 *                               they report on as DIR/original.eml
 *   bounce_sample --list        the sample names
 *
 * Dates are in UTC. Exits 0, 1 when generating or writing failed, 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/bounce.h"

static const char sample_original[] = "Received: from client.example.org ([192.0.2.1])\r\n"
                                      "\tby mx.test with ESMTP id 0a1B2c3D4e5F6g7H\r\n"
                                      "From: Sender <sender@example.com>\r\n"
                                      "To: user@example.net, slow@example.net\r\n"
                                      "Subject: quarterly report\r\n"
                                      "Message-ID: <1@example.com>\r\n"
                                      "MIME-Version: 1.0\r\n"
                                      "Content-Type: text/plain; charset=us-ascii\r\n"
                                      "\r\n"
                                      "Hello,\r\n"
                                      "\r\n"
                                      "the report is attached in spirit.\r\n"
                                      "-- \r\n"
                                      "Sender\r\n";

static const char sample_8bit[] = "Received: from client.example.org ([192.0.2.1])\r\n"
                                  "\tby mx.test with ESMTP id 0a1B2c3D4e5F6g7H\r\n"
                                  "From: sender@example.com\r\n"
                                  "Subject: caf\xc3\xa9\r\n"
                                  "MIME-Version: 1.0\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Transfer-Encoding: 8bit\r\n"
                                  "\r\n"
                                  "na\xc3\xafve\r\n";

static const struct bounce_rcpt rcpt_failed = {
    .addr = "user@example.net",
    .orcpt = "rfc822;User+2BTag@example.net",
    .action = 'f',
    .status = "5.1.1",
    .remote_mta = "mx.example.net",
    .diagnostic = "550 5.1.1 <user@example.net>... User unknown",
    .last_attempt = 1700003500,
};
static const struct bounce_rcpt rcpt_failed_local = {
    .addr = "nobody@example.org",
    .action = 'f',
    .status = "5.1.2",
    .diagnostic = NULL,
    .last_attempt = 1700003500,
};
static const struct bounce_rcpt rcpt_delayed = {
    .addr = "slow@example.net",
    .action = 'd',
    .status = "4.4.1",
    .remote_mta = "mx2.example.net",
    .diagnostic = "421 4.4.1 Connection timed out",
    .last_attempt = 1700014000,
};
static const struct bounce_rcpt rcpt_ok[] = {
    {.addr = "user@example.net", .action = 'D', .status = "2.0.0", .last_attempt = 1700000100},
    {.addr = "old@example.com",
     .orcpt = "rfc822;old@example.com",
     .action = 'r',
     .status = "2.0.0",
     .remote_mta = "legacy.example.com",
     .diagnostic = "250 2.0.0 Ok: queued",
     .last_attempt = 1700000100},
};

struct sample {
    const char *name;
    enum bounce_kind kind;
    int dsn_ret;
    const char *sender;
    const char *daemon;
    bool long_lines; /* a 3000-octet reply and a 2500-octet body line */
    bool eight_bit;
    size_t max_returned;
};

static const struct sample samples[] = {
    {"failure", BOUNCE_FAILURE, 0, "sender@example.com", "MTA", false, false, 0},
    {"failure_hdrs", BOUNCE_FAILURE, 2, "sender@example.com", "MTA", false, false, 0},
    {"over_limit", BOUNCE_FAILURE, 1, "sender@example.com", "MTA", false, false, 100},
    {"delay", BOUNCE_DELAY, 0, "sender@example.com", "MTA", false, false, 0},
    {"success", BOUNCE_SUCCESS, 1, "sender@example.com", "MTA", false, false, 0},
    {"double", BOUNCE_FAILURE, 0, "", BOUNCE_DAEMON, false, false, 0},
    {"long_lines", BOUNCE_FAILURE, 0, "sender@example.com", "MTA", true, false, 0},
    {"eight_bit", BOUNCE_FAILURE, 0, "sender@example.com", "MTA", false, true, 0},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

/* The sample's notice into out; 0 or -1. */
static int sample_generate(const struct sample *s, struct buf *out)
{
    struct envelope e = {
        .qid = "0a1B2c3D4e5F6g7H",
        .sender = (char *)s->sender,
        .created = 1700000000,
        .helo = "client.example.org",
        .client_addr = "192.0.2.1",
        .client_name = "client.example.org",
        .proto = "ESMTP",
        .daemon = (char *)s->daemon,
        .dsn_ret = s->dsn_ret,
        .envid = "QQ+2B314159",
    };
    struct bounce_rcpt rcpts[3];
    size_t n = 0;
    switch (s->kind) {
    case BOUNCE_FAILURE:
        rcpts[n++] = rcpt_failed;
        rcpts[n++] = rcpt_failed_local;
        break;
    case BOUNCE_DELAY:
        rcpts[n++] = rcpt_delayed;
        break;
    case BOUNCE_SUCCESS:
        rcpts[n++] = rcpt_ok[0];
        rcpts[n++] = rcpt_ok[1];
        break;
    }
    const char *data = s->eight_bit ? sample_8bit : sample_original;
    size_t len = strlen(data);
    char *long_data = NULL, *long_diag = NULL;
    if (s->long_lines) {
        long_diag = malloc(3100);
        long_data = malloc(len + 2600);
        if (!long_diag || !long_data) {
            free(long_diag);
            free(long_data);
            return -1;
        }
        strcpy(long_diag, "550 5.7.1 ");
        memset(long_diag + 10, 'x', 3000);
        strcpy(long_diag + 3010, " rejected");
        rcpts[0].diagnostic = long_diag;
        memcpy(long_data, data, len);
        memset(long_data + len, 'y', 2500);
        memcpy(long_data + len + 2500, "\r\n", 2);
        data = long_data;
        len += 2502;
    }
    struct bounce_target t = bounce_recipient_for(&e, s->kind, "postmaster");
    struct queue_retry_settings retry = queue_retry_defaults();
    struct bounce_params p = {
        .kind = s->kind,
        .env = &e,
        .data = data,
        .len = len,
        .rcpts = rcpts,
        .n_rcpts = n,
        .to = t.to ? t.to : "postmaster",
        .double_bounce = t.double_bounce,
        .hostname = "mx.test",
        .notice_qid = "0a1B2c9Z9Z9Z9Z9Z",
        .max_returned = s->max_returned,
        .retry = &retry,
        .now = 1700014400,
    };
    int r = bounce_generate(&p, out, NULL);
    free(long_diag);
    free(long_data);
    return r;
}

static int write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.eml", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "bounce_sample: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    setenv("TZ", "UTC", 1);
    tzset();
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NSAMPLES; i++)
            printf("%s\n", samples[i].name);
        return 0;
    }
    bool all = argc == 3 && strcmp(argv[1], "--all") == 0;
    if (!all && argc != 2) {
        fprintf(stderr, "usage: bounce_sample NAME | --all DIR | --list\n");
        return 2;
    }
    if (all && write_file(argv[2], "original", sample_original, strlen(sample_original)) < 0)
        return 1;
    bool found = false;
    for (size_t i = 0; i < NSAMPLES; i++) {
        if (!all && strcmp(argv[1], samples[i].name) != 0)
            continue;
        found = true;
        struct buf out;
        buf_init(&out, 0);
        if (sample_generate(&samples[i], &out) < 0) {
            fprintf(stderr, "bounce_sample: %s: out of memory\n", samples[i].name);
            return 1;
        }
        int r = all ? write_file(argv[2], samples[i].name, out.data, out.len)
                    : (fwrite(out.data, 1, out.len, stdout) == out.len ? 0 : -1);
        buf_free(&out);
        if (r < 0)
            return 1;
    }
    if (!found) {
        fprintf(stderr, "bounce_sample: no sample %s (--list names them)\n", argv[1]);
        return 2;
    }
    return 0;
}
