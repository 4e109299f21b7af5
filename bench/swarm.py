#!/usr/bin/env python3
"""The swarm benchmark: hawser and `docker stack deploy` (the peer) deploying and changing the
same 20 services on the three-node test cluster (tests/support/swarm-cluster), in one run.
Writes its section of BENCHMARKS.md (between the swarm markers; bench/run.py keeps it).

`docker stack deploy` returns before the cluster has converged unless asked to wait
(`--detach=false`): both are timed, and hawser, which always waits and says when the cluster
has converged, is compared with the waiting one.

Usage: bench/swarm.py [--services 20] [--runs 3] [--out BENCHMARKS.md]
"""
import argparse, proc, section, json, os, shutil, statistics, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "tests/support/swarm-cluster")
MANAGER = "unix:///run/hws/n1/docker.sock"
IMAGE = "198.18.0.1:5000/busybox:latest"
LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"
ENV = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
ENV["DOCKER_HOST"] = MANAGER
BEGIN, END = "<!-- swarm benchmark -->", "<!-- /swarm benchmark -->"
# No-ops are quick and noisy: each run times this many in a row.
NOOPS = 5


sh, timed = proc.runners(ENV)


def converged(prefix, version, n):
    """Whether every service of `prefix` runs one task of `version` and nothing else."""
    out = sh(["docker", "service", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}} {{.Replicas}}"]).stdout
    rows = [l.split() for l in out.splitlines() if l.strip()]
    if len(rows) != n or any(r[1] != "1/1" for r in rows):
        return False
    tasks = sh(["docker", "service", "ps", "--filter", "desired-state=running", "--format", "{{.Name}} {{.CurrentState}}",
                *[r[0] for r in rows]]).stdout
    if sum(1 for l in tasks.splitlines() if "Running" in l) != n:
        return False
    # The spec changes at once; the tasks follow in the rolling update, which must be over.
    envs = sh(["docker", "service", "inspect", "--format",
               "{{json .Spec.TaskTemplate.ContainerSpec.Env}} {{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
               *[r[0] for r in rows]]).stdout
    return all(f"VERSION={version}" in l and not l.rstrip().endswith(("updating", "rollback_started")) for l in envs.splitlines())


def wait_converged(prefix, version, n, since):
    while not converged(prefix, version, n):
        if time.perf_counter() - since > 300:
            return None
        time.sleep(0.2)
    return time.perf_counter() - since


def hawser_stack(prefix, n, version):
    docs = [f"kind: Network\nmetadata: {{name: {prefix}net}}\n"]
    for i in range(n):
        docs.append(f"kind: Container\nmetadata: {{name: {prefix}s{i}}}\nspec:\n  image: \"{IMAGE}\"\n"
                    f"  command: [sh, -c, {json.dumps(LOOP)}]\n  env: {{VERSION: \"{version}\"}}\n"
                    f"  networks: [{prefix}net]\n  stopTimeout: 2s\n")
    return "---\n".join(docs)


def compose_stack(prefix, n, version):
    lines = ["version: '3.8'", "services:"]
    for i in range(n):
        lines += [f"  s{i}:", f"    image: {IMAGE}", f"    command: [sh, -c, {json.dumps(LOOP)}]",
                  f"    environment: {{VERSION: \"{version}\"}}", "    networks: [net]", "    stop_grace_period: 2s",
                  "    deploy: {replicas: 1, update_config: {order: start-first}}"]
    lines += ["networks:", "  net: {driver: overlay}"]
    return "\n".join(lines) + "\n"


def hawser_runs(hawser, n, runs):
    res = {"deploy": [], "no-op deploy": [], "change all": []}
    for r in range(runs):
        prefix = f"bh{r}-"
        d, state = tempfile.mkdtemp(), tempfile.mkdtemp()
        run = [hawser, "--state-dir", state, "apply", "--yes", d]
        open(os.path.join(d, "hawser.toml"), "w").write(f'project = "{prefix}bench"\ntarget = "swarm"\n')
        open(os.path.join(d, "stack.yaml"), "w").write(hawser_stack(prefix, n, "1"))
        res["deploy"].append(timed(run))
        res["no-op deploy"] += [timed(run) for _ in range(NOOPS)]
        open(os.path.join(d, "stack.yaml"), "w").write(hawser_stack(prefix, n, "2"))
        res["change all"].append(timed(run))
        if not converged(prefix, "2", n):
            print("hawser said it was done before the cluster converged", file=sys.stderr)
        open(os.path.join(d, "stack.yaml"), "w").write("")
        sh([hawser, "--state-dir", state, "apply", "--yes", "--prune", "--allow-empty", d], check=False)
        shutil.rmtree(d); shutil.rmtree(state)
    return res


