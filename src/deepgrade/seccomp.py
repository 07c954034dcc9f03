"""A seccomp filter that stops sandboxed code from creating user namespaces.

bubblewrap >= 0.8 does this itself (`--disable-userns`). Older releases (Ubuntu 22.04 ships
0.6) take a compiled filter on a file descriptor (`--seccomp FD`) instead; the filter is built
here with the system's libseccomp through ctypes, not assembled by hand, and refuses:

- unshare() and clone() whose flags include CLONE_NEWUSER (EPERM),
- clone3() altogether (ENOSYS: its flags sit in memory a filter cannot read; glibc then falls
  back to clone()).

Other namespaces need CAP_SYS_ADMIN, which the sandbox has dropped; a new user namespace is the
one way back to it. System calls of another architecture (32-bit, x32) kill the process
(libseccomp's default for a foreign architecture).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

CLONE_NEWUSER = 0x10000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
# Architectures where clone()'s flags are its first argument (s390 swaps the first two).
FLAGS_FIRST = {"x86_64", "aarch64", "ppc64le", "riscv64"}


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


@functools.cache
def _library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def unavailable_reason() -> str:
    """Why no filter can be built here ("" when it can)."""
    if os.uname().machine not in FLAGS_FIRST:
        return f"no user-namespace filter for the {os.uname().machine} architecture"
    if _library() is None:
        return "libseccomp (the libseccomp2 package) is not installed"
    return ""


def userns_filter_bpf() -> bytes:
    """The compiled filter (classic BPF, as bwrap --seccomp reads it). Raises OSError."""
    problem = unavailable_reason()
    lib = _library()
    if problem or lib is None:
        raise OSError(problem)
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        newuser = (_ArgCmp * 1)(_ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        rules = [
            ("unshare", _errno_action(errno.EPERM), newuser, 1),
            ("clone", _errno_action(errno.EPERM), newuser, 1),
            ("clone3", _errno_action(errno.ENOSYS), None, 0),
        ]
        for name, action, args, count in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # this kernel's architecture has no such call (clone3 before 5.3)
            status = lib.seccomp_rule_add_array(ctx, action, number, count, args)
            if status < 0:
                raise OSError(-status, f"seccomp rule for {name} failed")
        read_end, write_end = os.pipe()
        try:
            status = lib.seccomp_export_bpf(ctx, write_end)
            os.close(write_end)
            write_end = -1
            if status < 0:
                raise OSError(-status, "seccomp_export_bpf failed")
            chunks = []
            while chunk := os.read(read_end, 65536):
                chunks.append(chunk)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        return b"".join(chunks)
    finally:
        lib.seccomp_release(ctx)
