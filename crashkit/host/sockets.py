"""Listening TCP sockets and their processes (/proc/net/tcp{,6}, /proc/*/fd),
whether a user may connect to a unix socket (asked of the kernel), and
whether SELinux may be the one saying no."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

from crashkit.host.proc import process_name
from crashkit.model.host import PortHolder

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


@dataclass(frozen=True)
class Listener:
    ip: str  # "127.0.0.1", "::", …
    port: int
    inode: int

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    # The kernel prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))


def listeners(proc: str = "/proc") -> list[Listener]:
    out = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/net/{name}", encoding="ascii", errors="replace") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != _LISTEN:
                        continue
                    ip, port = fields[1].rsplit(":", 1)
                    out.append(Listener(_hex_ip(ip), int(port, 16), int(fields[9])))
        except (OSError, ValueError):
            continue
    return out


def socket_owners(inodes: set[int], proc: str = "/proc") -> dict[int, list[int]]:
    """inode -> pids that have that socket open."""
    owners: dict[int, list[int]] = {}
    if not inodes:
        return owners
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"{proc}/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/{entry}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes and int(entry) not in owners.get(inode, []):
                    owners.setdefault(inode, []).append(int(entry))
    return owners




def split_address(address: str) -> tuple[str | None, int] | None:
    """nginx's "127.0.0.1:80", "[::]:443", "*:80", "80" as (ip or None for
    any, port); None for unix sockets and names that are not addresses."""
    if address.startswith("unix:"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = "", address
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        return None
    if host in ("", "*"):
        return None, number
    try:
        return str(ipaddress.ip_address(host)), number
    except ValueError:
        return host, number  # a host name: matched by port only


def _conflicts(want: tuple[str | None, int], have: Listener) -> bool:
    ip, port = want
    if port != have.port:
        return False
    wildcard = {"0.0.0.0", "::"}
    return ip is None or ip == have.ip or ip in wildcard or have.ip in wildcard or \
        not _is_ip(ip)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def holders_by_address(addresses: list[str], proc: str = "/proc") -> dict[str, list[PortHolder]]:
    """For each address, the processes listening where it would bind (same
    port, and the same or a wildcard address). One pass over /proc."""
    wanted = {a: w for a in addresses if (w := split_address(a)) is not None}
    found = [ls for ls in listeners(proc) if any(_conflicts(w, ls) for w in wanted.values())]
    owners = socket_owners({ls.inode for ls in found}, proc)
    names: dict[int, tuple[str, str]] = {}
    out: dict[str, list[PortHolder]] = {a: [] for a in addresses}
    for a, w in wanted.items():
        for ls in found:
            if not _conflicts(w, ls):
                continue
            for pid in owners.get(ls.inode, []):
                if pid not in names:
                    names[pid] = process_name(pid, proc)
                out[a].append(PortHolder(ls.address, pid, *names[pid]))
    return out


def holders(addresses: list[str], proc: str = "/proc") -> list[PortHolder]:
    """Every process listening where any of these addresses would bind."""
    seen: dict[tuple[str, int], PortHolder] = {}
    for hs in holders_by_address(addresses, proc).values():
        for h in hs:
            seen.setdefault((h.address, h.pid), h)
    return list(seen.values())


def connect_as(path: str, user: str) -> int | None:
    """Try to connect to unix socket ``path`` as ``user`` (with its groups, as
    nginx's workers run): 0 when it works, else the errno (13: permission
    denied, 111: nobody listens, 2: no such file). None when we cannot switch
    users (not root) or the user does not exist.
    """
    import pwd

    from crashkit.host.privs import as_user

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None

    def connect() -> int:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            try:
                s.connect(path)
            except OSError as exc:
                return exc.errno if exc.errno and exc.errno < 254 else 254
        return 0

    code = as_user(pw.pw_uid, pw.pw_gid, user, connect)
    return None if code == 254 else code


def selinux_mode(root: str = "/sys/fs/selinux") -> str:
    """"enforcing", "permissive" or "absent" (no SELinux on this host)."""
    try:
        with open(f"{root}/enforce", encoding="ascii") as f:
            return "enforcing" if f.read().strip() == "1" else "permissive"
    except OSError:
        return "absent"
