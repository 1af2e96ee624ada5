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

#endif /* HOTSOCK_PYSOCKET_H */
