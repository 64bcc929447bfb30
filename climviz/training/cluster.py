"""Connect to a Ray cluster, or start a local one, without hanging.

:func:`connect` is what :func:`climviz.train` calls before it launches a
``TorchTrainer``:

* ``address=None`` starts a local Ray sized to this machine (all its CPUs and
  GPUs), with the dashboard bound to ``127.0.0.1`` only (or no dashboard).
  If the environment variable ``RAY_ADDRESS`` is set, that cluster is joined
  instead, as plain ``ray.init()`` would do.
* ``address="auto"`` joins the cluster started on this machine with
  ``ray start`` (or named by ``RAY_ADDRESS``).
* ``address="host:port"`` joins a cluster by its GCS address;
  ``address="ray://host:10001"`` connects through Ray Client.

An unreachable address raises :class:`climviz.ClusterError` within
``timeout_s`` seconds: the TCP port is probed first, then the GCS is asked for
its cluster id in a background thread (for ``ray://``: the Ray Client server
must complete a gRPC handshake), so a wrong host or port never leaves a
notebook cell hanging on Ray's own (minutes long) reconnection loop.

Through Ray Client, the head node's proxier starts one server process per
driver; when that process dies while starting (a loaded head node), Ray reports
``ConnectionAbortedError: Initialization failure from server``. :func:`connect`
then retries a bounded number of times (3 attempts, backing off 2 s and 4 s)
and raises a ``ClusterError`` that says where the head node's logs are.

Calling :func:`connect` again in the same process reuses the connection, so
``train`` can be called many times in one kernel (never a second local Ray).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from climviz.errors import ClusterError

__all__ = ["ClusterInfo", "connect", "shutdown", "parse_address", "free_port"]

#: What this module knows about the current connection (one per process).
_STATE: dict[str, Any] = {"requested": None, "info": None, "owned": False}


@dataclass
class ClusterInfo:
    """Where this process is connected.

    Attributes
    ----------
    address : str
        GCS address ``host:port`` of the cluster, or the ``ray://`` URL when
        connected through Ray Client.
    started_here : bool
        True when :func:`connect` started a local Ray in this process (it is
        stopped by :func:`shutdown` or at interpreter exit).
    client : bool
        True when connected through Ray Client (``ray://``).
    dashboard_url : str or None
        ``http://host:port`` of the Ray dashboard (and of the Job API used by
        :func:`climviz.training.jobs.submit_training`), if one runs.
    resources : dict
        Total cluster resources (``CPU``, ``GPU``, ``memory``,
        ``object_store_memory`` in bytes, ...).
    num_nodes : int
        Alive nodes in the cluster.
    log_dir : str or None
        Directory holding the worker logs of this Ray session, when it is on
        this machine (``None`` through Ray Client).
    """

    address: str
    started_here: bool = False
    client: bool = False
    dashboard_url: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    num_nodes: int = 1
    log_dir: str | None = None

    @property
    def num_cpus(self) -> int:
        """Total logical CPUs in the cluster."""
        return int(self.resources.get("CPU", 0))

    @property
    def num_gpus(self) -> int:
        """Total GPUs in the cluster."""
        return int(self.resources.get("GPU", 0))


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_address(address: str) -> tuple[str, str, int]:
    """Split a Ray address into ``(scheme, host, port)``.

    Parameters
    ----------
    address : str
        ``"host:port"`` (GCS address, scheme ``"gcs"``) or
        ``"ray://host:port"`` (Ray Client, scheme ``"ray"``; port 10001 when
        omitted).

    Raises
    ------
    ClusterError
        If the address has no host or no valid port.
    """
    text = address.strip()
    scheme = "gcs"
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        if scheme != "ray":
            raise ClusterError(
                f"Ray address {address!r}: expected 'host:port', 'ray://host:port' or "
                f"'auto', found scheme {scheme + '://'!r} (the dashboard URL "
                "'http://...' is for climviz.training.jobs.submit_training, not train)"
            )
    text = text.rstrip("/")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if scheme == "ray":
            host, port_text = text, "10001"
        else:
            raise ClusterError(
                f"Ray address {address!r}: expected 'host:port' (e.g. '10.0.0.5:6379'), "
                "found no port"
            )
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ClusterError(
            f"Ray address {address!r}: port must be an integer, found {port_text!r}"
        ) from None
    if not host or not 0 < port < 65536:
        raise ClusterError(
            f"Ray address {address!r}: expected a host and a port in 1..65535, "
            f"found host {host!r} port {port}"
        )
    return scheme, host, port


def _probe_tcp(host: str, port: int, timeout_s: float, address: str) -> None:
    """Raise ClusterError unless something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=max(timeout_s, 0.1)):
            return
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else str(exc)
        raise ClusterError(
            f"Cannot reach the Ray cluster at {address!r}: TCP connection to "
            f"{host}:{port} failed ({reason}). Is the cluster running "
            "(`ray start --head` prints its address) and is the port reachable?"
        ) from exc


