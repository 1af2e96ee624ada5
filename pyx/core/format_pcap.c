/* Classic pcap with nanosecond timestamps (magic 0xa1b23c4d), one format of
 * the capture writer (see capture_format.h): a 24-byte file header, then a
 * 16-byte header in front of each record's data.  No closing block. */
#include "capture_format.h"

#define PCAP_FILE_HDR 24
#define PCAP_REC_HDR 16

static void pcap_header(unsigned char *p, uint32_t snaplen)
{
    hs_put_host32(p, 0xa1b23c4du);     /* nanosecond-resolution magic */
    hs_put_host16(p + 4, 2);           /* version 2.4 */
    hs_put_host16(p + 6, 4);
    hs_put_host32(p + 8, 0);           /* thiszone */
    hs_put_host32(p + 12, 0);          /* sigfigs */
    hs_put_host32(p + 16, snaplen);
    hs_put_host32(p + 20, HS_LINKTYPE_RAW);
}

static size_t pcap_record_size(size_t caplen) { return PCAP_REC_HDR + caplen; }

static size_t pcap_record(unsigned char *p, uint64_t ts_ns, size_t caplen, uint32_t origlen)
{
    hs_put_host32(p, (uint32_t)(ts_ns / 1000000000u));
    hs_put_host32(p + 4, (uint32_t)(ts_ns % 1000000000u));
    hs_put_host32(p + 8, (uint32_t)caplen);
    hs_put_host32(p + 12, origlen);
    return PCAP_REC_HDR;
}

static size_t pcap_unit_size(const unsigned char *p)
{
    return PCAP_REC_HDR + (size_t)hs_get_host32(p + 8);     /* caplen */
}

const struct hs_capture_format hs_format_pcap = {
    .header_size = PCAP_FILE_HDR,
    .header = pcap_header,
    .header_is_one_unit = 1,
    .record_size = pcap_record_size,
    .record = pcap_record,
    .unit_size = pcap_unit_size,
    .closing_size = 0,
    .closing = NULL,
};
