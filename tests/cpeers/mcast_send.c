/* mcast_send: send COUNT datagrams "TEXT SEQ" to a multicast group, then print "sent N".
 *
 * usage: mcast_send [-t ttl] [-l 0|1] [-i ifaddr] [-g gap_us] [-m text] group port count
 *   -t  IP_MULTICAST_TTL (default 1; 0 keeps the datagrams on this host)
 *   -l  IP_MULTICAST_LOOP (default 1: local members of the group receive them too)
 *   -i  IP_MULTICAST_IF: the address of the interface to send from
 *   -g  microseconds between datagrams (default 0)
 * exit: 0 all sent, 1 usage, 2 a system call failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: mcast_send [-t ttl] [-l 0|1] [-i ifaddr] [-g gap_us] [-m text] "
                    "group port count\n");
    exit(1);
}

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

static struct in_addr parse_addr(const char *text)
{
    struct in_addr addr;
    if (inet_pton(AF_INET, text, &addr) != 1)
        usage();
    return addr;
}

int main(int argc, char **argv)
{
    unsigned char ttl = 1, loop = 1;   /* u_char: the portable type for both options */
    const char *ifaddr = NULL, *text = "hello";
    long gap_us = 0;
    int opt;

    while ((opt = getopt(argc, argv, "t:l:i:g:m:")) != -1) {
        switch (opt) {
        case 't': ttl = (unsigned char)atoi(optarg); break;
        case 'l': loop = (unsigned char)atoi(optarg); break;
        case 'i': ifaddr = optarg; break;
        case 'g': gap_us = atol(optarg); break;
        case 'm': text = optarg; break;
        default: usage();
        }
    }
    if (argc - optind != 3)
        usage();

    struct sockaddr_in group;
    memset(&group, 0, sizeof group);
    group.sin_family = AF_INET;
    group.sin_addr = parse_addr(argv[optind]);
    group.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
    long count = atol(argv[optind + 2]);

    int sd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sd < 0)
        fail("socket");
    if (setsockopt(sd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0)
        fail("IP_MULTICAST_TTL");
    if (setsockopt(sd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) < 0)
        fail("IP_MULTICAST_LOOP");
    if (ifaddr != NULL) {
        struct in_addr interface = parse_addr(ifaddr);
        if (setsockopt(sd, IPPROTO_IP, IP_MULTICAST_IF, &interface, sizeof interface) < 0)
            fail("IP_MULTICAST_IF");
    }

    long sent;
    for (sent = 0; sent < count; sent++) {
        char message[512];
        int len = snprintf(message, sizeof message, "%s %ld", text, sent);
        if (sendto(sd, message, (size_t)len, 0, (struct sockaddr *)&group, sizeof group) < 0)
            fail("sendto");
        if (gap_us > 0)
            usleep((useconds_t)gap_us);
    }
    printf("sent %ld\n", sent);
    close(sd);
    return 0;
}
