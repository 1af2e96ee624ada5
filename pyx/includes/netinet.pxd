# <netinet/in.h> and <arpa/inet.h>: IPv4/IPv6 socket addresses and their text forms.
from libc.stdint cimport uint16_t, uint32_t
from includes.socket cimport sa_family_t

cdef extern from "<netinet/in.h>" nogil:
    enum: IPPROTO_UDP

    struct in_addr:
        uint32_t s_addr

    struct in6_addr:
        unsigned char s6_addr[16]

    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr

    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id

    enum: INADDR_ANY
    enum: INADDR_BROADCAST
    enum: INET_ADDRSTRLEN
    enum: INET6_ADDRSTRLEN

    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    const char *inet_ntop(int af, const void *src, char *dst, unsigned int size)
