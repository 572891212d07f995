"""Joining or starting a Ray cluster, with one-line errors a user can act on, and the options of one worker.

``ray.address``: '' starts a local cluster for this command (shut down at its end); ``auto`` joins the cluster
that ``ray start --head`` runs on this machine; ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT`` (the head's
GCS port) join a remote one. An address that does not answer is refused in one line within
``JOIN_TIMEOUT_S`` seconds: a TCP probe runs first, then a trial join in a child process that is killed at the
deadline, because ``ray.init`` itself retries for half a minute (Ray Client) or indefinitely (a GCS port that
answers but is not Ray's) inside native code that no signal interrupts. If Ray is already initialised in this process (a test
session, a notebook), that cluster is used as it is.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from adhoc.errors import UserError

INSTALL = 'pip install -e ".[ray]"'
CONNECT_TIMEOUT_S = 4.0  # the TCP probe of a given address
EARLY_TIMEOUT_S = 2.0  # the probe a command runs first, before importing Ray, torch or transformers
JOIN_TIMEOUT_S = 8.5  # probe and trial join together: a refusal comes within 10 s


def require_ray() -> Any:
    """The ``ray`` module, or a one-line UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"backend=ray needs Ray, which is not installed here: run {INSTALL} "
                        f"(or choose backend=local)") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), int(port)


def _resolve_auto() -> str | None:
    """The GCS address ``auto`` means (the cluster ``ray start`` recorded on this machine), or None."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # no cluster recorded here, or a Ray without this helper: ray.init says which
        return None


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A UserError unless something accepts TCP connections at ``address`` within ``timeout`` seconds."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise UserError(f"cannot reach the Ray cluster at ray.address={address} ({why} within {timeout:g} s); "
                        f"start it with `ray start --head`, or leave ray.address empty to start a local one") from None


def check_reachable(ray_config) -> None:
    """Before any heavy import (Ray itself included, installed or not): a UserError within ``EARLY_TIMEOUT_S``
    seconds unless a given ``ray.address`` HOST:PORT accepts TCP connections ('' and auto are resolved later)."""
    address = ray_config.address.strip()
    if address and address != "auto":
        probe(address, timeout=EARLY_TIMEOUT_S)


def try_join(address: str, timeout: float) -> None:
    """Join ``address`` once in a child process killed after ``timeout`` seconds: a UserError if it fails."""
    import subprocess
    import sys

    code = ("import ray, sys\ntry:\n    ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
            "except Exception as exc:\n    print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)\n"
            "    sys.exit(3)\nray.shutdown()\n")
    try:
        run = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"the Ray cluster at ray.address={address} accepted a connection but did not let us join "
                        f"within {JOIN_TIMEOUT_S:g} s (is that a Ray head's address, and is it up?)") from None
    if run.returncode != 0:
        why = (run.stdout.strip().splitlines() or run.stderr.strip().splitlines() or [f"exit {run.returncode}"])[-1]
        raise UserError(f"cannot join the Ray cluster at ray.address={address}: {why}")


@contextlib.contextmanager
def cluster(ray_config, num_cpus: int | None = None):
    """Ray initialised as ``ray_config`` says, for the ``with`` block; a cluster this call started is shut down
    at its end. ``num_cpus``: CPUs of a local cluster started here (None: all of this machine's)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = ray_config.address.strip()
    quiet = {"logging_level": "ERROR", "log_to_driver": False, "configure_logging": True}
    if not address:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
    else:
        target = _resolve_auto() if address == "auto" else address
        if address == "auto" and target is None:
            raise UserError("ray.address=auto, but no Ray cluster runs on this machine (start one with "
                            "`ray start --head`, or leave ray.address empty to start a local one)")
        started = time.monotonic()
        probe(target)
        try_join(address, max(3.0, JOIN_TIMEOUT_S - (time.monotonic() - started)))
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as exc:
            raise UserError(f"cannot join the Ray cluster at ray.address={address}: "
                            f"{(str(exc).splitlines() or [''])[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_options(ray_config, retries: int | None = None) -> dict[str, Any]:
    """``.options(...)`` of one trial (a task: ``retries`` after a crash) or worker (an actor: ``retries`` None):
    its CPUs and its share of a GPU (or of the custom resource ``ray.gpu_resource`` names)."""
    options: dict[str, Any] = {"num_cpus": ray_config.cpus_per_worker}
    if retries is not None:
        options["max_retries"] = retries
    gpus = ray_config.gpus_per_worker
    if gpus:
        if ray_config.gpu_resource == "GPU":
            options["num_gpus"] = gpus
        else:
            options["resources"] = {ray_config.gpu_resource: gpus}
    return options
