#!/usr/bin/env python3
"""hawser's benchmark: hawser, docker-compose (the peer) and plain parallel `docker run` (the
engine's own limit) on the same generated stack, the same engine, in one run. Writes
BENCHMARKS.md with medians and ratios. Not a test: it asserts nothing and times everything.

Usage: bench/run.py [--sizes 20,100] [--runs 3] [--out BENCHMARKS.md]
"""
import argparse, json, os, platform, shutil, statistics, subprocess, sys, tempfile, time

IMAGE = "127.0.0.1:5000/busybox:latest"
HOST = os.environ.get("DOCKER_HOST", "unix:///run/hawser-engine/docker.sock")
ENV = dict(os.environ, DOCKER_HOST=HOST)
# As on a host where nobody chose a CA bundle: then hawser points OpenSSL at the hashed system
# directory, read lazily, instead of parsing the whole bundle at every start (~20 ms).
CA_VARS = [k for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if ENV.pop(k, None) is not None]
# A container that stops on SIGTERM (within its current `sleep 1`).
LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"
# One that ignores SIGTERM, as many real images do: it is killed after its 1 s stop grace.
SLOW = "trap '' TERM; while true; do sleep 1; done"


def sh(cmd, cwd=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


STEP_TIMEOUT = 300
# Part of every name this run makes: a dockerd that kept a stale endpoint from an earlier run
# (its network then can't be removed) never blocks this one.
RUN = f"{os.getpid() % 10000}"
NOTES = []
TIMELINE = []
CPU = {}


def machine_cpu():
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def timed(cmd, cwd=None):
    """Seconds one command took; None when it failed or hung past STEP_TIMEOUT."""
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"timed out after {STEP_TIMEOUT}s: {' '.join(cmd)}", file=sys.stderr)
        NOTES.append(f"`{' '.join(cmd[:4])} ...` hung past {STEP_TIMEOUT}s once and was stopped (not counted).")
        return None
    if r.returncode != 0:
        print(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}", file=sys.stderr)
        NOTES.append(f"`{' '.join(cmd[:4])} ...` failed once (not counted): {r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else ''}")
        return None
    return time.perf_counter() - t


def docker(*args, check=True):
    return sh(["docker", "-H", HOST, *args], check=check)


def clean(prefix):
    ids = docker("ps", "-aq", "--filter", f"name={prefix}").stdout.split()
    if ids:
        docker("rm", "-f", *ids)
    for kind in ("network", "volume"):
        names = docker(kind, "ls", "-q", "--filter", f"name={prefix}").stdout.split()
        if names:
            docker(kind, "rm", *names, check=False)


def hawser_stack(n, prefix, version, count=None, slow=False, strategy=None):
    docs = [f"kind: Network\nmetadata: {{name: {prefix}net}}\n"]
    extra = "  stopTimeout: 1s\n" if slow else ""
    if strategy:
        extra += f"  update: {{strategy: {strategy}}}\n"
    for i in range(count if count is not None else n):
        docs.append(f"kind: Volume\nmetadata: {{name: {prefix}v{i}}}\n")
        docs.append(
            f"kind: Container\nmetadata: {{name: {prefix}c{i}}}\nspec:\n  image: \"{IMAGE}\"\n"
            f"  command: {json.dumps(SLOW if slow else LOOP)}\n  env: {{VERSION: \"{version}\"}}\n"
            f"  volumes: [\"{prefix}v{i}:/data\"]\n  networks: [{prefix}net]\n{extra}"
        )
    return "---\n".join(docs)


def compose_stack(n, prefix, version, count=None, slow=False):
    lines = ["version: '2.4'", "services:"]
    for i in range(count if count is not None else n):
        lines += [
            f"  c{i}:", f"    image: {IMAGE}", f"    container_name: {prefix}c{i}",
            f"    command: [\"sh\", \"-c\", {json.dumps(SLOW if slow else LOOP)}]",
            f"    environment: {{VERSION: \"{version}\"}}",
            f"    volumes: [\"{prefix}v{i}:/data\"]", f"    networks: [net]",
        ] + (["    stop_grace_period: 1s"] if slow else [])
    lines += ["networks:", f"  net: {{name: {prefix}net}}", "volumes:"]
    lines += [f"  {prefix}v{i}: {{name: {prefix}v{i}}}" for i in range(count if count is not None else n)]
    return "\n".join(lines) + "\n"


