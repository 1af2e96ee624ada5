/* Buffered capture-file writer for received UDP datagrams (see pcap.h):
 * everything that does not depend on the file's format.  A format's own bytes
 * (file header, the framing of a record, the closing block) are laid out by
 * its hs_capture_format (capture_format.h; format_pcap.c, format_pcapng.c),
 * found by number in the table built from HS_CAPTURE_FORMATS.
 *
 * The socket layer only sees payloads, so every record is rebuilt as a raw
 * IP packet (LINKTYPE_RAW, 101): an IPv4 or IPv6 header and a UDP header are
 * synthesized in front of the payload, with real checksums when the whole
 * payload was received, so that Wireshark and friends decode it like a
 * packet seen on the wire.
 *
 * Design choices a reader may wonder about:
 *  - Records are built straight into one buffer, and the buffer only ever
 *    holds whole records (a record that does not fit triggers a flush
 *    first).  write() therefore always starts on a record boundary, so a
 *    process killed between flushes leaves a file of whole records that
 *    readers can open.  (A "unit" below is what must not be cut: the file
 *    header, a record or a block, each measured by its format.)
 *  - A kill *during* a flush: Linux copies a write() into a file page by
 *    page (folio by folio) and stops between two of them for a fatal signal
 *    (generic_perform_write), so one large write() can be cut at any page
 *    boundary.  A flush is therefore a series of write() calls, each ending
 *    on a record boundary and crossing no page boundary of the file unless
 *    a single record does -- a cut can only fall inside such a record, and
 *    only while the kernel copies its first part.
 *  - A failed write (a full disk) may have written part of a piece: the
 *    file is cut back to the piece's start (ftruncate), so it always ends
 *    on a whole record.
 *  - The synthesized IP/UDP headers are big-endian, as on the wire; the
 *    formats' own fields are in host order (see capture_format.h).
 */
#include "pcap.h"
#include "capture_format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>     /* AF_INET, AF_INET6 */
#include <netinet/in.h>
#include <arpa/inet.h>       /* ntohs */
#include <fcntl.h>          /* fcntl, O_APPEND */
#include <sys/stat.h>       /* fstat */
#include <unistd.h>         /* write, lseek, ftruncate, sysconf */

#define IPPROTO_UDP_NUM 17
#define IPV4_HDR 20
#define IPV6_HDR 40
#define UDP_HDR 8
_Static_assert(HS_PCAP_MIN_SNAPLEN == IPV6_HDR + UDP_HDR,
               "a record always holds whole headers");

/* ---- the formats, by number ---- */

#define HS_CAPTURE_FORMAT_DECLARE(id, name) \
    extern const struct hs_capture_format hs_format_##name;
HS_CAPTURE_FORMATS(HS_CAPTURE_FORMAT_DECLARE)
#undef HS_CAPTURE_FORMAT_DECLARE

#define HS_CAPTURE_FORMAT_ENTRY(id, name) [HS_##id] = { #name, &hs_format_##name },
static const struct {
    const char *name;
    const struct hs_capture_format *layout;
} formats[HS_CAPTURE_FORMAT_COUNT] = { HS_CAPTURE_FORMATS(HS_CAPTURE_FORMAT_ENTRY) };
#undef HS_CAPTURE_FORMAT_ENTRY

const char *hs_capture_format_name(int format)
{
    return format >= 0 && format < HS_CAPTURE_FORMAT_COUNT ? formats[format].name : NULL;
}

/* w->format is a valid number from hs_pcap_open on (0 before, or after a failed
   open: the zeroed writer). */
static const struct hs_capture_format *layout_of(const hs_pcap_writer *w)
{
    return formats[w->format].layout;
}

/* ---- byte helpers (the synthesized headers: network order) ---- */

static void put_be16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint64_t clamp_ts(int64_t ns) { return ns < 0 ? 0 : (uint64_t)ns; }

/* ---- Internet checksum (RFC 1071) ----
 *
 * The one's-complement sum does not depend on byte order, so words are
 * loaded in host order (8 bytes at a time, carries added back in) and the
 * final 16-bit result is stored in host order, which yields the correct
 * network-order bytes.  Every chunk passed in must start at an even offset of
 * the checksummed data; only the last one may have odd length. */

