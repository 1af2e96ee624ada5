#ifndef HOTSOCK_REFERENCE_LOOPS_H
#define HOTSOCK_REFERENCE_LOOPS_H

#include <stddef.h>
#include <sys/socket.h>

long long hs_ref_recvfrom(int fd, long long total, size_t size);
long long hs_ref_recvmmsg(int fd, long long total, int batch, size_t size);
long long hs_ref_capture(int fd, int out_fd, long long total, int batch, size_t size);
long long hs_ref_sendto(int fd, const struct sockaddr *to, socklen_t to_len,
                        long long total, size_t size);
long long hs_ref_sendmmsg(int fd, const struct sockaddr *to, socklen_t to_len,
                          long long total, int batch, size_t size);
long long hs_ref_echo(int fd, long long total, int batch, size_t size);
long long hs_ref_gso_send(int fd, const struct sockaddr *to, socklen_t to_len,
                          long long total, int segments_per_send, size_t size);
long long hs_ref_gro_recv(int fd, long long total, int buffers, size_t buffer_size);

#endif
