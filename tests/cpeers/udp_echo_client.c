/* udp_echo_client: send COUNT datagrams "TEXT SEQ" to a UDP echo server, one at a time, and
 * check that each comes back unchanged from the server's address (the classic dg_cli, bounded).
 *
 * usage: udp_echo_client [-w timeout_ms] [-m text] server port count
 *   -w  time to wait for each reply in milliseconds (default 2000)
 * output: one "echo PAYLOAD" line per reply, then "ok N" with the number of matching replies.
 * exit: 0 all echoed, 1 usage, 2 a system call failed, 3 a reply timed out, 4 a reply differed.
 */
#include <arpa/inet.h>
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
    fprintf(stderr, "usage: udp_echo_client [-w timeout_ms] [-m text] server port count\n");
    exit(1);
}

static void fail(const char *what)
{
    perror(what);
    exit(2);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The next datagram from the server itself (strays from elsewhere are skipped, as in the
 * book's dg_cli); its length, or -1 when timeout_ms passes first. */
static ssize_t recv_reply(int sd, const struct sockaddr_in *server, char *buf, size_t size,
                          long timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        long remaining = deadline - now_ms();
        if (remaining <= 0)
            return -1;
        struct pollfd pfd = { sd, POLLIN, 0 };
        int ready = poll(&pfd, 1, (int)remaining);
        if (ready < 0 && errno != EINTR)
            fail("poll");
        if (ready <= 0)
            continue;
        struct sockaddr_in from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(sd, buf, size, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            fail("recvfrom");
        if (from.sin_addr.s_addr == server->sin_addr.s_addr && from.sin_port == server->sin_port)
            return n;
    }
}

int main(int argc, char **argv)
{
    long timeout_ms = 2000;
    const char *text = "echo";
    int opt;

    while ((opt = getopt(argc, argv, "w:m:")) != -1) {
        switch (opt) {
        case 'w': timeout_ms = atol(optarg); break;
        case 'm': text = optarg; break;
        default: usage();
        }
    }
    if (argc - optind != 3)
        usage();
    struct sockaddr_in server;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[optind], &server.sin_addr) != 1)
        usage();
    server.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
    long count = atol(argv[optind + 2]);

    int sd = socket(AF_INET, SOCK_DGRAM, 0);
    if (sd < 0)
        fail("socket");

    long ok;
    for (ok = 0; ok < count; ok++) {
        char message[512], reply[2048];
        int len = snprintf(message, sizeof message, "%s %ld", text, ok);
        if (sendto(sd, message, (size_t)len, 0, (struct sockaddr *)&server, sizeof server) < 0)
            fail("sendto");
        ssize_t n = recv_reply(sd, &server, reply, sizeof reply - 1, timeout_ms);
        if (n < 0) {
            printf("ok %ld\n", ok);
            fprintf(stderr, "no reply to \"%s\" within %ld ms\n", message, timeout_ms);
            return 3;
        }
        reply[n] = '\0';
        printf("echo %s\n", reply);
        if (n != len || memcmp(reply, message, (size_t)len) != 0) {
            printf("ok %ld\n", ok);
            fprintf(stderr, "sent \"%s\", got back \"%s\"\n", message, reply);
            return 4;
        }
    }
    printf("ok %ld\n", ok);
    close(sd);
    return 0;
}
