"""The Python `docker` library (7.x) against the user engine, from this machine over SSH.

Run by harness/tests/user_docker_clients.rs with DOCKER_HOST=ssh://rancher@127.0.0.1:PORT and
an `ssh` wrapper first on PATH (use_ssh_client: the library shells out to ssh, which runs
`docker system dial-stdio` in the console). Every check raises on failure; the last line
printed is "ok".
"""

import sys

import docker
import docker.errors

import checks  # beside this script
from checks import check

client = checks.client(timeout=120)


check("ping", client.ping() is True)
check("version", client.version()["ApiVersion"] == "1.41", client.version())
info = client.info()
check("info", info["OSType"] == "linux", info)

image = client.images.get("ros/busybox")
check("image tags", "ros/busybox:latest" in image.tags, image.tags)

out = client.containers.run(
    "ros/busybox", ["sh", "-c", "echo py-out; echo py-err >&2"], remove=True
)
check("run output (stdout only by default)", out == b"py-out\n", out)

try:
    client.containers.run("ros/busybox", ["sh", "-c", "exit 3"], remove=True)
    raise AssertionError("a failing container raised nothing")
except docker.errors.ContainerError as e:
    check("ContainerError exit status", e.exit_status == 3, e)

c = client.containers.run(
    "ros/busybox",
    ["sh", "-c", "echo hi-from-py; exec sleep 300"],
    detach=True,
    name="pyc",
    labels={"suite": "py"},
    environment={"A": "b"},
)
c.reload()
check("detached status", c.status == "running", c.status)
check("labels", c.labels.get("suite") == "py", c.labels)
listed = client.containers.list(filters={"label": "suite=py"})
check("list by label", [x.name for x in listed] == ["pyc"], listed)

for _ in range(40):
    if b"hi-from-py" in c.logs():
        break
    import time

    time.sleep(0.5)
check("logs", b"hi-from-py" in c.logs(), c.logs())

r = c.exec_run(["sh", "-c", "echo $A"])
check("exec_run output", r.exit_code == 0 and r.output == b"b\n", r)
r = c.exec_run(["sh", "-c", "exit 9"])
check("exec_run exit code", r.exit_code == 9, r)
r = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
check("exec_run demux", r.output == (b"o\n", b"e\n"), r)
# Each exec's stream ends on the engine's side, and the library's ssh transport then writes to
# ssh's stdin (docker/docker-py#3218): dial-stdio must still be there. Many in a row.
runs = [c.exec_run(["echo", str(i)]) for i in range(12)]
check(
    "exec_run x12 (each stream's end, then the library's close)",
    [(r.exit_code, r.output) for r in runs] == [(0, f"{i}\n".encode()) for i in range(12)],
    runs,
)

top = c.top()
check("top", top["Titles"][-1] == "CMD" and any("sleep 300" in p[-1] for p in top["Processes"]), top)
stats = c.stats(stream=False)
check("stats memory", stats["memory_stats"]["usage"] > 0, stats["memory_stats"])
check("stats pids", stats["pids_stats"]["current"] >= 1, stats["pids_stats"])

c.pause()
c.reload()
check("paused", c.status == "paused", c.status)
c.unpause()
c.reload()
check("unpaused", c.status == "running", c.status)

c.rename("pyc2")
c.reload()
check("rename", c.name == "pyc2", c.name)

try:
    client.containers.run("ros/busybox", "true", name="pyc2")
    raise AssertionError("a name conflict raised nothing")
except docker.errors.APIError as e:
    check("conflict is 409", e.status_code == 409, e)

# `sleep` is the container's pid 1 and ignores TERM: KILL after the timeout, 137.
c.stop(timeout=1)
code = c.wait()["StatusCode"]
check("wait after stop", code == 137, code)
c.remove()
try:
    client.containers.get("pyc2")
    raise AssertionError("a removed container is still there")
except docker.errors.NotFound:
    check("removed", True)

try:
    client.images.get("no/such-image")
    raise AssertionError("an unknown image was found")
except docker.errors.ImageNotFound:
    check("unknown image", True)

check("nothing left", client.containers.list(all=True) == [], client.containers.list(all=True))
print("ok")
sys.exit(0)
