"""What the client scripts share: the Python docker library's client for DOCKER_HOST (ssh://,
shelling out to ssh as the CLI does) and `check`, which raises on failure and prints each
check that held."""

import os

import docker


def client(timeout):
    return docker.DockerClient(
        base_url=os.environ["DOCKER_HOST"], use_ssh_client=True, timeout=timeout
    )


def check(what, cond, detail=""):
    if not cond:
        raise AssertionError(f"{what}: {detail}")
    print(f"checked: {what}", flush=True)
