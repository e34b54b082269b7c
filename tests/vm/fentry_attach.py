"""Attach pinned fentry/fexit programs (tests/vm/guest.sh): the bpftool on
these hosts (7.1) loads them but cannot attach tracing programs, so this
does BPF_OBJ_GET + BPF_RAW_TRACEPOINT_OPEN itself, then lets go of the link."""
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF, BPF_OBJ_GET, BPF_RAW_TRACEPOINT_OPEN = 321, 7, 17  # x86_64


class ObjGet(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32)]


class RawTp(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32),
                ("pad", ctypes.c_uint32)]


def bpf(cmd, attr):
    r = libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


out = []
for pin in sys.argv[1:]:
    name = os.path.basename(pin)
    path = ctypes.create_string_buffer(pin.encode())
    try:
        fd = bpf(BPF_OBJ_GET, ObjGet(ctypes.addressof(path), 0, 0))
        link = bpf(BPF_RAW_TRACEPOINT_OPEN, RawTp(0, fd, 0))
        os.close(link)
        os.close(fd)
        out.append(f"{name} attached")
    except OSError as e:
        out.append(f"{name} not attached ({e.strerror})")
print("; ".join(out))
