"""The boundary to the Kubernetes API, through the official ``kubernetes`` client.

Imported only by verify and doctor (the client takes a while to import). Everything comes back as
plain dicts (the API's JSON), so the checks in ``health.py`` read the same shapes as the API docs
and the test fixtures. Errors become ``KubeError`` with the HTTP status and the server's message.
"""

from __future__ import annotations

import json
import os
import threading
import time
from urllib.parse import urlencode

import urllib3
from dataclasses import dataclass

from .. import __version__
from ..base.errors import LlmdctlError


class KubeError(LlmdctlError):
    """An API call failed: ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: core (group '') or a named group."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return base + (f"/{name}" if name else "")


PODS = Resource("", "v1", "pods")
SERVICES = Resource("", "v1", "services")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
NODES = Resource("", "v1", "nodes", namespaced=False)
DEPLOYMENTS = Resource("apps", "v1", "deployments")
DAEMONSETS = Resource("apps", "v1", "daemonsets")
LEADERWORKERSETS = Resource("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")
GATEWAYS = Resource("gateway.networking.k8s.io", "v1", "gateways")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes")
GATEWAYCLASSES = Resource("gateway.networking.k8s.io", "v1", "gatewayclasses", namespaced=False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", namespaced=False)


def inference_pools(api_version: str) -> Resource:
    group, version = api_version.split("/")
    return Resource(group, version, "inferencepools")


class Kube:
    """A small client that changes nothing: get, list (by selector), watch, pod logs, pod proxy,
    version, short-lived ServiceAccount tokens (a TokenRequest stores no object), access reviews
    and the server-side dry-run of a Pod (admission runs, nothing is stored)."""

    def __init__(self, context: str | None = None, kubeconfig: str | None = None, timeout: float = 10.0):
        try:
            # heavy: imported here, not at llmdctl start-up
            from kubernetes import client, config
        except ImportError:  # pragma: no cover - a packaging problem
            raise LlmdctlError("the kubernetes Python package is missing", hint="pip install kubernetes") from None
        self._client = client
        self.timeout = timeout
        cfg = client.Configuration()
        # The client reads $KUBECONFIG once, at import; read it now so the file in force is used.
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False)
        except config.ConfigException as exc:
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException:
                raise LlmdctlError(f"cannot load a kubeconfig: {exc}", hint="pass --kubeconfig FILE / --kube-context NAME, or run inside a cluster") from None
        except (TypeError, ValueError, AttributeError, KeyError, OSError) as exc:
            # the client trips over wrongly typed entries (user: 5, server: 5) or bad certificate data
            raise LlmdctlError(f"kubeconfig {kubeconfig} (context {context or 'current'}) is malformed: {type(exc).__name__}: {exc}",
                               hint="check it with: kubectl config view --minify") from None
        cfg.retries = 0
        self.host = cfg.host
        self.api = client.ApiClient(cfg)
        self._lock = threading.Lock()
        self.calls = 0  # API requests made (benchmarks and tests read this)

    # -- plumbing -----------------------------------------------------------------------------

    def _request(self, path: str, query: dict | None = None, *, raw: bool = False, stream: bool = False, timeout: float | None = None,
                 body: dict | None = None):
        with self._lock:
            self.calls += 1
        url = self.host.rstrip("/") + path
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        if params:
            url += "?" + urlencode(params)
        # the user agent names llmdctl in API server audit logs and metrics, as kubectl and helm name themselves
        headers = {"Accept": "application/json" if not raw else "*/*", "User-Agent": f"llmdctl/{__version__}"}
        method = "POST" if body is not None else "GET"
        if body is not None:
            headers["Content-Type"] = "application/json"
        auth = self.api.configuration.auth_settings()
        for setting in auth.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        # The client's own connection pool: TLS, client certificates and proxy as in the kubeconfig.
        pool = self.api.rest_client.pool_manager
        for attempt in range(4):
            try:
                resp = pool.request(
                    method, url, headers=headers, preload_content=not stream, retries=False,
                    body=json.dumps(body).encode() if body is not None else None,
                    timeout=urllib3.Timeout(connect=timeout or self.timeout, read=None if stream else (timeout or self.timeout)),
                )
            except urllib3.exceptions.HTTPError as exc:  # connection refused, TLS, timeouts
                raise KubeError(f"{method} {path}: {type(exc).__name__}: {_short(exc)}", 0,
                                hint=f"is the API server at {self.host} reachable with this context?") from None
            # 429: the server asks to come back (priority and fairness, or a new CRD's storage still
            # initializing); kubectl and client-go retry it, so a read does not fail on it
            if resp.status != 429 or attempt == 3:
                break
            try:
                wait = float(resp.headers.get("Retry-After") or 1)
            except ValueError:
                wait = 1.0
            resp.release_conn()
            time.sleep(min(max(wait, 0.2), 2.0))
        if not 200 <= resp.status <= 299:
            body = resp.data if not stream else resp.read()
            raise KubeError(_message(resp.status, body, path, method), resp.status)
        if stream:
            return resp
        data = resp.data.decode("utf-8", "replace")
        return data if raw else json.loads(data or "{}")

    # -- reads --------------------------------------------------------------------------------

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict | None:
        """The object, or None when it does not exist (404)."""
        try:
            return self._request(res.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, res: Resource, namespace: str | None = None, *, labels: str | None = None, fields: str | None = None) -> list[dict]:
        doc = self._request(res.path(namespace), {"labelSelector": labels, "fieldSelector": fields})
        return list(doc.get("items") or [])

    def version(self) -> dict:
        return self._request("/version")

    def discovery(self, group_version: str) -> dict:
        """The API server's discovery document of one group/version (what a metrics adapter serves)."""
        return self._request(f"/apis/{group_version}")

    def pod_log(self, namespace: str, pod: str, container: str, *, tail: int = 20, previous: bool = False) -> str:
        query = {"container": container, "tailLines": str(tail), "previous": "true" if previous else None}
        return self._request(PODS.path(namespace, pod) + "/log", query, raw=True)

    def pod_proxy(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET through the API server's pod proxy (metrics without a port-forward)."""
        return self._request(PODS.path(namespace, f"{pod}:{port}") + "/proxy/" + path.lstrip("/"), raw=True)

    def service_account_token(self, namespace: str, service_account: str, seconds: int = 600) -> str:
        """A short-lived token for a ServiceAccount (TokenRequest: nothing is stored in the cluster),
        to authenticate where the account may read, such as an EPP's /metrics."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}}
        doc = self._request(Resource("", "v1", "serviceaccounts").path(namespace, service_account) + "/token", body=body)
        token = (doc.get("status") or {}).get("token")
        if not token:
            raise KubeError(f"TokenRequest for serviceaccount/{service_account} returned no token")
        return token

    def review_access(self, body: dict) -> dict:
        """A SelfSubjectAccessReview (what may this user do?); the server stores nothing."""
        return self._request("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)

    def dry_run_create_pod(self, namespace: str, pod: dict) -> dict:
        """Create a Pod with ``dryRun=All``: defaulting and every admission plugin and webhook run,
        nothing persists. A refusal raises KubeError with the server's message."""
        return self._request(PODS.path(namespace), {"dryRun": "All"}, body=pod)

    def watch(self, res: Resource, namespace: str | None, *, labels: str | None = None, fields: str | None = None,
              timeout_seconds: int = 60, stop: threading.Event | None = None):
        """Yield (type, object) events until the server closes the watch or ``stop`` is set."""
        query = {"watch": "true", "labelSelector": labels, "fieldSelector": fields, "timeoutSeconds": str(timeout_seconds)}
        resp = self._request(res.path(namespace), query, stream=True)
        try:
            buf = b""
            for chunk in resp.stream(4096, decode_content=True):
                if stop is not None and stop.is_set():
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event.get("type"), event.get("object") or {}
        finally:
            resp.release_conn()


def kube_for(box) -> Kube:
    """The API client pinned to the same context and kubeconfig as the toolbox's tools."""
    return Kube(context=box.context, kubeconfig=box.kubeconfig)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def _message(status: int, body, path: str, method: str = "GET") -> str:
    try:
        doc = json.loads(body) if body else {}
        reason = doc.get("message") or doc.get("reason") or ""
    except (ValueError, TypeError, AttributeError):
        reason = ""
    text = f"{method} {path}: HTTP {status}"
    return text + (f": {reason}" if reason else "")
