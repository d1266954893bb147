"""A local stand-in for the Kubernetes API server (and an OpenAI-style endpoint) for the tests.

It serves list / get / watch for whatever objects a test puts in, filtered by label and field
selectors the way the API server filters them, plus /version, pod logs and the pod proxy. It can
say no: ``deny`` answers 403 or 404 for a path prefix, ``hang`` delays a path past the client's
timeout. ``requests`` records every request, so tests can count API calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def _split_terms(selector: str) -> list[str]:
    terms, depth, buf = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(buf.strip())
            buf = ""
        else:
            buf += ch
    if buf.strip():
        terms.append(buf.strip())
    return terms


def label_match(labels: dict, selector: str | None) -> bool:
    for term in _split_terms(selector or ""):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            values = {v.strip() for v in m.group(3).split(",")}
            inside = labels.get(m.group(1)) in values
            if inside != (m.group(2) == "in"):
                return False
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", term)
        if m:
            equal = labels.get(m.group(1)) == m.group(3)
            if equal != (m.group(2) != "!="):
                return False
            continue
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_match(obj: dict, selector: str | None) -> bool:
    for term in _split_terms(selector or ""):
        negate = "!=" in term  # key!=value, as the real API server accepts
        key, _, value = term.partition("!=" if negate else "=")
        node = obj
        for part in key.split("."):
            node = (node or {}).get(part) if isinstance(node, dict) else None
        if (str(node) == value) == negate:
            return False
    return True


class _QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, no access log, and one way to answer with a body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Served:
    """A fake served on 127.0.0.1 (an ephemeral port) from a background thread."""

    def _serve(self, handler) -> None:
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hangs up is not an error here
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeKube(_Served):
    def __init__(self):
        self.collections: dict[str, dict[str, dict]] = {}  # collection path -> name -> object
        self.version = {"major": "1", "minor": "33", "gitVersion": "v1.33.2"}
        self.logs: dict[tuple[str, str, str], str] = {}  # (ns, pod, container) -> text
        self.metrics: dict[tuple[str, str, int], str] = {}  # (ns, pod, port) -> /metrics text
        self.deny: dict[str, int] = {}  # path prefix -> HTTP status
        self.hang: dict[str, float] = {}  # path prefix -> seconds before answering
        self.requests: list[tuple[str, str]] = []  # (path, query)
        self.tokens: list[tuple[str, str, str, dict]] = []  # TokenRequests: (ns, serviceaccount, token, body)
        self.changes: list[tuple[str, str, dict]] = []  # (collection, type, object), for watches
        # admission of a Pod create (dry-run included): each callable returns the refusal message, or
        # None to admit; the real plugins' words are the e2e suite's business, these only carry them
        self.admission: list = []
        self.may_create_pods = True  # SelfSubjectAccessReview answer
        self.busy: dict[str, int] = {}  # path prefix -> how many more GETs answer 429 (a CRD's storage initializing)
        self.cond = threading.Condition()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.stopped = False

    def start(self) -> "FakeKube":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopped = True  # open watches end
            self.cond.notify_all()
        super().stop()

    # -- the store --------------------------------------------------------------------------

    def put(self, collection: str, obj: dict) -> None:
        name = obj["metadata"]["name"]
        with self.cond:
            kind = "MODIFIED" if name in self.collections.get(collection, {}) else "ADDED"
            self.collections.setdefault(collection, {})[name] = obj
            self.changes.append((collection, kind, obj))
            self.cond.notify_all()

    def remove(self, collection: str, name: str) -> None:
        with self.cond:
            obj = self.collections.get(collection, {}).pop(name, None)
            if obj is not None:
                self.changes.append((collection, "DELETED", obj))
                self.cond.notify_all()

    def get(self, collection: str, name: str) -> dict | None:
        return self.collections.get(collection, {}).get(name)

    def api_calls(self, watch: bool = False) -> list[tuple[str, str]]:
        return [r for r in self.requests if ("watch=true" in r[1]) == watch]

    # -- HTTP -------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(_QuietHandler):
            def _status(self, code: int, message: str) -> None:
                reason = {403: "Forbidden", 404: "NotFound", 500: "InternalError"}.get(code, "Error")
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                path, query = url.path, parse_qs(url.query)
                fake.requests.append((path, url.query))
                for prefix, seconds in fake.hang.items():
                    if path.startswith(prefix):
                        time.sleep(seconds)
                for prefix, left in list(fake.busy.items()):
                    if path.startswith(prefix) and left > 0:
                        fake.busy[prefix] = left - 1
                        self.send_response(429)
                        self.send_header("Retry-After", "0")
                        self.send_header("Content-Type", "application/json")
                        body = json.dumps({"kind": "Status", "code": 429, "message": "storage is (re)initializing"}).encode()
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                for prefix, code in fake.deny.items():
                    if path.startswith(prefix):
                        return self._status(code, f'{path.rsplit("/", 1)[-1]} is forbidden: User "tester" cannot get resource' if code == 403 else "not found")
                if path == "/version":
                    return self._send(200, fake.version)
                m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", path)
                if m:
                    text = fake.logs.get((m.group(1), m.group(2), query.get("container", [""])[0]))
                    return self._send(200, text, "text/plain") if text is not None else self._status(404, "no logs")
                m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods/([^/:]+):(\d+)/proxy/metrics", path)
                if m:
                    text = fake.metrics.get((m.group(1), m.group(2), int(m.group(3))))
                    return self._send(200, text, "text/plain") if text is not None else self._status(404, "no metrics")
                labels = query.get("labelSelector", [None])[0]
                fields = query.get("fieldSelector", [None])[0]
                if path in fake.collections or _is_collection(path):
                    if query.get("watch", ["false"])[0] == "true":
                        return self._watch(path, labels, fields, float(query.get("timeoutSeconds", ["30"])[0]))
                    with fake.cond:
                        # a list across namespaces (/api/v1/pods) holds every namespace's items, as the real server's does
                        prefix, _, plural = path.rpartition("/")
                        sources = [c for c in fake.collections if c == path or re.fullmatch(re.escape(prefix) + r"/namespaces/[^/]+/" + re.escape(plural), c)]
                        items = [o for c in sources for o in fake.collections[c].values()
                                 if label_match((o["metadata"].get("labels") or {}), labels) and field_match(o, fields)]
                    return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(len(fake.changes))}, "items": items})
                collection, _, name = path.rpartition("/")
                obj = fake.get(collection, name)
                if obj is None:
                    return self._status(404, f'"{name}" not found')
                return self._send(200, obj)

            def do_POST(self):  # noqa: N802 - TokenRequest, access reviews and dry-run Pods: llmdctl stores nothing through the API
                url = urlparse(self.path)
                path = url.path
                fake.requests.append((path, url.query))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
                    return self._send(201, {**body, "status": {"allowed": fake.may_create_pods}})
                m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/pods", path)
                if m:
                    if parse_qs(url.query).get("dryRun") != ["All"]:
                        return self._status(405, "this fake only serves dry-run pod creates")
                    if not fake.may_create_pods:
                        return self._status(403, f'pods is forbidden: User "tester" cannot create resource "pods" in the namespace "{m.group(1)}"')
                    for judge in fake.admission:
                        refusal = judge(body)
                        if refusal:
                            return self._status(403, refusal)
                    return self._send(201, {**body, "metadata": {**body.get("metadata", {}), "name": body["metadata"].get("generateName", "p") + "x1"}})
                for prefix, code in fake.deny.items():
                    if path.startswith(prefix):
                        return self._status(code, f'serviceaccounts "{path.split("/")[-2]}" is forbidden: User "tester" cannot create resource "serviceaccounts/token"')
                m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token", path)
                if not m:
                    return self._status(405, f"POST {path} is not served here")
                if fake.get(f"/api/v1/namespaces/{m.group(1)}/serviceaccounts", m.group(2)) is None:
                    return self._status(404, f'serviceaccounts "{m.group(2)}" not found')
                token = f"sa-{m.group(2)}-{len(fake.tokens)}-{time.monotonic_ns()}"
                fake.tokens.append((m.group(1), m.group(2), token, body))
                return self._send(201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": body.get("spec") or {},
                                        "status": {"token": token, "expirationTimestamp": "2026-12-02T00:10:00Z"}})

            def _watch(self, path, labels, fields, timeout):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def emit(kind, obj):
                    if label_match((obj["metadata"].get("labels") or {}), labels) and field_match(obj, fields):
                        line = (json.dumps({"type": kind, "object": obj}) + "\n").encode()
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()

                deadline = time.monotonic() + timeout
                try:
                    with fake.cond:
                        seen = len(fake.changes)
                        current = list(fake.collections.get(path, {}).values())
                    for obj in current:
                        emit("ADDED", obj)
                    while time.monotonic() < deadline:
                        with fake.cond:
                            if len(fake.changes) == seen and not fake.stopped:
                                fake.cond.wait(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                            if fake.stopped:
                                break
                            new = fake.changes[seen:]
                            seen = len(fake.changes)
                        for collection, kind, obj in new:
                            if collection == path:
                                emit(kind, obj)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _is_collection(path: str) -> bool:
    """/api/v1/namespaces/ns/pods or /apis/g/v/namespaces/ns/plural (or cluster-scoped) with no name."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return False
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    return len(rest) == 1