def _probe_gcs(gcs_address: str, timeout_s: float, address: str) -> None:
    """Ask the GCS for its cluster id, giving up after timeout_s seconds."""
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # in the compiled module; ray's _raylet.pyi omits it

    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["id"] = GcsClient(address=gcs_address).cluster_id
        except Exception as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=ask, name="climviz-gcs-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "id" in outcome:
        return
    detail = (
        f"no answer within {timeout_s:g} s"
        if thread.is_alive()
        else f"{type(outcome.get('error')).__name__}: {outcome.get('error')}"
    )
    raise ClusterError(
        f"Cannot reach the Ray cluster at {address!r}: port {gcs_address} is open but "
        f"no Ray GCS answered ({detail}). Check that the address is the one printed "
        "by `ray start --head` (default port 6379)."
    )


def _probe_client(host: str, port: int, timeout_s: float, address: str) -> None:
    """Raise ClusterError unless a gRPC server (the Ray Client server) answers at host:port.

    A port that accepts TCP connections but does not speak gRPC (HTTP/2) never
    becomes ready; Ray Client itself would retry for about 30-40 s with growing
    timeouts, so the channel is checked here within ``timeout_s``. Skipped for TLS
    (``RAY_USE_TLS``), where a plain channel cannot become ready.
    """
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true", "yes"):
        return
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=max(timeout_s, 0.1))
    except grpc.FutureTimeoutError:
        raise ClusterError(
            f"Cannot reach the Ray cluster at {address!r}: port {host}:{port} is open but no "
            f"Ray Client server answered (no gRPC handshake within {timeout_s:g} s). Is it the "
            "client port of the head node (`ray start --head --ray-client-server-port=10001`)?"
        ) from None
    finally:
        channel.close()


#: Failures of Ray Client's connection set-up that a new attempt can cure: the proxier on
#: the head node starts one "specific server" process per client, and when that process
#: dies while starting (seen on loaded machines) the client gets ConnectionAbortedError
#: "Initialization failure from server" (or a ConnectionError after a reset).
_CLIENT_RETRYABLE = (ConnectionAbortedError, ConnectionError)


