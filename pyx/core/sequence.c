/* Sequence headers and the loss/duplicate/reorder tracker: see sequence.h. */
#include "sequence.h"

#include <string.h>

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);  p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void hs_seq_stamp(unsigned char *payload, uint32_t stream, uint64_t seq, int64_t sent_ns)
{
    put32(payload, HS_SEQ_MAGIC);
    put32(payload + 4, stream);
    put32(payload + 8, (uint32_t)(seq >> 32));
    put32(payload + 12, (uint32_t)seq);
    put32(payload + 16, (uint32_t)((uint64_t)sent_ns >> 32));
    put32(payload + 20, (uint32_t)sent_ns);
}

int hs_seq_parse(const unsigned char *payload, size_t length,
                 uint32_t *stream, uint64_t *seq, int64_t *sent_ns)
{
    if (length < HS_SEQ_HEADER || get32(payload) != HS_SEQ_MAGIC)
        return 0;
    *stream = get32(payload + 4);
    *seq = (uint64_t)get32(payload + 8) << 32 | get32(payload + 12);
    *sent_ns = (int64_t)((uint64_t)get32(payload + 16) << 32 | get32(payload + 20));
    return 1;
}

void hs_seq_init(hs_seq_tracker *t)
{
    memset(t, 0, sizeof(*t));
}

static int test_bit(const hs_seq_stream *s, uint64_t seq)
{
    uint64_t bit = seq % HS_SEQ_WINDOW;
    return (s->seen[bit / 64] >> (bit % 64)) & 1;
}

static void set_bit(hs_seq_stream *s, uint64_t seq, int on)
{
    uint64_t bit = seq % HS_SEQ_WINDOW;
    if (on)
        s->seen[bit / 64] |= (uint64_t)1 << (bit % 64);
    else
        s->seen[bit / 64] &= ~((uint64_t)1 << (bit % 64));
}

static void account(hs_seq_stream *s, uint64_t seq)
{
    if (seq >= s->next) {
        /* Ahead: everything between the last one and this one is missing
         * for now.  Their bits may still hold a previous lap of the window. */
        uint64_t skipped = seq - s->next;
        s->gaps += skipped;
        if (skipped >= HS_SEQ_WINDOW) {
            memset(s->seen, 0, sizeof(s->seen));
        } else {
            for (uint64_t k = s->next; k < seq; k++)
                set_bit(s, k, 0);
        }
        set_bit(s, seq, 1);
        s->next = seq + 1;
    } else if (s->next - seq > HS_SEQ_WINDOW) {
        /* Too far back to tell a late arrival from a copy: call it late. */
        s->reordered++;
        s->late++;
    } else if (test_bit(s, seq)) {
        s->duplicated++;
    } else {
        set_bit(s, seq, 1);
        s->reordered++;
        s->late++;
    }
}

void hs_seq_account(hs_seq_tracker *t, const unsigned char *payload, size_t length)
{
    uint32_t id;
    uint64_t seq;
    int64_t sent_ns;
    int i;
    if (!hs_seq_parse(payload, length, &id, &seq, &sent_ns))
        return;
    t->sequenced++;
    for (i = 0; i < t->streams; i++) {
        if (t->stream[i].id == id) {
            account(&t->stream[i], seq);
            return;
        }
    }
    if (t->streams == HS_SEQ_STREAMS) {
        t->untracked++;
        return;
    }
    /* Counted from the first datagram seen: a receiver that starts (or
     * starts again) in the middle of a stream has lost nothing before it. */
    t->stream[t->streams].id = id;
    t->stream[t->streams].next = seq;
    account(&t->stream[t->streams++], seq);
}

void hs_seq_sum(const hs_seq_tracker *t, hs_seq_totals *out)
{
    int i;
    memset(out, 0, sizeof(*out));
    out->sequenced = t->sequenced;
    out->streams = (uint64_t)t->streams;
    for (i = 0; i < t->streams; i++) {
        const hs_seq_stream *s = &t->stream[i];
        out->lost += s->gaps > s->late ? s->gaps - s->late : 0;
        out->duplicated += s->duplicated;
        out->reordered += s->reordered;
    }
}