def stack_runs(n, runs):
    res = {"deploy": [], "no-op deploy": [], "change all": []}
    for k in ("deploy", "no-op deploy", "change all"):
        res[f"{k} (returns)"] = []
        res[f"{k} (converged)"] = []
    for r in range(runs):
        stack = f"bs{r}"
        d = tempfile.mkdtemp()
        f = os.path.join(d, "compose.yml")
        for version, step in (("1", "deploy"), ("1", "no-op deploy"), ("2", "change all")):
            open(f, "w").write(compose_stack(stack, n, version))
            res[step].append(timed(["docker", "stack", "deploy", "--detach=false", "-c", f, stack]))
        sh(["docker", "stack", "rm", stack])
        # Detached, as it runs by default: it returns before the cluster has converged. A stack
        # of its own name: `stack rm` finishes removing the other's network in the background.
        stack = f"bd{r}"
        for version, step in (("1", "deploy"), ("1", "no-op deploy"), ("2", "change all")):
            open(f, "w").write(compose_stack(stack, n, version))
            for _ in range(NOOPS if step == "no-op deploy" else 1):
                t = time.perf_counter()
                res[f"{step} (returns)"].append(timed(["docker", "stack", "deploy", "-c", f, stack]))
                res[f"{step} (converged)"].append(wait_converged(stack + "_", version, n, t))
        sh(["docker", "stack", "rm", stack])
        time.sleep(5)
        shutil.rmtree(d)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--hawser", default="target/release/hawser")
    a = ap.parse_args()
    sh([CLUSTER, "down"], check=False)
    sh([CLUSTER, "up"])
    try:
        h = hawser_runs(a.hawser, a.services, a.runs)
        s = stack_runs(a.services, a.runs)
    finally:
        sh([CLUSTER, "down"], check=False)
    med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}" if v < 0.1 else f"{v:.2f}"
    out = [BEGIN, f"## Swarm: {a.services} services on a three-node cluster ({a.runs} runs, median)", "",
           "Made by `bench/swarm.py` on `tests/support/swarm-cluster` (three dockerds in network namespaces of "
           "this machine, one overlay network, one replica each, start-first updates). hawser waits until the "
           "cluster has converged (every task of the new spec running, none of the old) and says so; "
           "`docker stack deploy` is timed waiting too (`--detach=false`), and as it runs by default, returning "
           "before the cluster converged. A no-op is timed five times in a row per run.", "",
           "| step | hawser | stack deploy: returns | stack deploy: cluster converged (polled) | ratio to converged | stack deploy --detach=false |",
           "|---|---|---|---|---|---|"]
    for step in ("deploy", "no-op deploy", "change all"):
        hv, cv = med(h[step]), med(s[f"{step} (converged)"])
        ratio = f"{hv / cv:.2f}x" if hv and cv else "n/a"
        out.append(f"| {step} | {fmt(hv)} | {fmt(med(s[f'{step} (returns)']))} | {fmt(cv)} | {ratio} | {fmt(med(s[step]))} |")
    hv, sv = med(h["no-op deploy"]), med(s["no-op deploy (returns)"])
    if hv and sv:
        out += ["", f"No-op: hawser {sv / hv:.1f}x faster than a repeated `docker stack deploy`, which returns without "
                f"waiting (target: at least 10x): {'met' if sv / hv >= 10 else 'not met'}. `--detach=false` watches each "
                "service in turn for a few quiet seconds, so it takes minutes for 20 services even when nothing changed."]
    out += [END, ""]
    section.write(a.out, BEGIN, END, out)


if __name__ == "__main__":
    main()
