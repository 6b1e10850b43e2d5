#!/usr/bin/env python3
"""lsmconnect: deny connect() to one IPv4 address with a BPF LSM program, and print each
denial (libbpf-bootstrap's lsm example, with the address given by -a).

A BPF LSM program on the ``socket_connect`` hook (Linux 5.7, ``CONFIG_BPF_LSM`` and
``bpf`` in the kernel's ``lsm=`` list, see /sys/kernel/security/lsm) sees every
connect(): the socket, the address and its length, and the verdict of the LSM programs
before it. A verdict already negative is passed on; an ``AF_INET`` address equal to
``-a ADDR`` is refused with ``EPERM`` (the caller's connect() fails with "Operation not
permitted") and a record (pid, comm, port) goes to a ring buffer, which the tool prints
as one line per denial: ``TIME PID COMM DADDR DPORT``. Other families (IPv6, UNIX) and
other addresses pass. The address is copied with ``bpf_probe_read_kernel``, so a short
or bad pointer lets the call through rather than failing the program.

Written with the assembler (:mod:`pybpf.asm.builder`) and loaded with
:func:`pybpf.link.tracing.load_tracing`: pybpf's Python language has no ``@lsm``
decorator yet. Where the kernel has no BPF LSM, or refuses LSM programs (this project's
test host: EPERM), the tool stops with one line naming that.
"""

import errno
import ipaddress
import signal
import socket
import struct
import time

from pybpf.asm import R0, R1, R2, R3, R4, R6, R10
from pybpf.asm.builder import (
    DW, H, W, Label, build, call, exit_, jne, ld_map_fd, ldx, mov, rsh, st, stx, add,
)
from pybpf.tooling import ToolParser, running, text_of, tool_main, write_lines

AF_INET = 2
#: the record: pid u32, port u16 (network order), family u16, address u32, pad u32,
#: comm char[16]
RECORD = "<IHHII16s"
RECORD_SIZE = struct.calcsize(RECORD)
LSM_LIST = "/sys/kernel/security/lsm"


def deny_program(events, address: int) -> list:
    """The socket_connect program: refuse ``address`` (the u32 as the kernel stores
    ``sin_addr``, network byte order read little-endian) and log it to ``events``."""
    return build([
        mov(R6, R1),
        ldx(DW, R0, R6, 24),                   # the verdict of the programs before this
        jne(R0, 0, "out"),
        mov(R1, R10), add(R1, -8), mov(R2, 8),
        ldx(DW, R3, R6, 8),                    # struct sockaddr *address
        call("probe_read_kernel"),
        jne(R0, 0, "allow"),
        ldx(H, R1, R10, -8), jne(R1, AF_INET, "allow"),
        ldx(W, R1, R10, -4), jne(R1, address, "allow"),
        call("get_current_pid_tgid"), rsh(R0, 32), stx(W, R10, -40, R0),
        ldx(H, R1, R10, -6), stx(H, R10, -36, R1),
        st(H, R10, -34, AF_INET),
        ldx(W, R1, R10, -4), stx(W, R10, -32, R1),
        st(W, R10, -28, 0),
        mov(R1, R10), add(R1, -24), mov(R2, 16), call("get_current_comm"),
        ld_map_fd(R1, events), mov(R2, R10), add(R2, -40), mov(R3, RECORD_SIZE),
        mov(R4, 0), call("ringbuf_output"),
        mov(R0, -errno.EPERM), exit_(),
        Label("allow"), mov(R0, 0),
        Label("out"), exit_(),
    ])


def bpf_lsm_missing() -> str:
    """Why BPF LSM programs cannot run here (``""`` if they may): ``bpf`` must be in
    the kernel's active LSM list."""
    try:
        with open(LSM_LIST) as fh:
            active = fh.read().strip().split(",")
    except OSError:
        return ""                              # securityfs not mounted: let the load say
    if "bpf" in active:
        return ""
    return (f"BPF LSM: 'bpf' is not in the kernel's active LSMs ({LSM_LIST}: "
            f"{','.join(active)}); boot with lsm={','.join(active + ['bpf'])}")


def main(argv=None) -> int:
    from pybpf.events.ringbuf import RingBufReader
    from pybpf.link.tracing import attach_tracing, load_tracing
    from pybpf.maps import RingBuf

    parser = ToolParser("lsmconnect", "Deny connect() to an IPv4 address with BPF LSM",
                        examples=["./lsmconnect -a 1.1.1.1   # refuse connections to "
                                  "1.1.1.1, print each refusal"])
    parser.add_argument("-a", "--address", required=True, type=ipaddress.IPv4Address,
                        help="the IPv4 address to deny")
    args = parser.parse_args(argv)
    why = bpf_lsm_missing()
    if why:
        raise OSError(why)
    address = int.from_bytes(args.address.packed, "little")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with RingBuf(size=64 * 1024) as events:
        try:
            prog = load_tracing("lsm", "socket_connect", deny_program(events, address),
                                maps={"events": events}, name="deny_connect")
        except PermissionError as exc:
            raise PermissionError(f"BPF LSM: the kernel refused the LSM program on "
                                  f"socket_connect ({exc.strerror or exc}); it needs root "
                                  f"(CAP_BPF, CAP_MAC_ADMIN) and a kernel that allows "
                                  f"LSM programs") from None
        with prog, attach_tracing(prog), RingBufReader(events, record=RECORD) as reader:
            print(f"Denying connect() to {args.address}... Hit Ctrl-C to end.")
            print(f"{'TIME':<8} {'PID':<7} {'COMM':<16} {'DADDR':<15} DPORT")
            with running():
                while True:
                    rows = reader.read(0.5)
                    wall = time.strftime("%H:%M:%S")
                    write_lines([f"{wall:<8} {pid:<7} {text_of(comm):<16} "
                                 f"{socket.inet_ntoa(struct.pack('<I', addr)):<15} "
                                 f"{socket.ntohs(port)}"
                                 for pid, port, _, addr, _, comm in rows])
    return 0


if __name__ == "__main__":
    tool_main(main)
