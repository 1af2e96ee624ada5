/* Buffered capture-file writer for received UDP datagrams.
 *
 * Called from a C receive loop with the GIL released, so it takes no locks,
 * keeps no global state and allocates only once (in hs_pcap_open).  Each
 * datagram becomes one record of link type LINKTYPE_RAW (101): a synthesized
 * IPv4 or IPv6 header and a UDP header in front of the received payload.
 * The file's format is one of HS_CAPTURE_FORMATS below: classic pcap with
 * nanosecond timestamps, or pcapng.  See pcap.c, and capture_format.h for
 * what a format supplies.
 */
#ifndef HOTSOCK_PCAP_H
#define HOTSOCK_PCAP_H

#include <stddef.h>
#include <stdint.h>

/* The formats, one line each: FORMAT(ID, name) is format number HS_<ID> (in
   this order, from 0), named "name", laid out by the hs_capture_format
   hs_format_<name> (its own file, see capture_format.h).  The one list of them:
   hs_capture_format_name() gives the names to Python (_capture.FORMATS). */
/* The bytes a record may keep: at least its synthesized IPv6 and UDP headers
 * (40 + 8), at most what libpcap and Wireshark accept (tcpdump's default). */
#define HS_PCAP_MIN_SNAPLEN 48
#define HS_PCAP_MAX_SNAPLEN 262144

#define HS_CAPTURE_FORMATS(FORMAT) \
    FORMAT(PCAP, pcap)             \
    FORMAT(PCAPNG, pcapng)

#define HS_CAPTURE_FORMAT_NUMBER(id, name) HS_##id,
enum { HS_CAPTURE_FORMATS(HS_CAPTURE_FORMAT_NUMBER) HS_CAPTURE_FORMAT_COUNT };
#undef HS_CAPTURE_FORMAT_NUMBER

/* The name of format number format ("pcap", ...), or NULL past the last one. */
const char *hs_capture_format_name(int format);

/* One end of a datagram: family AF_INET or AF_INET6; addr holds 4 (AF_INET) or 16 bytes
   in network order; port in host order. family 0 = unknown (written as 0.0.0.0 / ::). */
typedef struct { int family; unsigned char addr[16]; uint16_t port; } hs_endpoint;

/* The endpoint of a socket address (sockaddr_in or sockaddr_in6; any other
 * family gives family 0). */
struct sockaddr;
void hs_endpoint_from(hs_endpoint *e, const struct sockaddr *sa);

typedef struct {
    int fd;
    int format;            /* its number: HS_PCAP, HS_PCAPNG, ... */
    uint32_t snaplen;      /* bytes kept per record, synthesized headers included */
    unsigned char *buf;    /* whole records only, so a flush never splits one */
    size_t len, cap;
    size_t head;           /* bytes at buf's start that are one unit on their own: the
                              pcap file header, or the rest of a unit a failed write
                              cut and the file could not be cut back (a pipe) */
    uint64_t offset;       /* file offset where buf[0] goes */
    size_t page;           /* the page size: a kill can cut a write() only there */
    int seekable;          /* a regular file: a cut write can be cut back (ftruncate) */
    uint64_t records;      /* records handed to the writer (accepted into the buffer;
                              a record refused because a flush failed is not counted) */
    uint16_t ip_id;        /* next IPv4 identification; readers flag repeats */
    int err;               /* errno of the first failed write, 0 if none */
} hs_pcap_writer;

/* Allocate the buffer (at least bufsize, and at least one largest record) and
   buffer the file header. 0, or -1 with errno (ENOMEM, EINVAL for a format number not
   in HS_CAPTURE_FORMATS or snaplen outside HS_PCAP_MIN_SNAPLEN..HS_PCAP_MAX_SNAPLEN).
   Nothing is written to fd until a flush.
   The least snaplen is the IPv6 and UDP headers: a record never cuts a synthesized header.
   On failure w->buf is NULL, so hs_pcap_free(w) is still safe. */
int hs_pcap_open(hs_pcap_writer *w, int fd, int format, uint32_t snaplen, size_t bufsize);

/* Append one record. have = payload bytes available at payload (the received bytes);
   orig = the datagram's real length (>= have; larger when the receive truncated it).
   The record's original length is headers + orig; its captured length is
   min(snaplen, headers + have). Flushes first when the record does not fit.
   0, or -1 with errno from a failed flush (w->err keeps the first error).
   src/dst may be NULL (treated as unknown, port 0). */
int hs_pcap_write(hs_pcap_writer *w, int64_t ts_ns, const hs_endpoint *src,
                  const hs_endpoint *dst, const unsigned char *payload, size_t have, size_t orig);

/* Append the format's closing block (no-op returning 0 for a format without one, pcap):
   pcapng's Interface Statistics Block for interface 0 at ts_ns with
   isb_starttime = start_ns, isb_endtime = ts_ns, isb_ifrecv = received,
   isb_ifdrop = dropped. Not counted in w->records. */
int hs_pcap_stats(hs_pcap_writer *w, int64_t ts_ns, int64_t start_ns,
                  uint64_t received, uint64_t dropped);

/* Write out everything buffered, in write() calls that each end on a unit boundary
   (a record, block or the file header) and cross no page boundary of the file unless a
   single unit does: on Linux a fatal signal (SIGKILL) can cut a write() to a file only
   between page-sized copies, so a kill leaves whole records -- except within the
   microseconds of copying the first part of a unit that spans a page boundary.
   Loops over short writes and EINTR. 0 or -1/errno.
   On failure (ENOSPC, EIO, EAGAIN from a non-blocking fd, ...) a unit cut by it is cut
   off the file again (ftruncate, on a regular file), so the file ends on a whole unit,
   and the unwritten units stay buffered (a later flush retries them). */
int hs_pcap_flush(hs_pcap_writer *w);

/* After a failed flush: drop the records still buffered (they could not be written),
   so that a statistics block can still be written after the last whole record.
   Keeps the rest of a unit a failed write cut on a stream that cannot be cut back. */
void hs_pcap_discard(hs_pcap_writer *w);

/* Free the buffer (does not flush, does not close fd). Safe to call twice. */
void hs_pcap_free(hs_pcap_writer *w);

#endif
