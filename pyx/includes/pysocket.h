/* The leading fields of CPython's socket object (Modules/socketmodule.h,
 * PySocketSockObject).  This prefix has been the same from Python 3.5 to
 * 3.13: later versions only append fields.  hotsock reads the descriptor and
 * the timeout from here instead of calling fileno()/gettimeout() on every
 * I/O call; _pysocket.pyx checks the layout against real sockets at import
 * time and falls back to those method calls if it ever differs.
 */
#ifndef HOTSOCK_PYSOCKET_H
#define HOTSOCK_PYSOCKET_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    int sock_fd;                    /* SOCKET_T is int on POSIX */
    int sock_family;
    int sock_type;
    int sock_proto;
    PyObject *(*errorhandler)(void);
    int64_t sock_timeout;           /* nanoseconds; < 0: blocking, 0: non-blocking */
} hs_PySocketPrefix;

/* The socket's descriptor as it is now, read without the GIL by a hot loop
 * that follows its socket: close() from another thread stores -1 here
 * (holding the GIL), so a relaxed atomic load is enough to see it at the
 * loop's next syscall. */
static inline int hs_socket_fd_now(const int *sock_fd)
{
    return __atomic_load_n(sock_fd, __ATOMIC_RELAXED);
}

#endif /* HOTSOCK_PYSOCKET_H */
