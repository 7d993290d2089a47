/* libFuzzer harness for the queue file parser (queue/envelope.h): a qf is read back from the
 * spool at every load and at start-up, and one that a crash, a disk or a person damaged must
 * be refused with a reason, never misread. Since a small message's data follows its envelope
 * in the qf, the parser also meets arbitrary bytes after the end marker.
 *
 * Whatever the input: a refusal has a printable reason naming a line; an accepted file has
 * its offsets inside it, on the fields they name; with the data in it, exactly L octets
 * follow the envelope. Writing an accepted envelope again gives a file that parses to the
 * same fields, and with the same data after it to the same data offset. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/envelope.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const struct envelope *a, const struct envelope *b)
{
    check(strcmp(a->qid, b->qid) == 0 && a->size == b->size && a->created == b->created);
    check(a->attempts == b->attempts && a->next_attempt == b->next_attempt);
    check(a->data_inline == b->data_inline && a->n_rcpts == b->n_rcpts);
    check(str_eq(a->sender, b->sender) && str_eq(a->helo, b->helo));
    check(str_eq(a->last_reason, b->last_reason));
    for (size_t i = 0; i < a->n_rcpts; i++) {
        check(str_eq(a->rcpts[i].addr, b->rcpts[i].addr));
        check(a->rcpts[i].state == b->rcpts[i].state);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct envelope e, again;
    char err[160];
    if (envelope_parse(text, size, &e, err, sizeof(err)) < 0) {
        check(strncmp(err, "line ", 5) == 0);
        for (const char *p = err; *p; p++)
            check((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        return 0;
    }
    check(e.attempts_offset > 0 && e.attempts_offset < size && text[e.attempts_offset - 1] == 'N');
    check(e.next_attempt_offset > 0 && e.next_attempt_offset < size &&
          text[e.next_attempt_offset - 1] == 'W');
    for (size_t i = 0; i < e.n_rcpts; i++)
        check(e.rcpts[i].state_offset < size &&
              envelope_rcpt_state_valid(text[e.rcpts[i].state_offset]));
    if (e.data_inline) {
        check(e.data_offset >= 4 && e.data_offset <= size);
        check(memcmp(text + e.data_offset - 3, "\n=\n", 3) == 0);
        check(size - e.data_offset == e.size);
    } else {
        check(e.data_offset == 0 && size >= 3 && memcmp(text + size - 3, "\n.\n", 3) == 0);
    }

    struct buf b;
    buf_init(&b, 0);
    if (envelope_write(&e, &b) == 0) {
        size_t env_len = b.len;
        if (e.data_inline)
            check(buf_append(&b, text + e.data_offset, (size_t)e.size) == 0);
        check(envelope_parse(b.data, b.len, &again, err, sizeof(err)) == 0);
        check_same(&e, &again);
        check(again.data_offset == (e.data_inline ? env_len : 0));
        envelope_free(&again);
    }
    buf_free(&b);
    envelope_free(&e);
    return 0;
}