def _init_client(ray: Any, client_url: str, requested: str, *, log_to_driver: bool,
                 namespace: str | None, timeout_s: float, attempts: int = 3,
                 logging_level: int = logging.WARNING) -> Any:
    """``ray.init(ray://...)`` with a bounded retry of aborted connection set-ups."""
    start = time.monotonic()
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        try:
            return ray.init(address=client_url, log_to_driver=log_to_driver, namespace=namespace,
                            logging_level=logging_level)
        except _CLIENT_RETRYABLE as exc:
            first_line = str(exc).strip().splitlines()
            errors.append(f"attempt {attempt}: {type(exc).__name__}: "
                          f"{first_line[0] if first_line else ''}"
                          + (f" ... {first_line[-1]}" if len(first_line) > 1 else ""))
            with contextlib.suppress(Exception):
                ray.shutdown()
            elapsed = time.monotonic() - start
            if attempt == attempts or elapsed + 2.0 * attempt > max(timeout_s, 2.0 * attempts):
                break
            time.sleep(2.0 * attempt)           # let the proxier reap and free the server's port
        except Exception as exc:
            with contextlib.suppress(Exception):
                ray.shutdown()
            raise ClusterError(
                f"Cannot connect to the Ray Client server at {requested!r}: "
                f"{type(exc).__name__}: {exc}. Is it the client port of the head node "
                "(`ray start --head --ray-client-server-port=10001`)?"
            ) from exc
    raise ClusterError(
        f"Cannot connect to the Ray Client server at {requested!r}: the server aborted the "
        f"connection set-up {len(errors)} time(s) ({'; '.join(errors)}). The head node's "
        "proxier could not start a client server process for this driver; its logs are "
        "ray_client_server.err and ray_client_server_<port>.err in the head node's Ray "
        "session logs (by default /tmp/ray/session_latest/logs)."
    )


def _resolve_auto(address: str) -> str:
    """Turn 'auto' into the GCS address of the cluster started on this machine."""
    from ray._private import services

    try:
        resolved = services.canonicalize_bootstrap_address(address)
    except Exception as exc:
        raise ClusterError(f"Ray address {address!r}: {exc}") from exc
    if resolved is None:
        raise ClusterError(
            f"Ray address {address!r}: no running Ray cluster was found on this machine "
            "(no RAY_ADDRESS variable and no cluster started with `ray start`). Start one "
            "with `ray start --head`, or pass address=None to start a local Ray."
        )
    return str(resolved)


def _cluster_info(requested: str | None, started_here: bool, ctx: Any = None) -> ClusterInfo:
    """Describe the connection of this process (``ctx`` is what ray.init returned)."""
    import ray

    client = bool(ray.util.client.ray.is_connected())
    address_info: dict[str, Any] = dict(getattr(ctx, "address_info", None) or {})
    node = getattr(ray._private.worker, "_global_node", None)
    if not address_info and node is not None:
        address_info = dict(getattr(node, "address_info", None) or {})
    dashboard = getattr(ctx, "dashboard_url", None) or address_info.get("webui_url") or None
    if dashboard and not str(dashboard).startswith("http"):
        dashboard = "http://" + str(dashboard)
    address: str | None  # None only for a local Ray that reports no GCS address (not seen)
    if client:
        address, log_dir = str(requested), None
    else:
        address = (
            address_info.get("gcs_address")
            or getattr(ray.get_runtime_context(), "gcs_address", None)
            or requested
        )
        session_dir = address_info.get("session_dir")
        log_dir = os.path.join(session_dir, "logs") if session_dir else None
    try:
        resources = {k: float(v) for k, v in ray.cluster_resources().items()}
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    except Exception:  # pragma: no cover - information only
        resources, nodes = {}, 1
    return ClusterInfo(
        address=str(address),
        started_here=started_here,
        client=client,
        dashboard_url=dashboard,
        resources=resources,
        num_nodes=max(nodes, 1),
        log_dir=log_dir,
    )


def current() -> ClusterInfo | None:
    """The connection made by :func:`connect` in this process, if still alive."""
    import ray

    info = _STATE.get("info")
    if info is not None and ray.is_initialized():
        return info
    return None


def _requested(address: str | None) -> str | None:
    """The address asked for: ``address``, else ``$RAY_ADDRESS``; None for a local Ray."""
    requested = address
    if requested is None and os.environ.get("RAY_ADDRESS"):
        requested = os.environ["RAY_ADDRESS"]
    if requested is not None:
        requested = requested.strip()
        if requested == "local":
            requested = None
    return requested


