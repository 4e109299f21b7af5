#!/usr/bin/env python3
"""The native target's benchmark: the same stack of N containers (each with a volume, all on
one network) converged by hawser on the native target (runc, no daemon), by hawser on the
Docker engine, and by docker-compose on the Docker engine, in one run on this machine. Then
the memory it takes to keep N idle containers: hawser's monitors against dockerd, containerd
and their shims. Writes its section of BENCHMARKS.md (between the native markers; bench/run.py
keeps it). Not a test: it asserts nothing and times everything.

Usage: bench/native.py [--containers 20] [--runs 3] [--out BENCHMARKS.md]
"""
import argparse, proc, json, os, section, shutil, statistics, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "127.0.0.1:5000/busybox:latest"
HOST = os.environ.get("DOCKER_HOST", "unix:///run/hawser-engine/docker.sock")
ENV = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
ENV["DOCKER_HOST"] = HOST
LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"
BEGIN, END = "<!-- native benchmark -->", "<!-- /native benchmark -->"
NOOPS = 5
RUN = f"{os.getpid() % 10000}"


sh, timed = proc.runners(ENV)


def stack(n, prefix, version):
    docs = [f"kind: Network\nmetadata: {{name: {prefix}net}}\n"]
    for i in range(n):
        docs.append(f"kind: Volume\nmetadata: {{name: {prefix}v{i}}}\n")
        docs.append(
            f"kind: Container\nmetadata: {{name: {prefix}c{i}}}\nspec:\n  image: \"{IMAGE}\"\n"
            f"  command: {json.dumps(LOOP)}\n  env: {{VERSION: \"{version}\"}}\n"
            f"  volumes: [\"{prefix}v{i}:/data\"]\n  networks: [{prefix}net]\n"
        )
    return "---\n".join(docs)


