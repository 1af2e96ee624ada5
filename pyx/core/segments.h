/* UDP segmentation offload (GSO): many datagrams in one send.
 *
 * A send with a UDP_SEGMENT control message of size S carries a buffer the
 * kernel (or the device) cuts into datagrams of S bytes, the last one
 * possibly shorter.  hs_gso_build groups consecutive messages that can go
 * that way -- same destination, equal sizes except a shorter last one, at
 * most 64 segments and HS_GSO_MAX_BYTES -- and writes one message per group.
 * A group of one is a plain message: a single datagram is never sent with a
 * segment size attached.
 */
#ifndef HOTSOCK_SEGMENTS_H
#define HOTSOCK_SEGMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "includes/compat.h"

/* Control space for one UDP_SEGMENT message (a uint16_t). */
#define HS_SEGMENT_CONTROL 32

/* msgs[0..n): one iovec each, and msgs[i] uses iovs[i] of one contiguous
 * array, so a group's iovecs are msgs[first].msg_hdr.msg_iov onwards.
 * Writes out[0..m) (m <= n) with control[k * HS_SEGMENT_CONTROL] for the
 * segment size and datagrams[k] = datagrams in out[k]; returns m.
 * Datagrams longer than max_segment, or empty, are sent alone. */
size_t hs_gso_build(const struct mmsghdr *msgs, size_t n, size_t max_segment,
                    struct mmsghdr *out, char *control, uint32_t *datagrams);

/* hs_gso_build straight from an arena, in one pass: datagram i is the
 * first lengths[i] bytes of slot i (slot_size bytes at arena + i * slot_size),
 * every one to *name* (NULL: the connected peer).  Each length sent is
 * the value of one read of the array, checked before use, so that an array
 * another thread (or NumPy) writes meanwhile cannot make a send reach past
 * a slot.  A group of full slots
 * (each but the last datagram fills its slot) is one iovec over the arena,
 * iovs[first]; the datagrams of other groups get one iovec each, iovs[i].
 * Returns m; or 0 for a length above slot_size, its index in *bad* (the
 * messages written so far are then not to be sent). */
size_t hs_gso_build_arena(char *arena, size_t slot_size, const uint32_t *lengths, size_t n,
                          size_t max_segment, void *name, socklen_t name_len,
                          struct iovec *iovs, struct mmsghdr *out,
                          char *control, uint32_t *datagrams, size_t *bad);

/* After hs_gso_build_arena: iovs[i] for every datagram (one iovec each, as
 * read), for sending them one by one when segmented sends are refused. */
void hs_gso_split_arena(const struct mmsghdr *out, size_t m, const uint32_t *datagrams,
                        size_t slot_size, struct iovec *iovs);

/* Messages out[0..m) whose iovecs are one run of memory (each starts where
 * the one before ends) get the single iovec joined[j] instead: the kernel
 * copies one buffer per send rather than one per datagram.  Returns how
 * many were joined. */
size_t hs_gso_join(struct mmsghdr *out, size_t m, struct iovec *joined);

/* Bytes hs_gso_stage would copy for out[0..m): messages of several
 * datagrams of at most max_segment bytes each. */
size_t hs_gso_stage_size(const struct mmsghdr *out, size_t m, size_t max_segment);

/* Copy each such message's datagrams into *stage*, back to back, and give
 * it the single iovec joined[j]: for small datagrams the kernel's cost per
 * iovec outweighs one more copy.  *stage* holds hs_gso_stage_size bytes. */
void hs_gso_stage(struct mmsghdr *out, size_t m, size_t max_segment,
                  unsigned char *stage, struct iovec *joined);

/* Give message *m* (iovecs already set) a segment size: for echoing a
 * coalesced buffer back as it came. */
void hs_gso_attach(struct mmsghdr *m, char *control, uint16_t segment);

#endif