def hawser_runs(hawser, n, runs):
    res = {k: [] for k in ("cold apply", "no-op apply", "no-op plan", "change one", "change all", "prune half")}
    for run_no in range(runs):
        # A fresh prefix per run: a dockerd that kept a stale endpoint can't block the next run.
        prefix = f"b{RUN}h{n}r{run_no}-"
        clean(prefix)
        d = tempfile.mkdtemp()
        state = tempfile.mkdtemp()
        run = lambda *a: [hawser, "--state-dir", state, *a]
        def write(text):
            open(os.path.join(d, "stack.yaml"), "w").write(text)
        write(hawser_stack(n, prefix, "1"))
        open(os.path.join(d, "hawser.toml"), "w").write(f'project = "{prefix}bench"\n')
        res["cold apply"].append(timed(run("apply", "--yes", d)))
        res["no-op apply"].append(timed(run("apply", "--yes", d)))
        res["no-op plan"].append(timed(run("plan", d)))
        text = hawser_stack(n, prefix, "1").replace(f"name: {prefix}c0}}\nspec:\n  image: \"{IMAGE}\"\n  command: {json.dumps(LOOP)}\n  env: {{VERSION: \"1\"}}", f"name: {prefix}c0}}\nspec:\n  image: \"{IMAGE}\"\n  command: {json.dumps(LOOP)}\n  env: {{VERSION: \"one\"}}")
        write(text)
        res["change one"].append(timed(run("apply", "--yes", d)))
        write(hawser_stack(n, prefix, "2"))
        res["change all"].append(timed(run("apply", "--yes", d)))
        write(hawser_stack(n, prefix, "2", count=n // 2))
        res["prune half"].append(timed(run("apply", "--yes", "--prune", d)))
        clean(prefix)
        shutil.rmtree(d); shutil.rmtree(state)
    return res


def compose_runs(n, runs):
    res = {k: [] for k in ("cold apply", "no-op apply", "change one", "change all", "prune half")}
    for run_no in range(runs):
        prefix = f"b{RUN}c{n}r{run_no}-"
        clean(prefix)
        d = tempfile.mkdtemp()
        f = os.path.join(d, "docker-compose.yml")
        up = ["docker-compose", "-p", f"{prefix}bench", "-f", f, "up", "-d"]
        open(f, "w").write(compose_stack(n, prefix, "1"))
        res["cold apply"].append(timed(up))
        res["no-op apply"].append(timed(up))
        text = compose_stack(n, prefix, "1").replace("  c0:\n", "  c0:\n", 1)
        lines = text.split("\n")
        idx = lines.index(f"    container_name: {prefix}c0") + 2
        lines[idx] = '    environment: {VERSION: "one"}'
        open(f, "w").write("\n".join(lines))
        res["change one"].append(timed(up))
        open(f, "w").write(compose_stack(n, prefix, "2"))
        res["change all"].append(timed(up))
        open(f, "w").write(compose_stack(n, prefix, "2", count=n // 2))
        res["prune half"].append(timed(up + ["--remove-orphans"]))
        sh(["docker-compose", "-p", f"{prefix}bench", "-f", f, "down", "-v"], check=False)
        clean(prefix)
        shutil.rmtree(d)
    return res


# The replacement cases of issue 14: every container changed, by strategy and by how the
# containers stop. compose always recreates stop-first.
CHANGE_CASES = [
    ("change all, stop-first", False, "stop-first"),
    ("change all, slow stop, start-first", True, None),
    ("change all, slow stop, stop-first, minUptime 0s", True, "stop-first, minUptime: 0s"),
    ("change all, slow stop, stop-first", True, "stop-first"),
]


def hawser_change_runs(hawser, n, runs, timeline=None):
    """Each change case: the stack applied, then every container changed (timed). With
    `timeline`, the last case's engine calls are kept (HAWSER_LOG=hawser::timeline=debug)."""
    res = {name: [] for name, _, _ in CHANGE_CASES}
    res["no-op apply, SSL_CERT_FILE set"] = []
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    for run_no in range(runs):
        for case_no, (name, slow, strategy) in enumerate(CHANGE_CASES):
            prefix = f"b{RUN}x{n}r{run_no}k{case_no}-"
            clean(prefix)
            d, state = tempfile.mkdtemp(), tempfile.mkdtemp()
            open(os.path.join(d, "hawser.toml"), "w").write(f'project = "{prefix}bench"\n')
            path = os.path.join(d, "stack.yaml")
            open(path, "w").write(hawser_stack(n, prefix, "1", slow=slow, strategy=strategy))
            if timed([hawser, "--state-dir", state, "apply", "--yes", d]) is None:
                clean(prefix)
                continue
            if case_no == 0 and os.path.exists(bundle):
                env = dict(ENV, SSL_CERT_FILE=bundle)
                t = time.perf_counter()
                r = subprocess.run([hawser, "--state-dir", state, "apply", "--yes", d], env=env, capture_output=True)
                if r.returncode == 0:
                    res["no-op apply, SSL_CERT_FILE set"].append(time.perf_counter() - t)
            open(path, "w").write(hawser_stack(n, prefix, "2", slow=slow, strategy=strategy))
            last = timeline is not None and case_no == len(CHANGE_CASES) - 1 and run_no == runs - 1
            if last:
                env = dict(ENV, HAWSER_LOG="hawser::timeline=debug")
                own0, (busy0, all0) = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN), machine_cpu()
                t = time.perf_counter()
                r = subprocess.run([hawser, "--state-dir", state, "--log-format", "json", "apply", "--yes", d],
                                   env=env, capture_output=True, text=True)
                own1, (busy1, all1) = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN), machine_cpu()
                if r.returncode == 0:
                    res[name].append(time.perf_counter() - t)
                    CPU["busy"] = (busy1 - busy0) / max(all1 - all0, 1)
                    CPU["hawser"] = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
                    timeline.extend(l for l in (r.stdout + r.stderr).splitlines() if l.startswith("{"))
            else:
                res[name].append(timed([hawser, "--state-dir", state, "apply", "--yes", d]))
            clean(prefix)
            shutil.rmtree(d); shutil.rmtree(state)
    return res


def compose_change_runs(n, runs):
    res = {name: [] for name, _, _ in CHANGE_CASES if "minUptime" not in name}
    res["no-op apply, SSL_CERT_FILE set"] = []
    for run_no in range(runs):
        for case_no, (name, slow, _) in enumerate(CHANGE_CASES):
            if "minUptime" in name:
                continue  # the same for compose as the case without it
            prefix = f"b{RUN}y{n}r{run_no}k{case_no}-"
            clean(prefix)
            d = tempfile.mkdtemp()
            f = os.path.join(d, "docker-compose.yml")
            up = ["docker-compose", "-p", f"{prefix}bench", "-f", f, "up", "-d"]
            open(f, "w").write(compose_stack(n, prefix, "1", slow=slow))
            if timed(up) is None:
                clean(prefix)
                continue
            if case_no == 0:
                res["no-op apply, SSL_CERT_FILE set"].append(timed(up))
            open(f, "w").write(compose_stack(n, prefix, "2", slow=slow))
            res[name].append(timed(up))
            sh(["docker-compose", "-p", f"{prefix}bench", "-f", f, "down", "-v"], check=False)
            clean(prefix)
            shutil.rmtree(d)
    # compose has no uptime window: its figure is the case's without one.
    res["change all, slow stop, stop-first, minUptime 0s"] = res["change all, slow stop, stop-first"]
    return res


def limit_change_runs(n, runs):
    """The engine's own limit for a stop-first change of every container, slow-stopping: per
    container stop, rename, run, remove, with plain docker commands, all at once."""
    res = {"change all, slow stop, stop-first": []}
    for run_no in range(runs):
        prefix = f"b{RUN}z{n}r{run_no}-"
        clean(prefix)
        docker("network", "create", f"{prefix}net")
        run = (f"docker -H {HOST} run -d --name {prefix}c$0 -e VERSION=$1 -v {prefix}v$0:/data "
               f"--network {prefix}net {IMAGE} sh -c {json.dumps(SLOW)} >/dev/null")
        subprocess.run(["xargs", "-P", "8", "-I{}", "sh", "-c", run, "{}", "1"], input="\n".join(map(str, range(n))),
                       text=True, env=ENV, capture_output=True)
        change = (f"docker -H {HOST} stop -t 1 {prefix}c$0 >/dev/null && "
                  f"docker -H {HOST} rename {prefix}c$0 {prefix}c$0-old && {run} && "
                  f"docker -H {HOST} rm {prefix}c$0-old >/dev/null")
        t = time.perf_counter()
        p = subprocess.run(["xargs", "-P", str(n), "-I{}", "sh", "-c", change, "{}", "2"],
                           input="\n".join(map(str, range(n))), text=True, env=ENV, capture_output=True)
        if p.returncode == 0:
            res["change all, slow stop, stop-first"].append(time.perf_counter() - t)
        clean(prefix)
    return res


def timeline_section(lines):
    """Where a replacement's time goes: the engine calls of one change of every container
    (slow stop, stop-first), by kind: how many, when the first asked and the last ended, how
    long each waited for an engine slot and ran, and how many were in flight at most."""
    calls = []
    for line in lines:
        try:
            f = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if f.get("message") == "engine call":
            calls.append(f)
    if not calls:
        return []
    total = max(c["ended"] for c in calls)
    out = ["## Where a replacement's time goes", "",
           f"One stop-first change of every container (slow stop, {sum(c['op'] == 'stop_container' for c in calls)} "
           f"containers), {total / 1000:.2f} s in all, "
           f"{len(calls)} engine calls (`HAWSER_LOG=hawser::timeline=debug`). Times in ms from the start of the apply; "
           "a stop takes no engine slot, and a gate follows the engine's events instead of polling.", "",
           "| call | count | first asked | last ended | mean wait for a slot | mean engine time | most in flight |",
           "|---|---|---|---|---|---|---|"]
    by = {}
    for c in calls:
        by.setdefault(c["op"], []).append(c)
    for op, cs in sorted(by.items(), key=lambda kv: min(c["asked"] for c in kv[1])):
        points = sorted([(c["began"], 1) for c in cs] + [(c["ended"], -1) for c in cs])
        peak = cur = 0
        for _, d in points:
            cur += d
            peak = max(peak, cur)
        wait = statistics.mean(c["began"] - c["asked"] for c in cs)
        ran = statistics.mean(c["ended"] - c["began"] for c in cs)
        out.append(f"| {op} | {len(cs)} | {min(c['asked'] for c in cs):.0f} | {max(c['ended'] for c in cs):.0f} | "
                   f"{wait:.0f} | {ran:.0f} | {peak} |")
    starts = by.get("start_container", [])
    if starts:
        first, last = min(c["began"] for c in starts), max(c["ended"] for c in starts)
        out += ["", f"The engine carries out the starts one after another: they end between {first:.0f} and {last:.0f} ms, "
                f"about {(last - first) / len(starts):.0f} ms each, however many are in flight. The apply ends "
                f"{total - last:.0f} ms after the last start: the uptime window of that last container "
                "(`update.minUptime`, 1 s), which is why the same change with `minUptime: 0s` is faster than compose."]
        if CPU:
            out += ["", f"The machine's {os.cpu_count()} cores were {CPU['busy'] * 100:.0f}% busy over the whole change, the "
                    "idle waits included (the stop grace before the first start, the uptime window after the last), "
                    f"and hawser itself used {CPU['hawser'] * 1000:.0f} ms of CPU: the starts' cost is the engine's "
                    "(dockerd, containerd, runc, the network set-up), and the starts queue in it whoever asks for them. A change of every container cannot end before the last start "
                    "plus the uptime window that hawser keeps by default, and compose waits for no window."]
    return out + [""]


def limit_runs(n, runs):
    """The engine's own limit: the same objects made with plain docker commands, 8 at a time."""
    res = {"cold apply": []}
    for run_no in range(runs):
        prefix = f"b{RUN}l{n}r{run_no}-"
        clean(prefix)
        t = time.perf_counter()
        docker("network", "create", f"{prefix}net")
        script = (
            f"docker -H {HOST} volume create {prefix}v$0 >/dev/null && "
            f"docker -H {HOST} run -d --name {prefix}c$0 -e VERSION=1 -v {prefix}v$0:/data "
            f"--network {prefix}net {IMAGE} sh -c {json.dumps(LOOP)} >/dev/null"
        )
        p = subprocess.run(["xargs", "-P", "8", "-I{}", "sh", "-c", script, "{}"],
                           input="\n".join(str(i) for i in range(n)), text=True, env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            print(f"docker run limit failed: {p.stderr}", file=sys.stderr)
            clean(prefix)
            continue
        res["cold apply"].append(time.perf_counter() - t)
        clean(prefix)
    return res


class UnixHTTP(__import__("http.client").client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        import socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def engine_get(path):
    c = UnixHTTP(HOST.replace("unix://", ""))
    c.request("GET", path)
    body = c.getresponse().read()
    c.close()
    return json.loads(body)


def serve_runs(hawser, pushes=10):
    """Push-to-running through `hawser serve` on a local bare repository, and its idle footprint."""
    prefix = "bs-"
    clean(prefix)
    work, bare, state = tempfile.mkdtemp(), tempfile.mkdtemp(), tempfile.mkdtemp()
    git = lambda *a: sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", *a], cwd=work)
    sh(["git", "init", "-q", "--bare", "-b", "main", bare])
    git("init", "-q", "-b", "main")
    git("remote", "add", "origin", bare)
    open(os.path.join(work, "hawser.toml"), "w").write('project = "bs-bench"\n')
    def write(v):
        open(os.path.join(work, "svc.yaml"), "w").write(
            f"kind: Container\nmetadata: {{name: {prefix}svc}}\nspec:\n  image: \"{IMAGE}\"\n"
            f"  command: {json.dumps(LOOP)}\n  env: {{VERSION: \"{v}\"}}\n")
    write("0")
    git("add", "-A"); git("commit", "-qm", "v0"); git("push", "-q", "origin", "main")
    proc = subprocess.Popen([hawser, "--state-dir", state, "serve", bare, "--interval", "10m", "--listen", "127.0.0.1:19599"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def running_revision(rev, limit=10.0):
        t = time.perf_counter()
        filt = json.dumps({"label": [f"dev.hawser.revision={rev}"], "status": ["running"]})
        while time.perf_counter() - t < limit:
            if engine_get("/containers/json?filters=" + __import__("urllib.parse").parse.quote(filt)):
                return time.perf_counter()
            time.sleep(0.01)
        return None
    rev0 = sh(["git", "rev-parse", "HEAD"], cwd=work).stdout.strip()
    running_revision(rev0, 20)
    lat = []
    for i in range(1, pushes + 1):
        write(str(i))
        git("add", "-A"); git("commit", "-qm", f"v{i}")
        rev = sh(["git", "rev-parse", "HEAD"], cwd=work).stdout.strip()
        t = time.perf_counter()
        git("push", "-q", "origin", "main")
        done = running_revision(rev)
        if done:
            lat.append(done - t)
        time.sleep(2.5)  # let the replacement finish before the next push
    time.sleep(3)
    status = open(f"/proc/{proc.pid}/status").read()
    field = lambda name: int(next(l.split()[1] for l in status.splitlines() if l.startswith(name + ":")))
    # RSS counts the pages of shared libraries it touched (libcrypto alone is ~4 MB of them,
    # shared with every other process using it); RssAnon is what this process alone holds.
    rss_kb, anon_kb = field("VmRSS"), field("RssAnon")
    def cpu():
        f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu(); time.sleep(10); c1 = cpu()
    proc.terminate(); proc.wait()
    clean(prefix)
    shutil.rmtree(work); shutil.rmtree(bare); shutil.rmtree(state)
    return {"push-to-running median (s)": median(lat), "pushes measured": len(lat),
            "idle RSS (MB)": rss_kb / 1024, "idle private memory, RssAnon (MB)": anon_kb / 1024, "idle CPU over 10 s (s)": c1 - c0}


def validate_runs(hawser, runs=3):
    """10 MB of manifests: hawser's own format over many files, and one compose file that both
    hawser and docker-compose (`config -q`) read. Parsing must be linear (issue 12)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        own = os.path.join(tmp, "own")
        os.makedirs(own)
        filler = "x" * 300
        for f in range(100):
            with open(os.path.join(own, f"c{f:03}.yaml"), "w") as fh:
                for i in range(200):
                    n = f * 200 + i
                    fh.write(f"---\nkind: Container\nmetadata: {{name: c{n}}}\nspec:\n  image: {IMAGE}\n"
                             f"  command: [sleep, \"3600\"]\n  env: {{A: \"{filler}\", B: \"b{n}\"}}\n"
                             f"  volumes: [\"v{n}:/data\"]\n---\nkind: Volume\nmetadata: {{name: v{n}}}\n")
        # docker-compose's own YAML reading is slow enough that 10 MB takes minutes: the
        # compose comparison uses 1 MB, the same file for both tools.
        comp = os.path.join(tmp, "compose")
        os.makedirs(comp)
        with open(os.path.join(comp, "compose.yaml"), "w") as fh:
            fh.write("services:\n")
            for n in range(2000):
                fh.write(f"  s{n}:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"
                         f"    environment: {{A: \"{filler}\", B: \"b{n}\"}}\n")
        size = lambda d: sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 1e6
        big = ["--max-manifest-size", "64Mi", "--max-revision-size", "64Mi"]
        t = [timed([hawser, *big, "validate", own]) for _ in range(runs)]
        out[f"validate {size(own):.1f} MB of manifests in 100 files (s)"] = median([x for x in t if x is not None])
        t = [timed([hawser, "validate", comp]) for _ in range(runs)]
        out[f"validate one {size(comp):.1f} MB compose file, hawser (s)"] = median([x for x in t if x is not None])
        t = [timed(["docker-compose", "-f", os.path.join(comp, "compose.yaml"), "config", "-q"]) for _ in range(runs)]
        out[f"validate one {size(comp):.1f} MB compose file, docker-compose config (s)"] = median([x for x in t if x is not None])
    return out


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20,100")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runs-large", type=int, default=1, help="runs for sizes above 50")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--hawser", default="target/release/hawser")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for n in sizes:
        print(f"N={n}: hawser", file=sys.stderr)
        runs = args.runs if n <= 50 else args.runs_large
        h = hawser_runs(args.hawser, n, runs)
        print(f"N={n}: docker-compose", file=sys.stderr)
        c = compose_runs(n, runs)
        print(f"N={n}: docker run limit", file=sys.stderr)
        l = limit_runs(n, runs)
        if n <= 50:
            print(f"N={n}: replacement cases", file=sys.stderr)
            h.update(hawser_change_runs(args.hawser, n, runs, TIMELINE if n == 20 else None))
            c.update(compose_change_runs(n, runs))
            l.update(limit_change_runs(n, runs))
        results[n] = (h, c, l, runs)
        continue
    extra = {}
    print("serve: push-to-running", file=sys.stderr)
    for k, v in serve_runs(args.hawser).items():
        extra[k] = f"{v:.3f}" if isinstance(v, float) else str(v)
    print("validate: 10 MB of manifests", file=sys.stderr)
    for k, v in validate_runs(args.hawser).items():
        extra[k] = f"{v:.3f}" if isinstance(v, float) else str(v)
    for line in sh(["target/release/examples/plan_bench"], check=False).stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            extra[k.strip()] = v.strip()
    if CA_VARS:
        NOTES.append(f"{' and '.join(CA_VARS)} (set for every process on this machine) were unset for the run, as on a "
                     "host where nobody chose a CA bundle.")
    write_report(args.out, results, args.runs, extra)


def targets(results, extra):
    """The figures the project is judged against (issues 5, 6 and 8), checked."""
    out = ["## Against the targets", "", "| target | measured | met |", "|---|---|---|"]
    def row(name, value, ok):
        out.append(f"| {name} | {value} | {'yes' if ok else 'no'} |")
    if 20 in results:
        h, c, l, _ = results[20]
        m = lambda d, k: median(d.get(k, []))
        pairs = [("no-op apply, 20 containers: at most 0.1x compose", "no-op apply", c, 0.1),
                 ("no-op apply with SSL_CERT_FILE set, 20: at most 1/15 (0.067x) of compose", "no-op apply, SSL_CERT_FILE set", c, 1 / 15),
                 ("cold apply, 20: at most 0.6x compose", "cold apply", c, 0.6),
                 ("change of every container, start-first, 20: no slower than compose", "change all", c, 1.0),
                 ("change of every container, stop-first, 20: 1.2x faster than compose (0.83x)", "change all, stop-first", c, 1 / 1.2),
                 ("change of every container, slow stop, stop-first, 20: 1.2x faster than compose", "change all, slow stop, stop-first", c, 1 / 1.2),
                 ("change of every container, slow stop, start-first, 20: no slower than compose", "change all, slow stop, start-first", c, 1.0),
                 ("cold apply, 20: within 1.05x of the docker run limit", "cold apply", l, 1.05)]
        for name, step, peer, limit in pairs:
            hv, pv = m(h, step), m(peer, step)
            if hv and pv:
                row(name, f"{hv / pv:.2f}x", hv / pv <= limit)
    def num(k):
        try:
            return float(extra.get(k, "nan").split()[0])
        except ValueError:
            return float("nan")
    row("push-to-running, median: under 1 s", f"{num('push-to-running median (s)'):.3f} s", num("push-to-running median (s)") < 1)
    row("idle service RSS: under 20 MB", f"{num('idle RSS (MB)'):.1f} MB", num("idle RSS (MB)") < 20)
    own = next((k for k in extra if k.startswith("validate") and "100 files" in k), None)
    if own:
        row("validate 10 MB of manifests: under 2 s", f"{num(own):.2f} s", num(own) < 2)
    key = next((k for k in extra if k.startswith("compose project of 50 services")), None)
    if key:
        row("compose of 50 services with interpolation, read and render: under 50 ms", f"{num(key):.1f} ms", num(key) < 50)
    row("plan of 1,000 resources: under 200 ms", f"{num('plan of 1000 resources, total'):.1f} ms", num("plan of 1000 resources, total") < 200)
    return out + [""]


def write_report(path, results, runs, extra):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    engine = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    compose = sh(["docker-compose", "version", "--short"]).stdout.strip()
    out = [
        "# Benchmarks",
        "",
        "Made by `scripts/bench` (bench/run.py): hawser, `docker-compose` (the peer) and plain parallel",
        "`docker run` (the engine's own limit, 8 at a time) on the same generated stack and the same",
        "engine, in one run; each figure is the median of the runs named in its heading, in seconds",
        "(n/a: the step failed or hung past 300s, see below). Ratios below 1 mean",
        "hawser is faster. The stack: one network, and per container a named volume. Containers",
        "stop on SIGTERM (within a second), except in the `slow stop` cases: there they ignore it, as",
        "many real images do, and are killed after a 1 s stop grace. `change all` is hawser's default",
        "(start-first, the new container proves itself before the old one stops); docker-compose",
        "always recreates stop-first. The docker run limit for a change is stop, rename, run and",
        "remove per container with plain docker commands, all containers at once.",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {int(mem)//1024//1024} GiB, {platform.system()} {platform.release()};",
        f"engine: dockerd {engine}; peer: docker-compose {compose}; date: {time.strftime('%Y-%m-%d')}.",
        "",
    ]
    for n, (h, c, l, runs_n) in results.items():
        out += [f"## {n} containers ({runs_n} run{'s' if runs_n > 1 else ''}, median)", "", "| step | hawser | docker-compose | ratio | docker run limit | ratio to limit |", "|---|---|---|---|---|---|"]
        for step in h:
            hv, cv, lv = median(h[step]), median(c.get(step, [])), median(l.get(step, []))
            fmt = lambda v: f"{v:.2f}" if v is not None else "n/a"
            ratio = f"{hv / cv:.2f}x" if cv and hv else "n/a"
            lratio = f"{hv / lv:.2f}x" if lv and hv else ""
            out.append(f"| {step} | {fmt(hv)} | {fmt(cv)} | {ratio} | {fmt(lv) if lv else ''} | {lratio} |")
        out.append("")
    out += targets(results, extra)
    out += timeline_section(TIMELINE)
    if NOTES:
        out += ["## Notes from this run", ""] + [f"- {n}" for n in NOTES] + [""]
    if extra:
        out += ["## Service and in process", ""] + [f"- {k}: {v}" for k, v in extra.items()] + [""]
    # The swarm, dashboard, native and ports sections are bench/swarm.py's, bench/dashboard.py's,
    # bench/native.py's and bench/ports.py's: kept.
    old = open(path).read() if os.path.exists(path) else ""
    for name in ("swarm", "dashboard", "native", "ports"):
        begin, end = f"<!-- {name} benchmark -->", f"<!-- /{name} benchmark -->"
        if begin in old and end in old:
            out += [old[old.index(begin):old.index(end) + len(end)], ""]
    open(path, "w").write("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
