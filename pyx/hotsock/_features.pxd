# What this system offers the batch functions, probed once at import, and
# the switches that turn it off (HOTSOCK_NO_MMSG / _GSO / _GRO).
cdef bint use_mmsg() noexcept nogil         # recvmmsg/sendmmsg, else the recvmsg/sendmsg loop
cdef bint use_gso() noexcept nogil          # segmented sends (UDP_SEGMENT)
cdef bint use_gro() noexcept nogil          # coalesced receives (UDP_GRO)
# The largest segment automatic GSO groups for *family*: what any path with
# an MTU of 1500 carries whole.
cdef size_t safe_segment(int family) noexcept nogil
