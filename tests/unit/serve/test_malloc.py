"""serve/malloc.py: glibc's thresholds are fixed once per process (the soak's RSS curve in
the README is the measurement; here: that the settings are taken, and only once)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_glibc_takes_the_settings_and_the_environment_wins() -> None:
    code = ("from gateway.serve.malloc import tune_allocator, _SETTINGS\n"
            "print(tune_allocator(), tune_allocator(), len(_SETTINGS))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["True", "True", "3"]
    # An operator's MALLOC_* variable is left to glibc, the others still applied.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, env={"MALLOC_ARENA_MAX": "1"})
    assert done.stdout.split()[0] == "True"


# mallinfo2 (glibc 2.33+) counts the chunks that mmap serves: ``hblks``.
_MAPPED_CHUNKS = """
import ctypes, ctypes.util, sys
from gateway.serve.malloc import tune_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert tune_allocator()
before = libc.mallinfo2().hblks
held = [bytearray(256 * 1024) for _ in range(4)]  # uvloop's TLS read buffer size
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_a_tls_read_buffer_comes_from_the_heap_not_from_mmap() -> None:
    # 128 KiB made every TLS read of uvloop (256 KiB, then shrunk) an mmap, an mremap and
    # a munmap: ~15 % of a forwarded push's CPU.
    done = subprocess.run([sys.executable, "-c", _MAPPED_CHUNKS, "tuned"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["0"]
    # The probe can tell: with glibc's starting threshold (128 KiB) the same buffers are mapped.
    done = subprocess.run([sys.executable, "-c", _MAPPED_CHUNKS, "plain"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["4"]
