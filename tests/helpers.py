"""Helpers the test files share: the repository's root, a free loopback port and a tool's path."""
import os
import shutil
import socket
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tool(name):
    """A command-line tool from this environment's bin folder (pip-installed), or its tools environment's
    (`make test` keeps some there: Makefile, TEST_TOOLS), else from PATH."""
    bin_folder = os.path.dirname(sys.executable)
    for folder in (bin_folder, os.path.join(os.path.dirname(bin_folder), "tools", "bin")):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return shutil.which(name)