static uint64_t csum_add(uint64_t acc, const unsigned char *p, size_t n)
{
    uint64_t w;
    uint32_t w32;
    uint16_t w16;

    while (n >= 32) {   /* unrolled: four independent loads per round */
        uint64_t a, b, c, d;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        memcpy(&c, p + 16, 8);
        memcpy(&d, p + 24, 8);
        acc += a; acc += (acc < a);   /* end-around carry */
        acc += b; acc += (acc < b);
        acc += c; acc += (acc < c);
        acc += d; acc += (acc < d);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        memcpy(&w, p, 8);
        acc += w; acc += (acc < w);
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        memcpy(&w32, p, 4);
        acc += w32; acc += (acc < w32);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        memcpy(&w16, p, 2);
        acc += w16; acc += (acc < w16);
        p += 2;
        n -= 2;
    }
    if (n) {            /* odd last byte: pad with a zero byte, as RFC 768 says */
        unsigned char last[2] = { p[0], 0 };
        memcpy(&w16, last, 2);
        acc += w16; acc += (acc < w16);
    }
    return acc;
}

/* Fold to 16 bits and complement.  2^16 == 1 (mod 0xffff), so adding the
   halves keeps the one's-complement value. */
static uint16_t csum_finish(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return (uint16_t)~acc;
}

/* ---- endpoints ---- */

enum { EP_NONE = 0, EP_V4, EP_V4MAPPED, EP_V6 };

static const unsigned char v4mapped_prefix[12] =
    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int ep_kind(const hs_endpoint *e)
{
    if (e == NULL)
        return EP_NONE;
    if (e->family == AF_INET)
        return EP_V4;
    if (e->family == AF_INET6)
        return memcmp(e->addr, v4mapped_prefix, 12) == 0 ? EP_V4MAPPED : EP_V6;
    return EP_NONE;
}

/* The 4-byte address to write in an IPv4 header (zero if the end has none). */
static void ep_addr4(const hs_endpoint *e, int kind, unsigned char out[4])
{
    if (kind == EP_V4)
        memcpy(out, e->addr, 4);
    else if (kind == EP_V4MAPPED)
        memcpy(out, e->addr + 12, 4);
    else
        memset(out, 0, 4);
}

/* The 16-byte address to write in an IPv6 header (zero for IPv4 or unknown). */
static void ep_addr6(const hs_endpoint *e, int kind, unsigned char out[16])
{
    if (kind == EP_V6 || kind == EP_V4MAPPED)
        memcpy(out, e->addr, 16);
    else
        memset(out, 0, 16);
}

static uint16_t ep_port(const hs_endpoint *e) { return e ? e->port : 0; }

/* IPv4 unless an end is a real (non-mapped) IPv6 address.  The odd mix of
   AF_INET with a real IPv6 peer follows src's family. */
static int use_ipv6(int skind, int dkind)
{
    return skind == EP_V6 || (dkind == EP_V6 && skind != EP_V4);
}

/* ---- open / flush / free ---- */

