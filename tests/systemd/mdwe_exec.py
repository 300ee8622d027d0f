"""Run a command under the seccomp filter systemd installs for MemoryDenyWriteExecute=yes.

    python mdwe_exec.py PROGRAM [ARGS...]

systemd (src/shared/seccomp-util.c, seccomp_memory_deny_write_execute) refuses with EPERM:
mmap() asking for PROT_WRITE and PROT_EXEC together, and mprotect()/pkey_mprotect() adding
PROT_EXEC. This installs the same rule (after PR_SET_NO_NEW_PRIVS, as NoNewPrivileges= does),
checks that it bites, and execs PROGRAM, which inherits the filter with its children. So a test
can show that Python, numpy and the agent run under the unit's MemoryDenyWriteExecute=yes on a
machine where systemd is not PID 1.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import struct
import sys

# (AUDIT_ARCH, __NR_mmap, __NR_mprotect, __NR_pkey_mprotect)
ARCHES = {"x86_64": (0xC000003E, 9, 10, 329), "aarch64": (0xC00000B7, 222, 226, 288)}
BPF_LD_W_ABS, BPF_JEQ_K, BPF_AND_K, BPF_RET_K = 0x20, 0x15, 0x54, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_EPERM = 0x7FFF0000, 0x00050000 | 1
PROT_WRITE, PROT_EXEC = 2, 4
ARG2 = 16 + 2 * 8  # seccomp_data.args[2], low 32 bits (little-endian)


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def install_filter() -> None:
    arch, nr_mmap, nr_mprotect, nr_pkey = ARCHES[platform.machine()]
    prog = [
        _ins(BPF_LD_W_ABS, 0, 0, 4),                    # 0 arch
        _ins(BPF_JEQ_K, 1, 0, arch),                    # 1 native? -> 3
        _ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),       # 2
        _ins(BPF_LD_W_ABS, 0, 0, 0),                    # 3 syscall nr
        _ins(BPF_JEQ_K, 3, 0, nr_mmap),                 # 4 -> 8
        _ins(BPF_JEQ_K, 5, 0, nr_mprotect),             # 5 -> 11
        _ins(BPF_JEQ_K, 4, 0, nr_pkey),                 # 6 -> 11
        _ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),       # 7
        _ins(BPF_LD_W_ABS, 0, 0, ARG2),                 # 8 mmap prot
        _ins(BPF_AND_K, 0, 0, PROT_WRITE | PROT_EXEC),  # 9
        _ins(BPF_JEQ_K, 4, 3, PROT_WRITE | PROT_EXEC),  # 10 W|X -> 15 else 14
        _ins(BPF_LD_W_ABS, 0, 0, ARG2),                 # 11 mprotect prot
        _ins(BPF_AND_K, 0, 0, PROT_EXEC),               # 12
        _ins(BPF_JEQ_K, 1, 0, PROT_EXEC),               # 13 X -> 15 else 14
        _ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),       # 14
        _ins(BPF_RET_K, 0, 0, SECCOMP_RET_EPERM),       # 15
    ]
    code = ctypes.create_string_buffer(b"".join(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(code))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")

    # The filter must bite, or a passing test would prove nothing.
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        pass
    else:
        raise SystemExit("mdwe_exec: W|X mmap was allowed: the filter is not active")
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if libc.mprotect(ctypes.c_void_p(page), 4096, mmap.PROT_READ | mmap.PROT_EXEC) == 0:
        raise SystemExit("mdwe_exec: mprotect(PROT_EXEC) was allowed: the filter is not active")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    install_filter()
    os.execv(sys.argv[1], sys.argv[1:])
