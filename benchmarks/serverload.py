"""Server workloads for the harness (issues 15, 16): a web server started under a runner on a free loopback port,
loaded by ApacheBench (`ab -c 8`, a bounded number of requests, natively), then stopped. The timed part is
ab's run; what the report shows besides is the requests per second ab measured.

Each server runs from a temporary prefix of its own (configuration, a 4 KiB page, logs), listens on
127.0.0.1 only and is stopped by its graceful signal (nginx SIGQUIT, lighttpd SIGINT), then killed with its
process group if it lingers. nginx runs ``nginx_workers()`` workers. busybox httpd forks a child for each
connection (issue 15's process lifecycle).
"""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

AB = "/usr/bin/ab"
CONCURRENCY = 8
PAGE = "".join(f"line {i:04d} of the page the benchmark fetches\n" for i in range(90))[:4096]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
error_log {prefix}/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {prefix}/html; }}
    }}
}}
"""
LIGHTTPD_CONF = """\
server.document-root = "{prefix}/html"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{prefix}/error.log"
server.max-worker = 0
"""
SERVERS = {
    "nginx": ("/usr/sbin/nginx", NGINX_CONF, lambda prefix: ["/usr/sbin/nginx", "-p", prefix, "-c",
                                                             f"{prefix}/server.conf"], signal.SIGQUIT),
    "lighttpd": ("/usr/sbin/lighttpd", LIGHTTPD_CONF, lambda prefix: ["/usr/sbin/lighttpd", "-D", "-f",
                                                                      f"{prefix}/server.conf"], signal.SIGINT),
    "busybox-httpd": ("/bin/busybox", "", lambda prefix: ["/bin/busybox", "httpd", "-f", "-p",
                                                          f"127.0.0.1:{_port_of(prefix)}", "-h", f"{prefix}/html"],
                      signal.SIGTERM),
}


def nginx_workers() -> int:
    """nginx's worker processes: one per host core that ab leaves (ab is one busy process). On 2 cores that is 1,
    which natively serves as much as 2 (~22500 requests/s either way, 2026-12-05); under hermipy's exitless mode a
    second worker's server and vCPU would fight ab for the cores."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


def _port_of(prefix: str) -> str:
    """The port load() chose for the server in ``prefix`` (busybox httpd takes it on its command line)."""
    with open(f"{prefix}/port") as f:
        return f.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(port: int, server: subprocess.Popen) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(server: subprocess.Popen, graceful: signal.Signals) -> None:
    if server.poll() is None:
        os.kill(server.pid, graceful)
        try:
            server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)          # the workers too, whatever happened
    except ProcessLookupError:
        pass
    server.wait()


def load(name: str, prefix_cmd: list[str], workdir: Path, requests: int, timeout: float) -> dict:
    """Start server ``name`` under ``prefix_cmd`` (empty: natively), run ab against it, stop it. Returns
    {"wall": seconds of ab's run, "rps": its requests per second} or {"failed": why}."""
    _binary, conf, argv, graceful = SERVERS[name]
    prefix = workdir / f"{name}-server"
    (prefix / "html").mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    (prefix / "html" / "index.html").write_text(PAGE)
    for path in (workdir, prefix, prefix / "html"):     # nginx's workers run as nobody: the page must be theirs to
        os.chmod(path, 0o755)                           # read (a 0700 temp dir made every answer a 403 until 12-05)
    os.chmod(prefix / "html" / "index.html", 0o644)
    port = free_port()
    (prefix / "server.conf").write_text(conf.format(prefix=prefix, port=port, workers=nginx_workers()))
    (prefix / "port").write_text(str(port))
    with open(prefix / "stderr", "wb") as err:
        server = subprocess.Popen(prefix_cmd + argv(str(prefix)), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                  start_new_session=True)
    try:
        if not _ready(port, server):
            tail = (prefix / "stderr").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"failed": f"server not listening: {tail[0][:120]}"}
        started = time.monotonic()
        try:
            ab = subprocess.run([AB, "-q", "-n", str(requests), "-c", str(CONCURRENCY),
                                 f"http://127.0.0.1:{port}/index.html"], capture_output=True, text=True,
                                timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"failed": f"timeout (> {timeout:g} s)"}
        wall = time.monotonic() - started
    finally:
        _stop(server, graceful)
    complete = re.search(r"Complete requests:\s+(\d+)", ab.stdout)
    failed = re.search(r"Failed requests:\s+(\d+)", ab.stdout)
    rps = re.search(r"Requests per second:\s+([\d.]+)", ab.stdout)
    if ab.returncode or not (complete and failed and rps) or int(complete.group(1)) != requests or \
            int(failed.group(1)):
        return {"failed": f"ab: {(ab.stderr or ab.stdout).strip().splitlines()[-1:] or ab.returncode}"}
    errors = re.search(r"Non-2xx responses:\s+(\d+)", ab.stdout)
    length = re.search(r"Document Length:\s+(\d+) bytes", ab.stdout)
    if errors or not length or int(length.group(1)) != len(PAGE):
        return {"failed": f"ab: {errors.group(1) if errors else 'no'} error answers, a page of "
                          f"{length.group(1) if length else '?'} bytes (not the {len(PAGE)}-byte page)"}
    return {"wall": wall, "rps": float(rps.group(1))}
