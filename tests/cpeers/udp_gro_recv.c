/* udp_gro_recv: receive with UDP receive coalescing (UDP_GRO, Linux >= 5.0)
 * and split each buffer at the segment size from its UDP_GRO control
 * message.  Checks every datagram against udp_gso_send's pattern (i as a
 * 4-byte big-endian number, then the byte i & 0xff) and that they arrive
 * in order.
 *
 * usage: udp_gro_recv [-w idle_ms] [-b bind_addr] port count
 * output: "ready" once bound, then
 *         "received N bytes B buffers K coalesced C bad X".
 * exit: 0 COUNT good datagrams, 1 usage, 2 a system call failed,
 *       3 stopped idle before COUNT, 4 a datagram differed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static void usage(void)
{
    fprintf(stderr, "usage: udp_gro_recv [-w idle_ms] [-b bind_addr] port count\n");
    exit(1);
}

static int check(const unsigned char *d, size_t len, long expect)
{
    uint32_t seq;
    if (len < 4)
        return 0;
    memcpy(&seq, d, 4);
    if ((long)ntohl(seq) != expect)
        return 0;
    for (size_t i = 4; i < len; i++)
        if (d[i] != (unsigned char)(expect & 0xff))
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    static unsigned char buffer[65536];
    int idle_ms = 2000, opt, on = 1;
    const char *bind_addr = "0.0.0.0";
    while ((opt = getopt(argc, argv, "w:b:")) != -1) {
        switch (opt) {
        case 'w': idle_ms = atoi(optarg); break;
        case 'b': bind_addr = optarg; break;
        default: usage();
        }
    }
    if (argc - optind != 2)
        usage();
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1)
        usage();
    addr.sin_port = htons((unsigned short)atoi(argv[optind]));
    long count = atol(argv[optind + 1]);

    int sd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 1 << 24;
    if (sd < 0 || setsockopt(sd, SOL_UDP, UDP_GRO, &on, sizeof on) < 0
            || bind(sd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("socket/UDP_GRO/bind");
        return 2;
    }
    setsockopt(sd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);   /* best effort */
    printf("ready\n");
    fflush(stdout);

    long received = 0, bytes = 0, buffers = 0, coalesced = 0, bad = 0;
    while (received < count) {
        struct pollfd p = { sd, POLLIN, 0 };
        if (poll(&p, 1, idle_ms) <= 0)
            break;
        char control[CMSG_SPACE(sizeof(int)) * 4];
        struct iovec iov = { buffer, sizeof buffer };
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = recvmsg(sd, &msg, 0);
        if (n < 0) {
            perror("recvmsg");
            return 2;
        }
        int seg = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
                memcpy(&seg, CMSG_DATA(c), sizeof seg);
        if (seg <= 0 || seg >= n)
            seg = (int)n;
        else
            coalesced++;
        buffers++;
        for (ssize_t off = 0; off < n || n == 0; off += seg) {
            size_t len = (size_t)(n - off < seg ? n - off : seg);
            if (!check(buffer + off, len, received))
                bad++;
            received++;
            bytes += (long)len;
            if (n == 0)
                break;
        }
    }
    printf("received %ld bytes %ld buffers %ld coalesced %ld bad %ld\n",
           received, bytes, buffers, coalesced, bad);
    if (bad)
        return 4;
    return received >= count ? 0 : 3;
}
