/* pcapng (draft-ietf-opsawg-pcapng), one format of the capture writer (see
 * capture_format.h): a section header block naming hotsock and one interface
 * (interface 0, if_tsresol 9: nanoseconds), an enhanced packet block per
 * record, and an interface statistics block at the end. */
#include "capture_format.h"

#define NG_SHB 0x0A0D0D0Au
#define NG_IDB 0x00000001u
#define NG_ISB 0x00000005u
#define NG_EPB 0x00000006u
#define NG_SHB_LEN 44   /* 24 fixed + shb_userappl "hotsock" (4+8) + endofopt 4 + trailer 4 */
#define NG_IDB_LEN 32   /* 16 fixed + if_tsresol (4+4) + endofopt 4 + trailer 4 */
#define NG_EPB_DATA 28  /* the enhanced packet block's fields before its data */
#define NG_EPB_FIXED 32 /* those + 4 trailing length */
#define NG_ISB_LEN 76   /* 20 fixed + 4 options * (4+8) + endofopt 4 + trailer 4 */

static size_t pad4(size_t n) { return (n + 3) & ~(size_t)3; }

/* pcapng timestamps (EPB, ISB, isb_starttime/endtime) are a 64-bit count
   stored as two 32-bit host-order words, high word first. */
static void put_ng_ts(unsigned char *p, uint64_t t)
{
    hs_put_host32(p, (uint32_t)(t >> 32));
    hs_put_host32(p + 4, (uint32_t)t);
}

/* An option's code and length, for an option of 8 bytes (no padding). */
static void put_ng_option8(unsigned char *p, uint16_t code)
{
    hs_put_host16(p, code);
    hs_put_host16(p + 2, 8);
}

static void pcapng_header(unsigned char *p, uint32_t snaplen)
{
    /* Section Header Block */
    hs_put_host32(p, NG_SHB);
    hs_put_host32(p + 4, NG_SHB_LEN);
    hs_put_host32(p + 8, 0x1A2B3C4Du);  /* byte-order magic */
    hs_put_host16(p + 12, 1);           /* version 1.0 */
    hs_put_host16(p + 14, 0);
    hs_put_host64(p + 16, UINT64_MAX);  /* section length -1: unknown */
    hs_put_host16(p + 24, 4);           /* shb_userappl */
    hs_put_host16(p + 26, 7);
    memcpy(p + 28, "hotsock\0", 8);     /* 7 bytes + 1 zero pad */
    hs_put_host32(p + 36, 0);           /* opt_endofopt */
    hs_put_host32(p + 40, NG_SHB_LEN);
    p += NG_SHB_LEN;

    /* Interface Description Block: interface 0 */
    hs_put_host32(p, NG_IDB);
    hs_put_host32(p + 4, NG_IDB_LEN);
    hs_put_host16(p + 8, HS_LINKTYPE_RAW);
    hs_put_host16(p + 10, 0);           /* reserved */
    hs_put_host32(p + 12, snaplen);
    hs_put_host16(p + 16, 9);           /* if_tsresol */
    hs_put_host16(p + 18, 1);
    memcpy(p + 20, "\x09\0\0\0", 4);    /* 10^-9 s, padded to 4 */
    hs_put_host32(p + 24, 0);           /* opt_endofopt */
    hs_put_host32(p + 28, NG_IDB_LEN);
}

static size_t pcapng_record_size(size_t caplen) { return NG_EPB_FIXED + pad4(caplen); }

static size_t pcapng_record(unsigned char *p, uint64_t ts_ns, size_t caplen, uint32_t origlen)
{
    size_t end = NG_EPB_DATA + pad4(caplen);
    uint32_t total = (uint32_t)(end + 4);

    hs_put_host32(p, NG_EPB);
    hs_put_host32(p + 4, total);
    hs_put_host32(p + 8, 0);            /* interface 0 */
    put_ng_ts(p + 12, ts_ns);
    hs_put_host32(p + 20, (uint32_t)caplen);
    hs_put_host32(p + 24, origlen);
    memset(p + NG_EPB_DATA + caplen, 0, end - NG_EPB_DATA - caplen);    /* data padding */
    hs_put_host32(p + end, total);      /* trailing total length */
    return NG_EPB_DATA;
}

static size_t pcapng_unit_size(const unsigned char *p)
{
    return hs_get_host32(p + 4);        /* block total length */
}

static void pcapng_closing(unsigned char *p, uint64_t ts_ns, uint64_t start_ns,
                           uint64_t received, uint64_t dropped)
{
    hs_put_host32(p, NG_ISB);
    hs_put_host32(p + 4, NG_ISB_LEN);
    hs_put_host32(p + 8, 0);            /* interface 0 */
    put_ng_ts(p + 12, ts_ns);
    put_ng_option8(p + 20, 2);          /* isb_starttime */
    put_ng_ts(p + 24, start_ns);
    put_ng_option8(p + 32, 3);          /* isb_endtime */
    put_ng_ts(p + 36, ts_ns);
    put_ng_option8(p + 44, 4);          /* isb_ifrecv */
    hs_put_host64(p + 48, received);
    put_ng_option8(p + 56, 5);          /* isb_ifdrop */
    hs_put_host64(p + 60, dropped);
    hs_put_host32(p + 68, 0);           /* opt_endofopt */
    hs_put_host32(p + 72, NG_ISB_LEN);
}

const struct hs_capture_format hs_format_pcapng = {
    .header_size = NG_SHB_LEN + NG_IDB_LEN,
    .header = pcapng_header,
    .header_is_one_unit = 0,            /* two blocks, each with its length */
    .record_size = pcapng_record_size,
    .record = pcapng_record,
    .unit_size = pcapng_unit_size,
    .closing_size = NG_ISB_LEN,
    .closing = pcapng_closing,
};
