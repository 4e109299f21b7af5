#!/usr/bin/env python3
"""The published-port benchmark: a web service on `127.0.0.1:PORT` with a healthcheck, a client
asking every 20 ms, and a change of one environment variable, deployed by docker-compose, by
hawser stop-first and by hawser start-first through its own port switch, on the Docker engine
and on the native target, in one run on this machine. Counts the failed requests and the
longest gap between two answered ones, and times the change. Writes its section of
BENCHMARKS.md (between the ports markers; bench/run.py keeps it). Not a test: it asserts
nothing. Traffic goes to loopback only, and every client stops by itself.

Usage: bench/ports.py [--runs 3] [--hawser target/release/hawser] [--out BENCHMARKS.md]
"""
import argparse, proc, os, section, shutil, socket, statistics, subprocess, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "127.0.0.1:5000/busybox:latest"
HOST = os.environ.get("DOCKER_HOST", "unix:///run/hawser-engine/docker.sock")
ENV = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
ENV["DOCKER_HOST"] = HOST
BEGIN, END = "<!-- ports benchmark -->", "<!-- /ports benchmark -->"
PORT = 19790
SERVE = "mkdir -p /www && echo $VERSION > /www/index.html && exec httpd -f -p 8080 -h /www"
CHECK = "wget -q -O /dev/null http://127.0.0.1:8080/"

sh, timed = proc.runners(ENV)


def get(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=1)
    s.settimeout(2)
    s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    buf = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    s.close()
    body = buf.replace(b"\r\n", b"\n").split(b"\n\n", 1)
    if len(body) < 2 or not body[1].strip():
        raise OSError("no body")
    return body[1].strip().decode()


class Client:
    """Asks every 20 ms, for at most two minutes, until stopped."""

    def __init__(self, port):
        self.port, self.stop_flag = port, threading.Event()
        self.made = self.failed = 0
        self.longest = 0.0
        self.answers = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        end = time.monotonic() + 120
        last_ok = time.monotonic()
        while not self.stop_flag.is_set() and time.monotonic() < end:
            began = time.monotonic()
            self.made += 1
            try:
                a = get(self.port)
                now = time.monotonic()
                self.longest = max(self.longest, now - last_ok)
                last_ok = now
                if not self.answers or self.answers[-1] != a:
                    self.answers.append(a)
            except OSError:
                self.failed += 1
            time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        return self


def manifest(p, version, strategy, replicas=None):
    update = f"  update: {{strategy: {strategy}}}\n" if strategy else ""
    update += f"  replicas: {replicas}\n" if replicas else ""
    return (f"kind: Container\nmetadata: {{name: {p}-web}}\nspec:\n  image: \"{IMAGE}\"\n"
            f"  command: \"{SERVE}\"\n  env: {{VERSION: \"{version}\"}}\n"
            f"  ports: [\"127.0.0.1:{PORT}:8080\"]\n  stopTimeout: 1s\n"
            f"  healthcheck: {{test: \"{CHECK}\", interval: 300ms, timeout: 1s, retries: 2}}\n{update}")


def compose_file(p, version):
    # `$$`: the variable is the container's, not one compose fills in.
    serve = SERVE.replace("$", "$$")
    return (f"version: '2.4'\nservices:\n  web:\n    image: {IMAGE}\n    container_name: {p}-web\n"
            f"    command: [\"sh\", \"-c\", \"{serve}\"]\n    environment: {{VERSION: \"{version}\"}}\n"
            f"    ports: [\"127.0.0.1:{PORT}:8080\"]\n    stop_grace_period: 1s\n"
            f"    healthcheck: {{test: [\"CMD-SHELL\", \"{CHECK}\"], interval: 300ms, timeout: 1s, retries: 2}}\n")


def wait_for(version):
    until = time.monotonic() + 20
    while time.monotonic() < until:
        try:
            if get(PORT) == version:
                return
        except OSError:
            pass
        time.sleep(0.1)


def one_change(deploy, clean):
    """v1 deployed, then the change to v2 with the client asking: (failed, longest gap, seconds)."""
    deploy("v1")
    wait_for("v1")
    c = Client(PORT)
    time.sleep(1)
    took = deploy("v2")
    wait_for("v2")
    time.sleep(1)
    c.stop()
    clean()
    return c.failed, c.made, c.longest, took


