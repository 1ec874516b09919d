"""Helpers every bench script shares: running a shell command, naming a
missing tool with the package to install, a veth pair between two network
namespaces, and the release build. Imported by the scripts beside it."""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def sh(cmd, check=True):
    """Runs `cmd` in a shell; its CompletedProcess (stdout and stderr as text)."""
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True)


def need(tool, package):
    """The path of `tool` (also looked for in sbin); exits naming the package to
    install when it is missing."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if not path:
        script = os.path.basename(sys.argv[0])
        sys.exit(f"bench/{script}: `{tool}` is missing: apt-get install {package}")
    return path


def veth(srv, cli, srv_ip, cli_ip, prefix, srv_if="eth0", cli_if="eth0"):
    """Namespaces `srv` and `cli` joined by a veth pair, addressed and up
    (loopback up too); any earlier pair of the same names is removed first."""
    unlink(srv, cli)
    sh(f"ip netns add {srv} && ip netns add {cli}")
    sh(f"ip -n {srv} link add {srv_if} type veth peer name {cli_if} netns {cli}")
    for ns, dev, ip in [(srv, srv_if, srv_ip), (cli, cli_if, cli_ip)]:
        sh(f"ip -n {ns} addr add {ip}/{prefix} dev {dev} && ip -n {ns} link set {dev} up"
           f" && ip -n {ns} link set lo up")


def unlink(srv, cli):
    """Removes the two namespaces (and with them the veth pair)."""
    sh(f"ip netns del {srv}", check=False)
    sh(f"ip netns del {cli}", check=False)


def build():
    """Builds the release binary; its path. RACKBOOT_BIN names another binary
    instead (say, an older commit's, to measure before and after in one
    session), which is then used as it is."""
    if os.environ.get("RACKBOOT_BIN"):
        return os.environ["RACKBOOT_BIN"]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    return os.path.join(REPO, "target", "release", "rackboot")