class FakeOpenAI(_Served):
    """/v1/models and a streamed /v1/completions; ``on_completion`` lets a test play the P/D path."""

    def __init__(self, model: str, on_completion=None, delay: float = 0.01):
        self.model, self.on_completion, self.delay = model, on_completion, delay
        self.prompts: list[str] = []
        fake = self

        class Handler(_QuietHandler):
            def do_GET(self):  # noqa: N802
                self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})

            def do_POST(self):  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.prompts.append(req["prompt"])
                if fake.on_completion:
                    fake.on_completion(req)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(req.get("max_tokens", 4)):
                    time.sleep(fake.delay)
                    chunk = {"choices": [{"text": f" tok{i}", "index": 0}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        self._serve(Handler)


class FakeMetricsEndpoint(_Served):
    """An EPP's /metrics behind its authentication filter: 401 without a bearer token, 403 for a
    token ``accept`` does not take (the real one asks the API server: TokenReview, then
    SubjectAccessReview for GET /metrics). ``text`` is what it serves."""

    def __init__(self, accept):
        self.accept, self.text, self.auth = accept, "", []
        fake = self

        class Handler(_QuietHandler):
            def do_GET(self):  # noqa: N802
                header = self.headers.get("Authorization") or ""
                fake.auth.append(header)
                token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
                if not token:
                    status, body = 401, "Unauthorized"
                elif not fake.accept(token):
                    status, body = 403, "Forbidden"
                elif self.path != "/metrics":
                    status, body = 404, "not found"
                else:
                    status, body = 200, fake.text
                self._send(status, body, "text/plain")

        self._serve(Handler)
