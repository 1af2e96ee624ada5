# What hotsock remembers about a socket (contract 8): one record per socket,
# owned by it, identified by descriptor *and* inode.

cdef class SocketState:
    cdef readonly int fd
    cdef readonly unsigned long long inode
    cdef public bint gso_refused            # segmented sends refused: one by one
    cdef public int deferred_errno          # recvmsg fallback: an error met after datagrams,
                                            # raised by the next recv_batch
    cdef int take_deferred_errno(self) except -1


# The record of the socket with descriptor fd (sock: the object it came from:
# a socket object, an int or None); None if it has none and not create.
cdef SocketState state_of(object sock, int fd, bint create)

# Socket fd (sock: its object, or None) can take segmented sends: UDP, GSO
# enabled, never refused.
cdef bint gso_usable_for(object sock, int fd, int family) except -1

# The fork generation: bumped in a child after fork().  A batch claimed by a
# thread of the parent is free in the child.
cdef unsigned long fork_generation() noexcept
