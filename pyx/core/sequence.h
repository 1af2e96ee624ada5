/* Sequence headers in load-test datagrams, and a receiver-side tracker that
 * counts lost, duplicated and reordered datagrams from them.
 *
 * hotsock.blast starts every payload with a 24-byte header in network byte
 * order -- magic "HSQ1", a stream id, a sequence number counting from 0 and
 * the send time (CLOCK_REALTIME, ns) -- so that capture and echo (or any
 * other receiver: the layout is plain) can tell what the network did to the
 * stream, as iperf3 and sockperf report it.
 */
#ifndef HOTSOCK_SEQUENCE_H
#define HOTSOCK_SEQUENCE_H

#include <stddef.h>
#include <stdint.h>

#define HS_SEQ_HEADER 24
#define HS_SEQ_MAGIC 0x48535131u            /* "HSQ1" */
/* Streams told apart at once (several blast processes into one receiver);
 * datagrams of further streams count as sequenced but are not tracked. */
#define HS_SEQ_STREAMS 16
/* How far back a late datagram can still be told from a duplicate. */
#define HS_SEQ_WINDOW 4096

void hs_seq_stamp(unsigned char *payload, uint32_t stream, uint64_t seq, int64_t sent_ns);
/* 1 and the fields if payload starts with a sequence header, else 0. */
int hs_seq_parse(const unsigned char *payload, size_t length,
                 uint32_t *stream, uint64_t *seq, int64_t *sent_ns);

typedef struct {
    uint32_t id;
    uint64_t next;                          /* highest sequence seen + 1 (from the first seen) */
    uint64_t gaps;                          /* sequence numbers skipped over so far */
    uint64_t late;                          /* skipped ones that arrived afterwards */
    uint64_t duplicated;
    uint64_t reordered;
    uint64_t seen[HS_SEQ_WINDOW / 64];      /* bit s % WINDOW: s arrived (s in [next-WINDOW, next)) */
} hs_seq_stream;

typedef struct {
    uint64_t sequenced;                     /* datagrams that carried a header */
    uint64_t untracked;                     /* ... of streams past HS_SEQ_STREAMS */
    int streams;
    hs_seq_stream stream[HS_SEQ_STREAMS];
} hs_seq_tracker;

typedef struct {
    uint64_t sequenced, lost, duplicated, reordered, streams;
} hs_seq_totals;

void hs_seq_init(hs_seq_tracker *t);
/* Account for one received payload (ignored when it has no header). */
void hs_seq_account(hs_seq_tracker *t, const unsigned char *payload, size_t length);
void hs_seq_sum(const hs_seq_tracker *t, hs_seq_totals *out);

#endif
