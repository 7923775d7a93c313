"""A small HTTP proxy on 127.0.0.1 in front of the test S3 endpoint that injects storage faults:
503 SlowDown throttling, dropped connections, or a path that stays down."""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


class FlakyProxy:
    """``mode``: 'ok'; 'throttle' (every other request gets 503 SlowDown); 'drop' (every other
    connection is closed without an answer); 'down:<text>' (requests whose path has <text> get 503);
    'readonly' (credentials that may read but not write: every PUT, POST and DELETE gets 403 AccessDenied)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.mode = "ok"
        self.requests = 0
        self.faults = 0
        self.log: list[tuple[str, str]] = []  # (method, path) of every request
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._fault(self.path, self.command)
                proxy.log.append((self.command, self.path))
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("503", "403"):
                    body = SLOW_DOWN if fault == "503" else ACCESS_DENIED
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items()}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fault(self, path: str, method: str = "GET") -> str | None:
        with self._lock:
            self.requests += 1
            mode, count = self.mode, self.requests
            fault = None
            if mode == "throttle" and count % 2:
                fault = "503"
            elif mode == "drop" and count % 2:
                fault = "drop"
            elif mode.startswith("down:") and mode[5:] in path:
                fault = "503"
            elif mode == "readonly" and method in ("PUT", "POST", "DELETE"):
                fault = "403"
            if fault:
                self.faults += 1
            return fault

    def __enter__(self) -> "FlakyProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
