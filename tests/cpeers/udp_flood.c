/* udp_flood: send COUNT datagrams of SIZE bytes as fast as possible (no flow control, as in
 * the book's dgcliloop1), each starting with its sequence number (4 bytes, network order).
 *
 * usage: udp_flood [-s size] [-g gap_us] dest port count
 *   -s  datagram size in bytes, 4..65507 (default 1400)
 *   -g  microseconds between datagrams (default 0)
 * output: "sent N".
 * exit: 0 all sent, 1 usage, 2 a system call failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SIZE 65507   /* the largest UDP payload over IPv4 */

static void usage(void)
{
    fprintf(stderr, "usage: udp_flood [-s size] [-g gap_us] dest port count\n");
    exit(1);
}

int main(int argc, char **argv)
{
    static char payload[MAX_SIZE];
    long size = 1400, gap_us = 0;
    int opt;

    while ((opt = getopt(argc, argv, "s:g:")) != -1) {
        switch (opt) {
        case 's': size = atol(optarg); break;
        case 'g': gap_us = atol(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 3 || size < 4 || size > MAX_SIZE)
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
    memset(payload, 'x', sizeof payload);

    long sent;
    for (sent = 0; sent < count; sent++) {
        uint32_t seq = htonl((uint32_t)sent);
        memcpy(payload, &seq, sizeof seq);
        if (sendto(sd, payload, (size_t)size, 0, (struct sockaddr *)&dest, sizeof dest) < 0) {
            perror("sendto");
            printf("sent %ld\n", sent);
            return 2;
        }
        if (gap_us > 0)
            usleep((useconds_t)gap_us);
    }
    printf("sent %ld\n", sent);
    close(sd);
    return 0;
}
