"""Build the compiled core: one extension module per pyx/ module.

Opt-in switches (environment variables):

  HOTSOCK_ANNOTATE=1   write Cython's HTML annotation next to each .pyx
  HOTSOCK_DEBUG=1      -O0 -g, assertions on, Cython bounds/None checks on
                       (release builds: -O2 -g0, and stripped with -s on Linux)
  HOTSOCK_SANITIZE=1   build with AddressSanitizer and UBSan (run Python with
                       LD_PRELOAD=$(gcc -print-file-name=libasan.so))
  HOTSOCK_TRACE=1      CYTHON_TRACE line tracing, for coverage of .pyx code
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


DEBUG = _flag("HOTSOCK_DEBUG")
SANITIZE = _flag("HOTSOCK_SANITIZE")
TRACE = _flag("HOTSOCK_TRACE")

# pyx/hotsock/ holds the modules, so that "from hotsock._x cimport f" finds
# pyx/hotsock/_x.pxd through include_path=["pyx"].
MODULES = {
    "_syscall": [],
    "_pysocket": [],
    "_address": [],
    "_methods": [],
    "_features": [],
    "_state": [],
    "_recv": ["pyx/core/ancillary.c"],
    "_send": ["pyx/core/segments.c"],
    "_sockopt": [],
    "_struct_options": [],
    "_options": [],
    "_driver": ["pyx/core/sequence.c"],
    "_capture": ["pyx/core/pcap.c", "pyx/core/format_pcap.c", "pyx/core/format_pcapng.c"],
    "_echo": ["pyx/core/segments.c"],
    "_blast": ["pyx/core/sequence.c", "pyx/core/segments.c"],
    "_reference": ["pyx/reference/loops.c", "pyx/core/pcap.c", "pyx/core/format_pcap.c",
                   "pyx/core/format_pcapng.c"],
}

# Release builds carry no debug information (Python's own CFLAGS add -g; the
# last -g option wins) and, on Linux, no local symbols (-s): smaller wheels.
compile_args = ["-O0", "-g3"] if DEBUG else ["-O2", "-g0"]
compile_args += ["-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
link_args = ["-s"] if not DEBUG and not SANITIZE and sys.platform.startswith("linux") else []
macros = [] if DEBUG else [("NDEBUG", None)]
if SANITIZE:
    sanitizers = "-fsanitize=address,undefined"
    compile_args += [sanitizers, "-fno-omit-frame-pointer", "-g"]
    link_args += [sanitizers]
if TRACE:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

extensions = [
    Extension(
        f"hotsock.{name}",
        [f"pyx/hotsock/{name}.pyx", *extra_sources],
        include_dirs=["pyx"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name, extra_sources in MODULES.items()
]

directives = {
    "language_level": 3,
    "embedsignature": True,
    "binding": True,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": DEBUG,
    "cdivision": True,
    "linetrace": TRACE,
}

# Both steps use every core: the modules are independent of each other.
JOBS = os.cpu_count() or 1

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["pyx"],
        compiler_directives=directives,
        annotate=_flag("HOTSOCK_ANNOTATE"),
        nthreads=JOBS,
    ),
    options={"build_ext": {"parallel": JOBS}},
)
