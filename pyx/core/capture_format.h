/* One capture-file format behind the writer of pcap.h.
 *
 * The writer (pcap.c) owns everything that does not depend on the format: the
 * buffer of whole records, page-bounded flushes, cutting back a failed write,
 * the synthesized IP/UDP headers.  A format only lays out its own bytes: the
 * file header, the framing around each record's data, the closing block.  So
 * a format is one hs_capture_format in a file of its own (format_pcap.c,
 * format_pcapng.c) and one line in HS_CAPTURE_FORMATS (pcap.h).
 *
 * Every function writes into room the writer has already reserved (sizes
 * from the fields below) and cannot fail.  Block fields may be written in
 * host byte order when the format starts with a byte-order magic that
 * readers use to swap (pcap and pcapng both do): no swapping on the hot path.
 * Timestamps arrive as nanoseconds since the epoch, never negative.
 */
#ifndef HOTSOCK_CAPTURE_FORMAT_H
#define HOTSOCK_CAPTURE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct hs_capture_format {
    /* The file header (pcap's file header; pcapng's section header and
       interface description blocks): header_size bytes at p. */
    size_t header_size;
    void (*header)(unsigned char *p, uint32_t snaplen);
    /* 1 when unit_size cannot measure the file header (pcap's carries no
       length): the writer then keeps it as one unit of its own. */
    int header_is_one_unit;

    /* The bytes of a record holding caplen captured bytes: its header, the
       data, padding and trailer. */
    size_t (*record_size)(size_t caplen);
    /* Everything of a record at p but its data: returns where the caplen data
       bytes go (the writer puts them there afterwards).  origlen is the
       datagram's length on the wire, headers included. */
    size_t (*record)(unsigned char *p, uint64_t ts_ns, size_t caplen, uint32_t origlen);
    /* The size of the record or block at p, read from its own length field. */
    size_t (*unit_size)(const unsigned char *p);

    /* The block that ends a file (pcapng: interface statistics), closing_size
       bytes at p; 0 and NULL for a format without one. */
    size_t closing_size;
    void (*closing)(unsigned char *p, uint64_t ts_ns, uint64_t start_ns,
                    uint64_t received, uint64_t dropped);
};

/* Block fields in host order (memcpy: no alignment or aliasing assumptions). */
static inline void hs_put_host16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void hs_put_host32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void hs_put_host64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t hs_get_host32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* What every format records: raw IP packets (LINKTYPE_RAW), the synthesized
   IPv4/IPv6 + UDP headers in front of the payload. */
#define HS_LINKTYPE_RAW 101

#endif
