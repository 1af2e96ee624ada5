/* tcp_echo_client: connect to a TCP echo server, send COUNT messages of SIZE bytes one at a
 * time and check each comes back whole, then half-close and expect the server to close too.
 *
 * usage: tcp_echo_client [-w timeout_ms] [-s size] server port count
 *   -w  limit for each connect, write and read in milliseconds (default 2000)
 *   -s  message size in bytes, 1..65536 (default 100)
 * output: one "echo SEQ SIZE" line per message, then "ok N", then "eof" if the server closed.
 * exit: 0 all echoed and closed, 1 usage, 2 a system call failed, 3 timed out,
 *       4 a reply differed, 5 the server closed early.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_SIZE 65536

static void usage(void)
{
    fprintf(stderr, "usage: tcp_echo_client [-w timeout_ms] [-s size] server port count\n");
    exit(1);
}

/* A timeout (SO_RCVTIMEO/SO_SNDTIMEO expired) is exit 3, anything else exit 2. */
static void fail(const char *what)
{
    int timed_out = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS;
    perror(what);
    exit(timed_out ? 3 : 2);
}

static void write_all(int sd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(sd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("write");
        buf += n;
        len -= (size_t)n;
    }
}

/* Read exactly len bytes (a stream may deliver a message in pieces); 0 on EOF before that. */
static int read_all(int sd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(sd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("read");
        if (n == 0)
            return 0;
        buf += n;
        len -= (size_t)n;
    }
    return 1;
}

int main(int argc, char **argv)
{
    static char message[MAX_SIZE], reply[MAX_SIZE];
    long timeout_ms = 2000, size = 100;
    int opt;

    while ((opt = getopt(argc, argv, "w:s:")) != -1) {
        switch (opt) {
        case 'w': timeout_ms = atol(optarg); break;
        case 's': size = atol(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 3 || size < 1 || size > MAX_SIZE)
        usage();
    struct sockaddr_in server;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[optind], &server.sin_addr) != 1)
        usage();
    server.sin_port = htons((unsigned short)atoi(argv[optind + 1]));
    long count = atol(argv[optind + 2]);

    signal(SIGPIPE, SIG_IGN);   /* a server that goes away is an error to report, not a kill */
    int sd = socket(AF_INET, SOCK_STREAM, 0);
    if (sd < 0)
        fail("socket");
    /* On Linux SO_SNDTIMEO also bounds connect(). */
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    if (setsockopt(sd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        fail("SO_RCVTIMEO");
    if (setsockopt(sd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        fail("SO_SNDTIMEO");
    if (connect(sd, (struct sockaddr *)&server, sizeof server) < 0)
        fail("connect");

    long ok;
    for (ok = 0; ok < count; ok++) {
        for (long i = 0; i < size; i++)   /* a pattern that differs per message and position */
            message[i] = (char)('a' + (ok + i) % 26);
        write_all(sd, message, (size_t)size);
        if (!read_all(sd, reply, (size_t)size)) {
            printf("ok %ld\n", ok);
            fprintf(stderr, "server closed during message %ld\n", ok);
            return 5;
        }
        if (memcmp(reply, message, (size_t)size) != 0) {
            printf("ok %ld\n", ok);
            fprintf(stderr, "message %ld came back changed\n", ok);
            return 4;
        }
        printf("echo %ld %ld\n", ok, size);
    }
    printf("ok %ld\n", ok);

    /* Half-close: the server sees EOF, and closing its side gives us EOF in turn. */
    if (shutdown(sd, SHUT_WR) < 0)
        fail("shutdown");
    char extra;
    ssize_t n = read(sd, &extra, 1);
    if (n < 0)
        fail("read");
    if (n > 0) {
        fprintf(stderr, "unexpected data after the last echo\n");
        return 4;
    }
    printf("eof\n");
    close(sd);
    return 0;
}
