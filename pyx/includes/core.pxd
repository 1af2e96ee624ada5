# pyx/core/: the plain-C parts of the hot loops (control messages, sequence
# headers, capture files).  Declarations only.
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from includes.socket cimport iovec, msghdr, sockaddr, socklen_t

cdef extern from "core/ancillary.h" nogil:
    enum: HS_CONTROL_SPACE
    size_t hs_control_room(size_t requested)

    ctypedef struct hs_rx_meta:
        int64_t timestamp_ns
        int dst_family
        uint32_t ifindex
        unsigned char dst_addr[16]
        int gro_size

    ctypedef struct hs_rx_drops:
        uint32_t counter
        int seen

    void hs_control_parse(msghdr *msg, hs_rx_meta *meta, hs_rx_drops *drops)

cdef extern from "core/sequence.h" nogil:
    enum: HS_SEQ_HEADER

    ctypedef struct hs_seq_tracker:
        pass

    ctypedef struct hs_seq_totals:
        uint64_t sequenced, lost, duplicated, reordered, streams

    void hs_seq_stamp(unsigned char *payload, uint32_t stream, uint64_t seq, int64_t sent_ns)
    int hs_seq_parse(const unsigned char *payload, size_t length,
                     uint32_t *stream, uint64_t *seq, int64_t *sent_ns)
    void hs_seq_init(hs_seq_tracker *t)
    void hs_seq_account(hs_seq_tracker *t, const unsigned char *payload, size_t length)
    void hs_seq_sum(const hs_seq_tracker *t, hs_seq_totals *out)

cdef extern from "core/pcap.h" nogil:
    enum: HS_PCAP_MIN_SNAPLEN
    enum: HS_PCAP_MAX_SNAPLEN
    const char *hs_capture_format_name(int format)

    ctypedef struct hs_endpoint:
        int family
        unsigned char addr[16]
        uint16_t port

    void hs_endpoint_from(hs_endpoint *e, const sockaddr *sa)

    ctypedef struct hs_pcap_writer:
        int fd
        uint64_t records
        int err

    int hs_pcap_open(hs_pcap_writer *w, int fd, int format, uint32_t snaplen, size_t bufsize)
    int hs_pcap_write(hs_pcap_writer *w, int64_t ts_ns, const hs_endpoint *src,
                      const hs_endpoint *dst, const unsigned char *payload,
                      size_t have, size_t orig)
    int hs_pcap_stats(hs_pcap_writer *w, int64_t ts_ns, int64_t start_ns,
                      uint64_t received, uint64_t dropped)
    int hs_pcap_flush(hs_pcap_writer *w)
    void hs_pcap_free(hs_pcap_writer *w)
    void hs_pcap_discard(hs_pcap_writer *w)

from includes.compat cimport mmsghdr

cdef extern from "core/segments.h" nogil:
    enum: HS_SEGMENT_CONTROL

    size_t hs_gso_build(const mmsghdr *msgs, size_t n, size_t max_segment,
                        mmsghdr *out, char *control, uint32_t *datagrams)
    size_t hs_gso_build_arena(char *arena, size_t slot_size, const uint32_t *lengths, size_t n,
                              size_t max_segment, void *name, socklen_t name_len,
                              iovec *iovs, mmsghdr *out,
                              char *control, uint32_t *datagrams, size_t *bad)
    void hs_gso_split_arena(const mmsghdr *out, size_t m, const uint32_t *datagrams,
                            size_t slot_size, iovec *iovs)
    size_t hs_gso_join(mmsghdr *out, size_t m, iovec *joined)
    void hs_gso_attach(mmsghdr *m, char *control, uint16_t segment)
    size_t hs_gso_stage_size(const mmsghdr *out, size_t m, size_t max_segment)
    void hs_gso_stage(mmsghdr *out, size_t m, size_t max_segment,
                      unsigned char *stage, iovec *joined)
