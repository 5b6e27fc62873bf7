"""A network of the test's own: a network namespace joined to this host by a veth pair, with an
address in 10.213.0.0/16 at each end (a /30), whose link the test cuts and restores. A process
started under :attr:`Link.prefix` (``ip netns exec NS``) reaches this host only through it.

The link is cut on the host's side (``ip link set DEV down``): packets between the two ends are
dropped in silence both ways, as in a real split, and nothing is refused. A blackhole route
for the /30 stands behind the link's own route, so that while the link is down nothing meant
for the namespace leaves the machine by the default route. Everything made is removed
afterwards; tests that use it are skipped, with the reason, without root or ``ip netns``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


def _ip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=30)
    assert not check or done.returncode == 0, f"ip {' '.join(arguments)}: {done.stderr}"
    return done


@dataclass
class Link:
    """The namespace ``namespace``, this host's end ``host_device`` at ``host_address`` and
    the namespace's at ``worker_address``."""

    namespace: str
    host_device: str
    worker_device: str
    network: str
    host_address: str
    worker_address: str

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a process inside the namespace."""
        return ["ip", "netns", "exec", self.namespace]

    def cut(self) -> None:
        _ip("link", "set", self.host_device, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_device, "up")

    def build(self) -> None:
        _ip("link", "add", self.host_device, "type", "veth", "peer", "name", self.worker_device)
        _ip("link", "set", self.worker_device, "netns", self.namespace)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_device)
        _ip("link", "set", self.host_device, "up")
        _ip("route", "add", "blackhole", self.network, "metric", "4000")
        inside = ("-n", self.namespace)
        _ip(*inside, "addr", "add", f"{self.worker_address}/30", "dev", self.worker_device)
        _ip(*inside, "link", "set", self.worker_device, "up")
        _ip(*inside, "link", "set", "lo", "up")

    def remove(self) -> None:
        """Remove the namespace (and the pair with it), whatever was made of them."""
        _ip("netns", "delete", self.namespace, check=False)
        _ip("link", "delete", self.host_device, check=False)
        _ip("route", "delete", "blackhole", self.network, "metric", "4000", check=False)


def _free_network() -> tuple[str, str, str]:
    """A /30 of 10.213.0.0/16 that no address of this host is in: (network, host end,
    namespace end)."""
    taken = _ip("-o", "-4", "addr", "show").stdout + _ip("-4", "route", "show").stdout
    for _ in range(100):
        base = random.randrange(0, 1 << 16, 4)
        prefix = f"10.213.{base >> 8}."
        network = f"{prefix}{base & 255}"
        if network + "/30" not in taken and f"{prefix}{(base & 255) + 1}" not in taken:
            return (f"{network}/30", f"{prefix}{(base & 255) + 1}",
                    f"{prefix}{(base & 255) + 2}")
    raise AssertionError("no free /30 in 10.213.0.0/16")


@contextmanager
def own_network() -> Iterator[Link]:
    """A namespace joined to this host by a veth pair (see the module docstring)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, for a network namespace and a veth pair")
    if shutil.which("ip") is None:
        pytest.skip("needs ip (iproute2), for a network namespace")
    tag = f"{os.getpid() % 10**7}{random.randrange(100)}"
    network, host_address, worker_address = _free_network()
    link = Link(f"tuner-split-{tag}", f"tsh{tag}", f"tsn{tag}", network, host_address,
                worker_address)
    made = _ip("netns", "add", link.namespace, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    try:
        link.build()
        yield link
    finally:
        link.remove()