int hs_pcap_open(hs_pcap_writer *w, int fd, int format, uint32_t snaplen, size_t bufsize)
{
    const struct hs_capture_format *f;
    size_t largest, cap;

    if (w == NULL) {
        errno = EINVAL;
        return -1;
    }
    memset(w, 0, sizeof(*w));
    w->fd = fd;
    if (hs_capture_format_name(format) == NULL ||
        snaplen < HS_PCAP_MIN_SNAPLEN || snaplen > HS_PCAP_MAX_SNAPLEN) {
        errno = EINVAL;
        return -1;
    }
    w->format = format;
    w->snaplen = snaplen;
    f = layout_of(w);

    /* One record of snaplen bytes must always fit after a flush, and so must
       the file header and the closing block. */
    largest = f->record_size(snaplen);
    if (largest < f->header_size)
        largest = f->header_size;
    if (largest < f->closing_size)
        largest = f->closing_size;
    cap = bufsize > largest ? bufsize : largest;
    w->buf = malloc(cap);
    if (w->buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    w->cap = cap;
    {
        off_t at = lseek(fd, 0, SEEK_CUR);
        struct stat st;
        long page = sysconf(_SC_PAGESIZE);
        w->page = page > 0 ? (size_t)page : 4096;
        w->offset = at > 0 ? (uint64_t)at : 0;
        w->seekable = at >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                      && !(fcntl(fd, F_GETFL) & O_APPEND);
    }

    f->header(w->buf, snaplen);
    w->len = f->header_size;
    w->head = f->header_is_one_unit ? f->header_size : 0;
    return 0;
}

/* The size of the unit (file header, record, block) at buf + pos, a unit boundary. */
static size_t unit_size(const hs_pcap_writer *w, size_t pos)
{
    if (pos < w->head)
        return w->head - pos;
    return layout_of(w)->unit_size(w->buf + pos);
}

/* Where the write() starting at buf + pos (a unit boundary) ends: whole units up to
   the file's next page boundary, at least one unit. */
static size_t piece_end(const hs_pcap_writer *w, size_t pos)
{
    uint64_t at = w->offset + pos;
    uint64_t boundary = (at / w->page + 1) * w->page;
    size_t size = unit_size(w, pos), end, next;

    if (size == 0 || size > w->len - pos)   /* never for what this writer built */
        return w->len;
    end = pos + size;
    while (end < w->len) {
        size = unit_size(w, end);
        if (size == 0 || size > w->len - end)
            return w->len;
        next = end + size;
        if (w->offset + next > boundary)
            break;
        end = next;
    }
    return end;
}

/* Drop the first n bytes of the buffer (written, or given up): they are in the file. */
static void consume(hs_pcap_writer *w, size_t n)
{
    memmove(w->buf, w->buf + n, w->len - n);
    w->len -= n;
    w->offset += n;
    w->head = w->head > n ? w->head - n : 0;
}

int hs_pcap_flush(hs_pcap_writer *w)
{
    size_t off = 0, end, done;
    ssize_t r;
    int e;

    while (off < w->len) {
        end = piece_end(w, off);
        for (done = 0; off + done < end; done += (size_t)r) {
            r = write(w->fd, w->buf + off + done, end - off - done);
            if (r < 0 && errno == EINTR) {
                r = 0;
                continue;
            }
            if (r <= 0) {
                e = r < 0 ? errno : EIO;    /* 0 should not happen; avoid spinning */
                goto fail;
            }
        }
        off = end;
    }
    consume(w, off);
    return 0;

fail:
    consume(w, off);
    if (done > 0) {
        /* Part of a piece reached the file: cut it off again, so that the file ends
           on a whole unit and a retry starts at the piece.  Where that is not
           possible (a pipe), the retry continues exactly where the write stopped. */
        if (w->seekable && ftruncate(w->fd, (off_t)w->offset) == 0
                && lseek(w->fd, (off_t)w->offset, SEEK_SET) == (off_t)w->offset) {
            /* cut back: the piece stays buffered whole */
        } else {
            size_t rest = unit_size(w, 0);
            while (rest <= done)            /* the cut unit is the one done falls in */
                rest += unit_size(w, rest);
            consume(w, done);
            w->head = rest - done;
        }
    }
    if (w->err == 0)
        w->err = e;
    errno = e;
    return -1;
}

void hs_pcap_discard(hs_pcap_writer *w)
{
    w->len = w->head;       /* a cut unit's rest must still go, or the stream is broken */
}

void hs_pcap_free(hs_pcap_writer *w)
{
    if (w == NULL)
        return;
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* Make room for n bytes (n <= cap is guaranteed by open's sizing). */
static int reserve(hs_pcap_writer *w, size_t n)
{
    if (w->buf == NULL) {   /* freed or never opened */
        errno = EINVAL;
        return -1;
    }
    if (w->cap - w->len < n)
        return hs_pcap_flush(w);
    return 0;
}

/* ---- records ---- */

/* Write the IP and UDP headers at p; return their length (28 or 48). */
static size_t build_headers(hs_pcap_writer *w, unsigned char *p,
                            const hs_endpoint *src, int skind,
                            const hs_endpoint *dst, int dkind,
                            const unsigned char *payload, size_t have, size_t orig)
{
    /* Length fields are 16 bits; a datagram can't exceed them anyway,
       clamping only keeps odd inputs from wrapping. */
    size_t udp_len = UDP_HDR + orig;
    uint16_t udp_len16 = udp_len > 0xffff ? 0xffff : (uint16_t)udp_len;
    unsigned char *udp;
    uint64_t acc = 0;
    uint16_t sum;
    size_t hdr;

    if (!use_ipv6(skind, dkind)) {
        size_t tot = IPV4_HDR + udp_len;
        p[0] = 0x45;                  /* version 4, IHL 5 */
        p[1] = 0;                     /* TOS */
        put_be16(p + 2, tot > 0xffff ? 0xffff : (uint16_t)tot);
        put_be16(p + 4, w->ip_id++);
        put_be16(p + 6, 0x4000);      /* DF, fragment offset 0 */
        p[8] = 64;                    /* TTL */
        p[9] = IPPROTO_UDP_NUM;
        p[10] = p[11] = 0;            /* checksum placeholder */
        ep_addr4(src, skind, p + 12);
        ep_addr4(dst, dkind, p + 16);
        sum = csum_finish(csum_add(0, p, IPV4_HDR));
        memcpy(p + 10, &sum, 2);      /* host-order sum == network bytes */
        hdr = IPV4_HDR + UDP_HDR;
        udp = p + IPV4_HDR;
        if (have == orig) {
            /* pseudo-header: src, dst, zero, protocol, UDP length */
            unsigned char ph[12];
            memcpy(ph, p + 12, 8);
            ph[8] = 0;
            ph[9] = IPPROTO_UDP_NUM;
            put_be16(ph + 10, udp_len16);
            acc = csum_add(0, ph, sizeof(ph));
        }
    } else {
        put_be32(p, 0x60000000u);     /* version 6, traffic class 0, flow 0 */
        put_be16(p + 4, udp_len16);   /* payload length */
        p[6] = IPPROTO_UDP_NUM;       /* next header */
        p[7] = 64;                    /* hop limit */
        ep_addr6(src, skind, p + 8);
        ep_addr6(dst, dkind, p + 24);
        hdr = IPV6_HDR + UDP_HDR;
        udp = p + IPV6_HDR;
        if (have == orig) {
            /* pseudo-header: src, dst, 32-bit length, 3 zero, next header */
            unsigned char ph[40];
            memcpy(ph, p + 8, 32);
            put_be32(ph + 32, udp_len16);
            ph[36] = ph[37] = ph[38] = 0;
            ph[39] = IPPROTO_UDP_NUM;
            acc = csum_add(0, ph, sizeof(ph));
        }
    }

    put_be16(udp, ep_port(src));
    put_be16(udp + 2, ep_port(dst));
    put_be16(udp + 4, udp_len16);
    udp[6] = udp[7] = 0;
    if (have == orig) {
        /* The checksum needs the whole payload; with a truncated receive
           0 means "not computed" (allowed for IPv4, and readers show
           IPv6 as unverified rather than wrong). */
        acc = csum_add(acc, udp, UDP_HDR);
        if (have)
            acc = csum_add(acc, payload, have);
        sum = csum_finish(acc);
        if (sum == 0)
            sum = 0xffff;             /* 0 on the wire means "no checksum" */
        memcpy(udp + 6, &sum, 2);
    }
    return hdr;
}

int hs_pcap_write(hs_pcap_writer *w, int64_t ts_ns, const hs_endpoint *src,
                  const hs_endpoint *dst, const unsigned char *payload, size_t have, size_t orig)
{
    const struct hs_capture_format *f = layout_of(w);
    int skind = ep_kind(src), dkind = ep_kind(dst);
    size_t hdr = use_ipv6(skind, dkind) ? IPV6_HDR + UDP_HDR : IPV4_HDR + UDP_HDR;
    size_t caplen, origlen, rec, data, copy;
    unsigned char *p;

    if (orig < have)            /* caller error; never claim less than we hold */
        orig = have;
    /* min(snaplen, hdr + have) without overflowing hdr + have */
    caplen = have >= w->snaplen - hdr ? w->snaplen : hdr + have;
    origlen = orig > (size_t)UINT32_MAX - hdr ? UINT32_MAX : hdr + orig;

    rec = f->record_size(caplen);
    if (reserve(w, rec) < 0)
        return -1;

    p = w->buf + w->len;
    data = f->record(p, clamp_ts(ts_ns), caplen, (uint32_t)origlen);
    build_headers(w, p + data, src, skind, dst, dkind, payload, have, orig);
    copy = caplen - hdr;
    if (copy)
        memcpy(p + data + hdr, payload, copy);
    w->len += rec;
    w->records++;
    return 0;
}

int hs_pcap_stats(hs_pcap_writer *w, int64_t ts_ns, int64_t start_ns,
                  uint64_t received, uint64_t dropped)
{
    const struct hs_capture_format *f = layout_of(w);

    if (f->closing == NULL)
        return 0;
    if (reserve(w, f->closing_size) < 0)
        return -1;
    f->closing(w->buf + w->len, clamp_ts(ts_ns), clamp_ts(start_ns), received, dropped);
    w->len += f->closing_size;
    return 0;
}

void hs_endpoint_from(hs_endpoint *e, const struct sockaddr *sa)
{
    memset(e, 0, sizeof(*e));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in v4;
        memcpy(&v4, sa, sizeof(v4));
        e->family = AF_INET;
        memcpy(e->addr, &v4.sin_addr, 4);
        e->port = ntohs(v4.sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 v6;
        memcpy(&v6, sa, sizeof(v6));
        e->family = AF_INET6;
        memcpy(e->addr, &v6.sin6_addr, 16);
        e->port = ntohs(v6.sin6_port);
    }
}