def compose(n, prefix, version):
    lines = ["version: '2.4'", "services:"]
    for i in range(n):
        lines += [
            f"  c{i}:", f"    image: {IMAGE}", f"    container_name: {prefix}c{i}",
            f"    command: [\"sh\", \"-c\", {json.dumps(LOOP)}]",
            f"    environment: {{VERSION: \"{version}\"}}",
            f"    volumes: [\"{prefix}v{i}:/data\"]", "    networks: [net]",
        ]
    lines += ["networks:", f"  net: {{name: {prefix}net}}", "volumes:"]
    lines += [f"  {prefix}v{i}: {{name: {prefix}v{i}}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def pss_kib(pid):
    """Proportional set size of a process (shared pages divided among their users), in KiB."""
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pids_where(pred):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if pred([c.decode(errors="replace") for c in cmd if c]):
            out.append(int(p))
    return out


def memory(pids):
    return sum(pss_kib(p) for p in pids), sum(rss_kib(p) for p in pids), len(pids)


def engine_pids():
    """dockerd, containerd and every containerd shim of the test engine."""
    return pids_where(lambda c: bool(c) and os.path.basename(c[0]) in ("dockerd", "containerd", "containerd-shim-runc-v2", "containerd-shim"))


def hawser_runs(hawser, n, runs, target, mem):
    res = {k: [] for k in ("cold apply", "no-op apply", "change all")}
    for run_no in range(runs):
        prefix = f"n{RUN}{target[0]}{n}r{run_no}-"
        d, state = tempfile.mkdtemp(), tempfile.mkdtemp()
        open(os.path.join(d, "hawser.toml"), "w").write(f'project = "{prefix}bench"\ntarget = "{target}"\n')
        path = os.path.join(d, "stack.yaml")
        run = lambda *a: [hawser, "--state-dir", state, *a]
        open(path, "w").write(stack(n, prefix, "1"))
        res["cold apply"].append(timed(run("apply", "--yes", d)))
        if run_no == runs - 1 and mem is not None:
            time.sleep(3)  # idle
            if target == "native":
                mem["native"] = memory(pids_where(lambda c: len(c) > 1 and c[1] == "__monitor" and state in c[2]))
            else:
                mem["docker"] = memory(engine_pids())
        noop = [timed(run("apply", "--yes", d)) for _ in range(NOOPS)]
        res["no-op apply"].extend(t for t in noop if t is not None)
        open(path, "w").write(stack(n, prefix, "2"))
        res["change all"].append(timed(run("apply", "--yes", d)))
        open(os.path.join(d, "stack.yaml"), "w").write("")
        sh(run("apply", "--yes", "--prune", "--allow-empty", d), check=False)
        if target == "docker":  # named volumes outlive prune, by design
            vols = sh(["docker", "-H", HOST, "volume", "ls", "-q", "--filter", f"name={prefix}"]).stdout.split()
            if vols:
                sh(["docker", "-H", HOST, "volume", "rm", *vols], check=False)
        shutil.rmtree(d)
        shutil.rmtree(state, ignore_errors=True)
    return res


def compose_runs(n, runs):
    res = {k: [] for k in ("cold apply", "no-op apply", "change all")}
    for run_no in range(runs):
        prefix = f"n{RUN}c{n}r{run_no}-"
        d = tempfile.mkdtemp()
        f = os.path.join(d, "docker-compose.yml")
        up = ["docker-compose", "-p", f"{prefix}bench", "-f", f, "up", "-d"]
        open(f, "w").write(compose(n, prefix, "1"))
        res["cold apply"].append(timed(up))
        noop = [timed(up) for _ in range(NOOPS)]
        res["no-op apply"].extend(t for t in noop if t is not None)
        open(f, "w").write(compose(n, prefix, "2"))
        res["change all"].append(timed(up))
        sh(["docker-compose", "-p", f"{prefix}bench", "-f", f, "down", "-v"], check=False)
        shutil.rmtree(d)
    return res


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(s):
    return "-" if s is None else (f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--hawser", default=os.path.join(ROOT, "target/release/hawser"))
    a = ap.parse_args()
    n = a.containers
    mem = {}
    # The engine's memory is read with no container of its own running: its idle floor.
    base = memory(engine_pids())
    native = hawser_runs(a.hawser, n, a.runs, "native", mem)
    docker = hawser_runs(a.hawser, n, a.runs, "docker", mem)
    comp = compose_runs(n, a.runs)
    rows = []
    for step in ("cold apply", "no-op apply", "change all"):
        nv, dv, cv = med(native[step]), med(docker[step]), med(comp[step])
        r = lambda x: f"{x / nv:.1f}x" if x and nv else "-"
        rows.append(f"| {step} | {fmt(nv)} | {fmt(dv)} | {fmt(cv)} | {r(cv)} | {r(dv)} |")
    npss, nrss, nn = mem.get("native", (0, 0, 0))
    dpss, drss, dn = mem.get("docker", (0, 0, 0))
    bpss, brss, bn = base
    ratio = f"{dpss / npss:.1f}x" if npss else "-"
    extra = dpss - bpss
    lines = [
        BEGIN,
        "## Native target: no engine daemon",
        "",
        f"`scripts/bench-native` (bench/native.py): {n} containers, each with a named volume, all on one",
        f"network, images from the local registry; {a.runs} runs, medians, no-ops {NOOPS} in a row per run.",
        f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} cores), one run of the script.",
        "",
        "| step | hawser, native (runc) | hawser, Docker engine | docker-compose, Docker engine | compose / native | hawser on Docker / native |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Memory to keep {n} idle containers (proportional set size, shared pages divided among the",
        "processes that map them; resident size in brackets):",
        "",
        "| what runs besides the containers | processes | PSS | RSS |",
        "|---|---|---|---|",
        f"| native: one `hawser __monitor` per container | {nn} | {npss / 1024:.1f} MiB | ({nrss / 1024:.1f} MiB) |",
        f"| dockerd + containerd + a shim per container | {dn} | {dpss / 1024:.1f} MiB | ({drss / 1024:.1f} MiB) |",
        f"| (the same engine with none of these containers) | {bn} | {bpss / 1024:.1f} MiB | ({brss / 1024:.1f} MiB) |",
        "",
        f"- The Docker engine takes {ratio} the memory of the native target's monitors for the same {n} containers"
        + (f" ({extra / 1024:.1f} MiB more than the idle engine alone, which a native host does not run at all)." if npss else "."),
        f"- Container for container, what a running container adds: {extra / 1024 / n:.2f} MiB on the Docker engine"
        f" (its shim, and dockerd's and containerd's share), {npss / 1024 / max(nn, 1):.2f} MiB on the native target (its monitor):"
        f" {extra / max(npss, 1):.1f}x." if npss else "",
        END,
        "",
    ]
    section.write(a.out, BEGIN, END, lines)


if __name__ == "__main__":
    main()
