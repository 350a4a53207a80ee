"""A dev broker, a fresh PostgreSQL database and an engine serving the API and admin ports, for
the Python HTTP tests (abuse_test.py, contract_test.py). Reads ULTRACORE_PG (or .dev/env) like
the C++ tests; everything listens on ephemeral loopback ports.
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

CUSTOMERS = "ultracore.customers.events"
ACCOUNTS = "ultracore.accounts.events"


def _pg_url(repo):
    url = os.environ.get("ULTRACORE_PG")
    if url:
        return url
    env = os.path.join(repo, ".dev", "env")
    if os.path.exists(env):
        for line in open(env):
            m = re.match(r"(?:export )?ULTRACORE_PG=['\"]?([^'\"\n]+)", line)
            if m:
                return m.group(1)
    raise SystemExit("ULTRACORE_PG is not set (tools/dev up; eval \"$(tools/dev env)\")")


def _wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("timed out waiting for " + what)


class EngineStack:
    """Use as a context manager; `api_port`, `admin_port`, `token`, `engine` (the Popen)."""

    def __init__(self, build_dir, repo, token="abuse-test-token", api_extra="", admin_extra=""):
        self.build_dir, self.repo, self.token = os.path.abspath(build_dir), repo, token
        self.api_extra, self.admin_extra = api_extra, admin_extra
        self.dir = tempfile.mkdtemp(prefix="ultracore-http-")
        self.broker = self.engine = None
        self.database = "ultracore_http_" + uuid.uuid4().hex[:12]

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _psql(self, url, sql):
        subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qAt", url, "-c", sql], check=True,
                       stdout=subprocess.DEVNULL)

    def _start(self):
        base = _pg_url(self.repo)
        parts = urllib.parse.urlsplit(base)
        self.admin_db_url = base
        self._psql(base, f'CREATE DATABASE "{self.database}"')
        self.pg_url = urllib.parse.urlunsplit(parts._replace(path="/" + self.database))
        bootstrap_file = os.path.join(self.dir, "bootstrap")
        control_file = os.path.join(self.dir, "control")
        self.broker = subprocess.Popen(
            [os.path.join(self.build_dir, "bin", "ultracore-devbroker"), "--partitions", "3",
             "--topic", CUSTOMERS, "--topic", ACCOUNTS, "--bootstrap-file", bootstrap_file,
             "--control-file", control_file],
            stdout=open(os.path.join(self.dir, "broker.log"), "w"), stderr=subprocess.STDOUT)
        _wait_for("the dev broker", lambda: os.path.exists(bootstrap_file), 30)
        self.bootstrap = open(bootstrap_file).read().strip()
        self.control = open(control_file).read().strip()
        plugins = os.path.join(self.build_dir, "plugins")
        manifest = os.path.join(self.dir, "projections.yaml")
        with open(manifest, "w") as out:
            out.write(f"""kafka:
  bootstrap.servers: {self.bootstrap}
  fetch.wait.max.ms: 10
postgres:
  url: {self.pg_url}
api: {{ listen: 127.0.0.1:0, token: {self.token}{self.api_extra} }}
admin: {{ listen: 127.0.0.1:0, token: {self.token}{self.admin_extra} }}
plugins:
  - {{ name: customers, library: {plugins}/customers/libultracore_customers.so }}
  - {{ name: accounts, library: {plugins}/accounts/libultracore_accounts.so }}
topics:
  {CUSTOMERS}: {{ partitions: 3 }}
  {ACCOUNTS}: {{ partitions: 3 }}
projections:
  - {{ name: customers, plugin: customers, topics: [{CUSTOMERS}], batch: {{ max_events: 500, max_wait_ms: 5 }} }}
  - {{ name: accounts, plugin: accounts, topics: [{ACCOUNTS}], batch: {{ max_events: 500, max_wait_ms: 5 }} }}
""")
        self.log_path = os.path.join(self.dir, "engine.log")
        self.engine = subprocess.Popen(
            [os.path.join(self.build_dir, "bin", "ultracore-engine"), "--config", manifest],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)

        def ports():
            text = open(self.log_path).read()
            api = re.search(r"API listening on [^:]+:(\d+)", text)
            admin = re.search(r"admin listening on [^:]+:(\d+)", text)
            if self.engine.poll() is not None:
                raise RuntimeError("the engine exited:\n" + text)
            return (int(api.group(1)), int(admin.group(1))) if api and admin else None

        self.api_port, self.admin_port = _wait_for("the engine's ports", ports, 60)
        _wait_for("/readyz", lambda: self.get("/readyz")[0] == 200, 60)

    def __exit__(self, *exc):
        if self.engine and self.engine.poll() is None:
            self.engine.send_signal(signal.SIGTERM)
            try:
                self.engine_exit = self.engine.wait(30)
            except subprocess.TimeoutExpired:
                self.engine.kill()
                self.engine_exit = self.engine.wait()
        if self.broker and self.broker.poll() is None:
            self.broker.send_signal(signal.SIGTERM)
            try:
                self.broker.wait(30)
            except subprocess.TimeoutExpired:
                self.broker.kill()
        try:
            self._psql(self.admin_db_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except Exception:
            pass
        return False

    def log(self):
        return open(self.log_path).read() if self.engine else ""

    def request(self, method, path, body=None, port=None, headers=None, timeout=10, data=None):
        """(status, parsed JSON or text) over a fresh connection; `data`: raw body bytes."""
        if body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port or self.api_port}{path}",
                                     data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                status, text = res.status, res.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path, **kw):
        try:
            return self.request("GET", path, **kw)
        except OSError as e:
            return 0, str(e)

    def end_offsets(self):
        """{(topic, partition): high watermark} of both topics, from the dev broker."""
        with urllib.request.urlopen(self.control + "/topics", timeout=10) as res:
            topics = json.load(res)["topics"]
        return {(t["name"], w["partition"]): w["high"] for t in topics for w in t["watermarks"]
                if t["name"] in (CUSTOMERS, ACCOUNTS)}
