/* udp_gso_send: send COUNT datagrams of SIZE bytes with UDP segmentation
 * offload: each sendmsg carries up to SEGS datagrams in one buffer and a
 * UDP_SEGMENT control message (Linux >= 4.18).  Datagram i starts with i as a
 * 4-byte big-endian number; the rest of it is the byte (i & 0xff).
 *
 * usage: udp_gso_send [-s size] [-n segs] dest port count
 * output: "sent N".
 * exit: 0 all sent, 1 usage, 2 a system call failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define MAX_BUFFER 65000

static void usage(void)
{
    fprintf(stderr, "usage: udp_gso_send [-s size] [-n segs] dest port count\n");
    exit(1);
}

int main(int argc, char **argv)
{
    static unsigned char buffer[MAX_BUFFER];
    long size = 1000, segs = 16;
    int opt;

    while ((opt = getopt(argc, argv, "s:n:")) != -1) {
        switch (opt) {
        case 's': size = atol(optarg); break;
        case 'n': segs = atol(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 3 || size < 4 || segs < 1 || segs > 64 || size * segs > MAX_BUFFER)
        usage();
    struct sockaddr_in dest;
    memset(&dest, 0, sizeof dest);
    dest.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[optind], &dest.sin_addr) != 1)
        usage();
    dest.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
    long count = atol(argv[optind + 2]);

    int sd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sd < 0) {
        perror("socket");
        return 2;
    }
    long sent = 0;
    while (sent < count) {
        long n = count - sent < segs ? count - sent : segs;
        for (long k = 0; k < n; k++) {
            unsigned char *d = buffer + k * size;
            uint32_t seq = htonl((uint32_t)(sent + k));
            memset(d, (int)((sent + k) & 0xff), (size_t)size);
            memcpy(d, &seq, sizeof seq);
        }
        struct iovec iov = { buffer, (size_t)(n * size) };
        char control[CMSG_SPACE(sizeof(uint16_t))];
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        memset(control, 0, sizeof control);
        msg.msg_name = &dest;
        msg.msg_namelen = sizeof dest;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (n > 1) {            /* one datagram goes without a segment size */
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)size;
            memcpy(CMSG_DATA(c), &seg, sizeof seg);
        }
        if (sendmsg(sd, &msg, 0) < 0) {
            perror("sendmsg");
            printf("sent %ld\n", sent);
            return 2;
        }
        sent += n;
    }
    printf("sent %ld\n", sent);
    close(sd);
    return 0;
}