def _reuse(ray: Any, requested: str | None) -> ClusterInfo | None:
    """The live connection of this process when it serves ``requested``, else None.

    Raises ClusterError when this process is connected (not by climviz) elsewhere.
    """
    if not ray.is_initialized():
        return None
    info = current()
    if info is None:
        # ray.init was called by user code or another library: use that connection.
        info = _cluster_info(requested, False)
        _STATE.update(requested=requested, info=info, owned=False)
    if requested is None or requested in (_STATE["requested"], info.address):
        return info
    if not _STATE["owned"]:
        raise ClusterError(
            f"This Python process is already connected to Ray at {info.address!r} "
            f"(not by climviz) and cannot also join {requested!r}; call "
            "ray.shutdown() first"
        )
    return None


def _probe(requested: str, timeout_s: float) -> tuple[str | None, str | None]:
    """Check that ``requested`` answers; its ``(ray:// client URL, GCS address)``, one None."""
    deadline = time.monotonic() + timeout_s
    if "://" in requested:
        _, host, port = parse_address(requested)
        _probe_tcp(host, port, timeout_s, requested)
        _probe_client(host, port, max(deadline - time.monotonic(), 1.0), requested)
        return f"ray://{host}:{port}", None
    resolved = _resolve_auto(requested) if requested == "auto" else requested
    _, host, port = parse_address(resolved)
    _probe_tcp(host, port, timeout_s, requested)
    _probe_gcs(f"{host}:{port}", max(deadline - time.monotonic(), 1.0), requested)
    return None, f"{host}:{port}"


def _start_local(ray: Any, *, num_cpus: int | None, num_gpus: int | None,
                 object_store_memory: int | None, dashboard: bool, dashboard_port: int | None,
                 log_to_driver: bool, namespace: str | None, logging_level: int) -> ClusterInfo:
    """``ray.init`` of a local Ray, retried twice (a loaded machine can miss Ray's start window)."""
    init_kwargs: dict[str, Any] = dict(
        address="local",
        num_cpus=num_cpus if num_cpus is not None else os.cpu_count(),
        num_gpus=num_gpus,
        object_store_memory=object_store_memory,
        include_dashboard=dashboard,
        log_to_driver=log_to_driver,
        namespace=namespace,
        logging_level=logging_level,
    )
    if dashboard:
        init_kwargs["dashboard_host"] = "127.0.0.1"
        init_kwargs["dashboard_port"] = dashboard_port or free_port()
    ctx = None
    attempts = 3
    for attempt in range(attempts):
        try:
            if dashboard and attempt:
                init_kwargs["dashboard_port"] = free_port()
            ctx = ray.init(**init_kwargs)
            break
        except Exception as exc:
            # A heavily loaded machine can miss Ray's fixed 30 s raylet start window:
            # clean up the half-started session and try again.
            ray.shutdown()
            if attempt == attempts - 1:
                raise ClusterError(
                    f"Could not start a local Ray: {type(exc).__name__}: {exc}"
                ) from exc
    info = _cluster_info(None, True, ctx)
    _STATE.update(requested=None, info=info, owned=True)
    return info


