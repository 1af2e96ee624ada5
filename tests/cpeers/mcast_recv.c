/* mcast_recv: join a multicast group and print what arrives until COUNT datagrams or a timeout.
 *
 * usage: mcast_recv [-i ifaddr] [-s source] [-w timeout_ms] group port count
 *   -i  join on the interface with this address (and set IP_MULTICAST_IF to it);
 *       default INADDR_ANY, the interface the route to the group names
 *   -s  source-specific join (ip_mreq_source): only datagrams from this source are delivered
 *   -w  overall time limit in milliseconds (default 5000)
 * output: "ready" once joined, one "recv SRC PORT LEN PAYLOAD" line per datagram, then "count N".
 * exit: 0 COUNT received, 1 usage, 2 a system call failed, 3 timed out with fewer.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: mcast_recv [-i ifaddr] [-s source] [-w timeout_ms] group port count\n");
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

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
    const char *ifaddr = NULL, *source = NULL;
    long timeout_ms = 5000;
    int opt;

    while ((opt = getopt(argc, argv, "i:s:w:")) != -1) {
        switch (opt) {
        case 'i': ifaddr = optarg; break;
        case 's': source = optarg; break;
        case 'w': timeout_ms = atol(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 3)
        usage();
    struct in_addr group = parse_addr(argv[optind]);
    unsigned short port = (unsigned short)atoi(argv[optind + 1]);
    long count = atol(argv[optind + 2]);
    struct in_addr interface = { htonl(INADDR_ANY) };
    if (ifaddr != NULL)
        interface = parse_addr(ifaddr);

    int sd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sd < 0)
        fail("socket");
    int on = 1;
    if (setsockopt(sd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        fail("SO_REUSEADDR");

    /* Bound to the group address, not INADDR_ANY: other groups sent to the same port
     * are not delivered here. */
    struct sockaddr_in local;
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_addr = group;
    local.sin_port = htons(port);
    if (bind(sd, (struct sockaddr *)&local, sizeof local) < 0)
        fail("bind");

    if (source != NULL) {
        struct ip_mreq_source mreq;
        memset(&mreq, 0, sizeof mreq);
        mreq.imr_multiaddr = group;
        mreq.imr_interface = interface;
        mreq.imr_sourceaddr = parse_addr(source);
        if (setsockopt(sd, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &mreq, sizeof mreq) < 0)
            fail("IP_ADD_SOURCE_MEMBERSHIP");
    } else {
        struct ip_mreq mreq;
        memset(&mreq, 0, sizeof mreq);
        mreq.imr_multiaddr = group;
        mreq.imr_interface = interface;
        if (setsockopt(sd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0)
            fail("IP_ADD_MEMBERSHIP");
    }
    /* Anything this socket sends (none here) leaves by the interface it joined on. */
    if (ifaddr != NULL && setsockopt(sd, IPPROTO_IP, IP_MULTICAST_IF, &interface,
                                     sizeof interface) < 0)
        fail("IP_MULTICAST_IF");

    printf("ready\n");
    fflush(stdout);   /* the test waits for this line before it starts the sender */

    long received = 0, deadline = now_ms() + timeout_ms;
    while (received < count) {
        long remaining = deadline - now_ms();
        if (remaining <= 0)
            break;
        struct pollfd pfd = { sd, POLLIN, 0 };
        int ready = poll(&pfd, 1, (int)remaining);
        if (ready < 0 && errno != EINTR)
            fail("poll");
        if (ready <= 0)
            continue;

        char buf[2048], from_text[INET_ADDRSTRLEN];
        struct sockaddr_in from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(sd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            fail("recvfrom");
        for (ssize_t i = 0; i < n; i++)   /* one line per datagram, whatever the payload */
            if (!isprint((unsigned char)buf[i]))
                buf[i] = '.';
        buf[n] = '\0';
        inet_ntop(AF_INET, &from.sin_addr, from_text, sizeof from_text);
        printf("recv %s %u %zd %s\n", from_text, ntohs(from.sin_port), n, buf);
        received++;
    }
    printf("count %ld\n", received);
    close(sd);
    return received == count ? 0 : 3;
}
