# The loop driver: what every hot loop (capture, echo, blast) shares -- the
# rounds, limits, counters, progress reports and stopping on a signal.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from includes.core cimport hs_rx_drops, hs_seq_tracker


cdef struct Counters:
    uint64_t received
    uint64_t received_bytes
    uint64_t sent
    uint64_t sent_bytes
    uint64_t truncated          # datagrams longer than their slot (MSG_TRUNC)
    uint64_t ctruncated         # control data cut (MSG_CTRUNC)
    uint64_t errors             # sends the kernel refused (ICMP errors, ...)
    uint64_t attempted          # blast: datagrams handed to the kernel, sent or refused
    uint64_t batches
    hs_rx_drops drops           # the socket's drop counter, as last reported


cdef class Run:
    cdef Counters c
    cdef hs_seq_tracker *seq
    cdef str kind
    cdef uint64_t limit             # 0: no count limit
    cdef uint64_t *counted          # what the limit counts (received or sent)
    cdef int64_t start_ns
    cdef int64_t deadline_ns        # 0: no duration
    cdef int64_t idle_ns            # 0: no idle limit
    cdef int64_t last_rx_ns
    cdef int64_t interval_ns
    cdef int64_t next_progress_ns
    cdef int64_t next_check_ns      # the nogil part hands back to check() by then
    cdef object progress
    cdef public object stopped      # why the run ended
    cdef public object signal
    cdef readonly list signals      # noted by the wrappers' signal handlers
    cdef uint64_t drops_baseline
    cdef object followed            # the socket the loop runs on (None: not followed)
    cdef const int *live_fd         # its descriptor field; NULL: the number is fixed
    cdef bint gso_refused           # a step met a refused segmented send this round

    cdef uint64_t remaining(self) noexcept nogil
    cdef int poll_timeout_ms(self, int64_t now) noexcept nogil
    cdef int current_fd(self, int fd) noexcept nogil
    cdef bint check(self) except -1
    cdef void account_payload(self, const unsigned char *p, size_t length) noexcept nogil
    cdef void refuse_gso(self) noexcept nogil


from includes.compat cimport mmsghdr
from hotsock._recv cimport BatchSlots, RecvBatch


# One step of a hot loop, run without the GIL: > 0 to go on, 0 when check()
# is due (time, a signal, the count limit), -1 with *err set on an error.
ctypedef Py_ssize_t (*loop_step)(Run run, void *ctx, int *err) noexcept nogil

# The one loop driver: runs *step* round after round without the GIL until
# check() is due, then (if given) *round_end* (a flush: 0, or -1 with *err),
# applies a GSO refusal to the socket's record, raises the errno of a failed
# step or round end, and calls check() -- until the run stops.
cdef int drive(Run run, loop_step step, loop_step round_end, void *ctx) except -1
# drive() for a loop that receives into *batch* from socket *fd*: the batch
# claimed for the run (and UDP_GRO turned on for a GRO batch), freed after.
cdef int drive_receiving(Run run, RecvBatch batch, int fd, loop_step step, loop_step round_end,
                         void *ctx) except -1

# What the steps use: a receive that waits until check() is due, and a send
# of prepared messages that waits while the socket is full.
cdef Py_ssize_t receive_ready(Run run, BatchSlots *s, int fd, int flags, int *err) noexcept nogil
cdef Py_ssize_t send_all(Run run, mmsghdr *msgs, Py_ssize_t n, int fd, int flags,
                         const uint32_t *datagrams, bint replies, int *err) noexcept nogil
# The plain messages that take over when segmented sends are refused after
# *groups_sent* groups went: their number, and *msgs set to the first.
ctypedef Py_ssize_t (*plain_rest)(void *ctx, Py_ssize_t groups_sent, mmsghdr **msgs) noexcept nogil

# The one segmented send with its fallback: send the m groups (group i
# carries datagrams[i] datagrams); if the socket refuses them, the run
# refuses GSO for the socket and the rest go as the plain messages *rest*
# names.  0 when all went (or were counted as refused by their destination),
# -1 with *err for the socket's error.
cdef int send_segmented(Run run, mmsghdr *groups, Py_ssize_t m, const uint32_t *datagrams,
                        int fd, int flags, bint replies, plain_rest rest, void *ctx,
                        int *err) noexcept nogil
