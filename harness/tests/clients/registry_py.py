"""The Python `docker` library (7.x) pulling, pushing and logging in through the user engine.

Run by harness/tests/registry.rs after the CLI's part, with DOCKER_HOST=ssh://… and the ssh
wrapper on PATH, and two arguments: the plain registry (it holds test/fromdockerd:2) and the
secure one (basic auth tester / s3cret-pw; it holds private/busybox:1). Every check raises on
failure; the last line printed is "ok".
"""

import sys

import docker
import docker.errors

import checks  # beside this script
from checks import check

plain, secure = sys.argv[1], sys.argv[2]
client = checks.client(timeout=300)


image = client.images.pull(f"{plain}/test/fromdockerd", tag="2")
check("pull returns the image", f"{plain}/test/fromdockerd:2" in image.tags, image.tags)
out = client.containers.run(image.id, ["cat", "/marker"], remove=True)
check("run the pulled image", out == b"from-dockerd\n", out)

client.images.get("ros/busybox").tag(f"{plain}/py/busybox", "3")
lines = list(client.images.push(f"{plain}/py/busybox", tag="3", stream=True, decode=True))
check("push streams no error", not any("error" in l for l in lines), lines)
aux = [l["aux"] for l in lines if "aux" in l]
check("push reports the tag and digest", aux and aux[-1]["Tag"] == "3"
      and aux[-1]["Digest"].startswith("sha256:"), lines)
check("RepoDigests after the push",
      any(d.startswith(f"{plain}/py/busybox@sha256:")
          for d in client.images.get(f"{plain}/py/busybox:3").attrs["RepoDigests"]),
      client.images.get(f"{plain}/py/busybox:3").attrs)

try:
    client.images.pull(f"{plain}/nope/none", tag="1")
    raise AssertionError("pull of a missing image succeeded")
except docker.errors.NotFound as e:
    check("pull of a missing image is NotFound", True, e)

try:
    client.login(username="tester", password="not-it", registry=secure, reauth=True)
    raise AssertionError("login with a wrong password succeeded")
except docker.errors.APIError as e:
    check("a wrong password is 401", e.status_code == 401, e)
r = client.login(username="tester", password="s3cret-pw", registry=secure, reauth=True)
check("login", r.get("Status") == "Login Succeeded", r)
private = client.images.pull(f"{secure}/private/busybox", tag="1")
check("an authenticated pull", f"{secure}/private/busybox:1" in private.tags, private.tags)

print("ok")