def _join(ray: Any, requested: str, client_url: str | None, gcs: str | None, *,
          log_to_driver: bool, namespace: str | None, timeout_s: float,
          logging_level: int) -> ClusterInfo:
    """Join a probed cluster through Ray Client (``client_url``) or its GCS address."""
    if client_url is not None:
        ctx = _init_client(ray, client_url, requested, log_to_driver=log_to_driver,
                           namespace=namespace, timeout_s=timeout_s,
                           logging_level=logging_level)
    else:
        try:
            ctx = ray.init(address=gcs, log_to_driver=log_to_driver, namespace=namespace,
                           logging_level=logging_level)
        except Exception as exc:
            raise ClusterError(
                f"Cannot join the Ray cluster at {requested!r}: {type(exc).__name__}: {exc}"
            ) from exc
    info = _cluster_info(requested, False, ctx)
    _STATE.update(requested=requested, info=info, owned=True)
    return info


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    dashboard: bool = True,
    dashboard_port: int | None = None,
    log_to_driver: bool = False,
    timeout_s: float = 30.0,
    namespace: str | None = None,
    logging_level: int = logging.WARNING,
    _keep_train_workers: bool = False,
) -> ClusterInfo:
    """Start or join Ray and return where this process is connected.

    Stages: resolve the address (:func:`_requested`), reuse the live connection when
    it serves it (:func:`_reuse`), probe a new address within ``timeout_s``
    (:func:`_probe`), then start a local Ray (:func:`_start_local`) or join
    (:func:`_join`). Unless called by ``train`` itself, an idle training worker group
    kept by :mod:`climviz.training.workers` is released first, so the caller's Ray work
    gets its CPUs/GPUs.

    Parameters
    ----------
    address : str or None
        ``None``: start a local Ray (or join ``$RAY_ADDRESS`` if set);
        ``"auto"``: join the cluster started on this machine;
        ``"host:port"``: join by GCS address; ``"ray://host:port"``: Ray Client.
    num_cpus, num_gpus : int, optional
        Size of a local Ray (default: every CPU and GPU of this machine).
        Ignored when joining a cluster.
    object_store_memory : int, optional
        Object store size of a local Ray in bytes (default: Ray's, 30% of RAM).
    dashboard : bool
        Run the dashboard (and Job API) of a local Ray, bound to 127.0.0.1 only.
    dashboard_port : int, optional
        Port of that dashboard; a free port is chosen when omitted.
    log_to_driver : bool
        Forward worker stdout/stderr to this process. Off by default so worker
        logs do not flood a notebook; they stay in :attr:`ClusterInfo.log_dir`.
    timeout_s : float
        Bound on how long reaching a cluster may take (seconds).
    namespace : str, optional
        Ray namespace for this driver.
    logging_level : int
        Level of Ray's own loggers in this process (``logging.WARNING`` by default:
        no "Started a local Ray instance" lines; ``climviz train`` passes
        ``logging.ERROR``, which also hides the token-authentication notice).

    Returns
    -------
    ClusterInfo

    Raises
    ------
    ClusterError
        If the address is malformed, the cluster cannot be reached within
        ``timeout_s``, this process is already connected to another cluster
        that climviz did not open, or a local Ray fails to start.

    Examples
    --------
    Not run here (it starts Ray):

    >>> info = connect(num_cpus=2, dashboard=False)  # doctest: +SKIP
    >>> connect() is info                            # doctest: +SKIP
    True
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ClusterError(
            "Ray is not installed; install climviz with the 'train' extra "
            "(pip install 'climviz[train]') or call train(..., use_ray=False)"
        ) from exc

    if not _keep_train_workers:
        from climviz.training.workers import release_workers

        release_workers(idle_only=True)
    requested = _requested(address)
    info = _reuse(ray, requested)
    if info is not None:
        return info
    # Probe the new address before dropping a working connection.
    client_url, gcs = _probe(requested, timeout_s) if requested is not None else (None, None)
    if ray.is_initialized():
        shutdown()
    if requested is None:
        return _start_local(ray, num_cpus=num_cpus, num_gpus=num_gpus,
                            object_store_memory=object_store_memory, dashboard=dashboard,
                            dashboard_port=dashboard_port, log_to_driver=log_to_driver,
                            namespace=namespace, logging_level=logging_level)
    return _join(ray, requested, client_url, gcs, log_to_driver=log_to_driver,
                 namespace=namespace, timeout_s=timeout_s, logging_level=logging_level)


def shutdown() -> None:
    """Disconnect from Ray if climviz connected this process (stop it if started here)."""
    import ray

    from climviz.training.workers import release_workers

    release_workers()
    if _STATE["owned"] and ray.is_initialized():
        ray.shutdown()
    _STATE.update(requested=None, info=None, owned=False)
