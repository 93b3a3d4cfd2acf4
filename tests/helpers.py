"""Helpers the test files share: the repository's root, a free loopback port and a tool's path."""
import contextlib
import os
import shutil
import socket
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A loopback port that nothing listens on."""
    return free_ports(1)[0]


def free_ports(count):
    """`count` different loopback ports that nothing listens on: each stays bound until all are chosen, so the
    system cannot hand out one of them twice (one port asked for at a time, it can)."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
        return ports


def tool(name):
    """A command-line tool from this environment's bin folder (pip-installed), or its tools environment's
    (`make test` keeps some there: Makefile, TEST_TOOLS), else from PATH."""
    bin_folder = os.path.dirname(sys.executable)
    for folder in (bin_folder, os.path.join(os.path.dirname(bin_folder), "tools", "bin")):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return shutil.which(name)