def hawser_case(hawser, target, strategy, runs, replicas=None):
    out = []
    for r in range(runs):
        p = f"bp-{target[0]}{'s' if strategy else 'f'}{'r' if replicas else ''}{r}"
        work = tempfile.mkdtemp(prefix="hawser-bench-ports-")
        state = os.path.join(work, "state")
        src = os.path.join(work, "src")
        os.makedirs(src)
        env = dict(ENV, HAWSER_STATE_DIR=state)
        run = lambda args: subprocess.run(args, env=env, cwd=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, timeout=300)
        open(os.path.join(src, "hawser.toml"), "w").write(f"project = \"{p}\"\ntarget = \"{target}\"\n")

        def deploy(version):
            open(os.path.join(src, "web.yaml"), "w").write(manifest(p, version, strategy, replicas))
            t = time.perf_counter()
            r = run([hawser, "apply", "-y", src])
            return time.perf_counter() - t if r.returncode == 0 else None

        def clean():
            os.remove(os.path.join(src, "web.yaml"))
            run([hawser, "apply", "-y", "--prune", "--allow-empty", src])
            shutil.rmtree(work, ignore_errors=True)

        out.append(one_change(deploy, clean))
    return out


def compose_case(runs):
    out = []
    for r in range(runs):
        p = f"bp-c{r}"
        work = tempfile.mkdtemp(prefix="hawser-bench-ports-")

        def deploy(version):
            open(os.path.join(work, "docker-compose.yml"), "w").write(compose_file(p, version))
            return timed(["docker-compose", "-p", p, "up", "-d"], cwd=work)

        def clean():
            sh(["docker-compose", "-p", p, "down", "-t", "1"], cwd=work, check=False)
            shutil.rmtree(work, ignore_errors=True)

        out.append(one_change(deploy, clean))
    return out


def row(name, results):
    failed = statistics.median(r[0] for r in results)
    made = statistics.median(r[1] for r in results)
    gap = statistics.median(r[2] for r in results) * 1000
    took = [r[3] for r in results if r[3] is not None]
    took = f"{statistics.median(took):.2f}" if took else "n/a"
    return f"| {name} | {failed:.0f} of {made:.0f} | {gap:.0f} ms | {took} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    hawser = os.path.abspath(args.hawser)
    cases = [
        ("docker-compose 1.29 (`up -d`)", lambda: compose_case(args.runs)),
        ("hawser, Docker engine, stop-first", lambda: hawser_case(hawser, "docker", "stop-first", args.runs)),
        ("hawser, Docker engine, start-first through the switch", lambda: hawser_case(hawser, "docker", None, args.runs)),
        ("hawser, native target, stop-first", lambda: hawser_case(hawser, "native", "stop-first", args.runs)),
        ("hawser, native target, start-first through the switch", lambda: hawser_case(hawser, "native", None, args.runs)),
        ("hawser, Docker engine, `replicas: 3` rolled one at a time", lambda: hawser_case(hawser, "docker", None, args.runs, 3)),
        ("hawser, native target, `replicas: 3` rolled one at a time", lambda: hawser_case(hawser, "native", None, args.runs, 3)),
    ]
    rows = []
    for name, case in cases:
        print(name, flush=True)
        rows.append(row(name, case()))
    profile = "release" if "release" in hawser else "dev (test) profile"
    lines = [
        BEGIN,
        f"## Published ports: a change under load ({args.runs} runs, median)",
        "",
        "`scripts/bench-ports` (bench/ports.py): a web service on `127.0.0.1:PORT` with a healthcheck",
        "(300 ms interval), one client asking every 20 ms, and a change of one environment variable.",
        "Failed requests of those made during the change (from 1 s before the apply to 1 s after the",
        "new version answers), the longest gap between two answered requests, and the change's time",
        f"(the apply, or `up -d`), in seconds. hawser's {profile} binary. The replicas rows run three",
        "containers behind the one port (compose cannot: a scaled service cannot share a fixed host",
        "port) and replace them one after the other, each through the switch and drained.",
        "",
        "| how | failed requests | longest gap | change (s) |",
        "|---|---|---|---|",
        *rows,
        "",
        END,
    ]
    section.write(args.out, BEGIN, END, lines)


if __name__ == "__main__":
    main()
