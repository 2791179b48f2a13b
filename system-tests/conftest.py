"""Fixtures for Herald's browser tests: real nodes, a real redis-server, headless Chromium.

Every resource is a context manager or a fixture with a finalizer, so it is released however
a test ends; every wait has a deadline.
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERALD = os.environ.get("HERALD_BIN", os.path.join(ROOT, ".build", "debug", "herald"))
REPORTS = os.path.join(ROOT, "reports", "browser")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(what, condition, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def http(method, url, body=None, headers=None):
    """(status, parsed JSON or text) of one request."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Node:
    """A `herald serve` process on a fixed port, restartable on that port."""

    def __init__(self, port, arguments, name):
        self.port, self.arguments, self.name = port, arguments, name
        self.log = tempfile.NamedTemporaryFile(prefix=f"herald-{name}-", suffix=".log", delete=False)
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self):
        self.process = subprocess.Popen(
            [HERALD, "serve", "--port", str(self.port), "--node-id", self.name, "--log-level", "warning"] + self.arguments,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("HERALD_")})
        wait_until(f"{self.name} to be ready", lambda: http("GET", self.url + "/ready")[0] == 200)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def kill(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def publish(self, channel, title, **fields):
        status, body = http("POST", f"{self.url}/api/notify/{channel}", {"title": title, **fields})
        assert status == 200, body
        return body


@contextlib.contextmanager
def running_node(*arguments, name="node1"):
    node = Node(free_port(), list(arguments), name)
    node.start()
    try:
        yield node
    finally:
        node.kill()


@contextlib.contextmanager
def running_redis(*arguments, port=None):
    port = port or free_port()
    directory = tempfile.mkdtemp(prefix="herald-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
         *arguments],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def answers():
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")

    try:
        wait_until("redis-server", answers)
        yield f"redis://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have shut it down itself
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_redis_cluster():
    """Six redis-servers formed into a Redis Cluster, three masters and a replica each; yields
    their ports."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(6):
            url = stack.enter_context(running_redis(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                port=cluster_port()))
            ports.append(int(url.rsplit(":", 1)[1]))
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{port}" for port in ports],
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True, timeout=30)
        wait_until("the Redis Cluster to be ok", lambda: all(
            "cluster_state:ok" in redis_cli(port, "CLUSTER", "INFO") for port in ports), timeout=30)
        yield ports


def cluster_port():
    """A free port whose cluster bus port (10000 above it) is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def redis_cli(port, *command):
    return subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=10).stdout


@contextlib.contextmanager
def running_cluster(count, *arguments):
    """`count` nodes over one fresh redis-server."""
    with running_redis() as redis, contextlib.ExitStack() as stack:
        nodes = [stack.enter_context(running_node("--redis-url", redis, "--registry-interval", "0.3", *arguments, name=f"node{index + 1}"))
                 for index in range(count)]
        yield nodes


@pytest.fixture(scope="session")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser):
    """The browser with a clean tab state (storage and earlier pages gone)."""
    browser.get("about:blank")
    yield browser
    with contextlib.suppress(Exception):
        browser.execute_script("window.sessionStorage.clear(); window.localStorage.clear();")
    browser.get("about:blank")


class HookBackend:
    """A real HTTP backend for the hook tests: `POST /<hook>` answered by `answer(hook, body)`,
    every call recorded; stoppable (connections refused) and restartable on its port."""

    def __init__(self, answer):
        import http.server
        import threading
        self.answer, self.calls, self.port, self.server, self._threading = answer, [], free_port(), None, threading
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                hook = self.path.strip("/")
                backend.calls.append((hook, body))
                reply = json.dumps(backend.answer(hook, body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *arguments):
                pass

        self._handler, self._server_class = Handler, http.server.ThreadingHTTPServer

    def url(self, hook):
        return f"http://127.0.0.1:{self.port}/{hook}"

    def start(self):
        self._server_class.allow_reuse_address = True
        self.server = self._server_class(("127.0.0.1", self.port), self._handler)
        self._threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@contextlib.contextmanager
def running_hook_backend(answer):
    backend = HookBackend(answer)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


@contextlib.contextmanager
def running_postgres():
    """A real PostgreSQL (Debian's `postgresql`) on a free port in a temporary directory, as the
    `postgres` user when run as root (PostgreSQL refuses root); yields (url, psql) where
    `psql(sql)` runs SQL and returns its output's rows."""
    import glob
    import shutil
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]))[-1]
    port, directory = free_port(), tempfile.mkdtemp(prefix="herald-pg-")
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(directory, "postgres", "postgres")
    subprocess.run([*as_postgres, f"{binaries}/initdb", "-D", f"{directory}/data", "-U", "herald", "--auth=trust",
                    "--no-sync"], check=True, capture_output=True, timeout=120)
    process = subprocess.Popen(
        [*as_postgres, f"{binaries}/postgres", "-D", f"{directory}/data", "-p", str(port), "-k", directory,
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def psql(sql):
        result = subprocess.run(
            [f"{binaries}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "herald", "-d", "postgres", "-At", "-c", sql],
            capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    try:
        wait_until("postgres", lambda: subprocess.run(
            [f"{binaries}/pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0, timeout=30)
        yield f"postgres://herald@127.0.0.1:{port}/postgres?sslmode=disable", psql
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


class PausableProxy:
    """A TCP proxy on loopback whose server-to-client direction can be paused: while paused it
    stops reading from the node (a small receive buffer), so the node sees a client that does
    not read — a slow consumer behind a real browser."""

    def __init__(self, target_port):
        import threading
        self.target_port, self.port = target_port, free_port()
        self.flowing = threading.Event()
        self.flowing.set()
        self.sockets, self.closed = [], False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            upstream.connect(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source, sink, pausable):
        while not self.closed:
            if pausable:
                self.flowing.wait()
            try:
                data = source.recv(4096)
                if not data:
                    break
                sink.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def pause(self):
        self.flowing.clear()

    def resume(self):
        self.flowing.set()

    def close(self):
        self.closed = True
        self.flowing.set()
        for each in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                each.close()


@contextlib.contextmanager
def running_proxy(target_port):
    proxy = PausableProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
