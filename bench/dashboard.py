#!/usr/bin/env python3
"""The dashboard's benchmark: render time of its largest pages (examples/dashboard_bench: a
project of 200 resources, a history of 1,000 reconciles; target under 50 ms), the same pages
served over HTTP by `hawser serve` with 1,000 history rows in its database, and the service's
resident memory when idle with the dashboard in (target under 20 MB). Writes its section of
BENCHMARKS.md (between the dashboard markers; bench/run.py keeps it).

Usage: bench/dashboard.py [--hawser target/release/hawser] [--out BENCHMARKS.md]
"""
import argparse, section, os, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- dashboard benchmark -->", "<!-- /dashboard benchmark -->"
PORT = 19590


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def get(path):
    t = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as r:
        r.read()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hawser", default="target/release/hawser")
    ap.add_argument("--out", default="BENCHMARKS.md")
    a = ap.parse_args()
    renders = subprocess.run([os.path.join(ROOT, "target/release/examples/dashboard_bench")],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()

    src, state = tempfile.mkdtemp(), tempfile.mkdtemp()
    subprocess.run(["git", "init", "-q", "-b", "main", src], check=True)
    open(os.path.join(src, "hawser.toml"), "w").write('project = "bench-dash"\n')
    subprocess.run(["git", "-C", src, "-c", "user.name=b", "-c", "user.email=b@localhost", "commit", "-q",
                    "--allow-empty", "-m", "empty"], check=True)
    # As on a host where nobody chose a CA bundle (see bench/run.py): with one, libgit2 sets
    # up OpenSSL at start.
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env["HAWSER_STATE_DIR"] = state
    serve = subprocess.Popen([a.hawser, "serve", src, "--listen", f"127.0.0.1:{PORT}", "--interval", "10m"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                get("/healthz")
                break
            except OSError:
                time.sleep(0.1)
        # 1,000 reconciles in its history, as a long-running service has.
        db = sqlite3.connect(os.path.join(state, "history.sqlite3"))
        name = os.path.basename(src)
        db.executemany("INSERT INTO reconciles (started_unix, source, project, revision, trigger, actions, outcome, "
                       "duration_ms, error) VALUES (?,?,?,?,?,?,?,?,?)",
                       [(time.time() - 60 * (1000 - i), name, "bench-dash", f"{i:040x}", "push", i % 5,
                         "failed" if i % 17 == 0 else "changed", 100 + i % 900,
                         "Container web: unhealthy" if i % 17 == 0 else None) for i in range(1000)])
        db.commit()
        db.close()
        time.sleep(3)
        idle = rss_kb(serve.pid)
        pages = {}
        for path in ("/", "/history", f"/sources/{name}"):
            pages[path] = statistics.median(get(path) for _ in range(20))
        after = rss_kb(serve.pid)
    finally:
        serve.terminate()
        serve.wait()
    out = [BEGIN, "## Dashboard", "",
           "Made by `bench/dashboard.py`: render time of the largest pages in process "
           "(`examples/dashboard_bench`), the pages served over HTTP by `hawser serve` with 1,000 reconciles "
           "in its history (median of 20, one source), and the service's resident memory.", ""]
    out += [f"- {line}" for line in renders]
    for path, t in pages.items():
        out.append(f"- served `{path}` with 1,000 history rows: {t * 1000:.1f} ms")
    out.append(f"- idle `hawser serve` RSS with the dashboard in: {idle / 1024:.1f} MB (target: under 20 MB: "
               f"{'met' if idle < 20 * 1024 else 'not met'}); after serving those pages: {after / 1024:.1f} MB")
    out += [END, ""]
    section.write(a.out, BEGIN, END, out)


if __name__ == "__main__":
    main()
