#!/usr/bin/env python3
"""Compares `hawser render` with `docker-compose config` (the reference implementation) for one
compose project: per service, the image (or build), command, entrypoint, environment, ports,
volumes, networks and dependencies. Prints every difference and exits 1 when there is one.

usage: compose_parity.py HAWSER PROJECT_DIR STATE_DIR

Both programs run with the same environment (this process's). Services of inactive profiles
are left out, as both leave them out of a deployment.
"""
import json
import os
import shlex
import subprocess
import sys

import yaml


NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def compose_file(project):
    """The project's compose file, wherever in the repository it is."""
    for folder, dirs, files in sorted(os.walk(project)):
        dirs.sort()
        for name in NAMES:
            if name in files:
                return os.path.join(folder, name)
    sys.exit(f"no compose file in {project}")


def compose_config(project):
    path = compose_file(project)
    out = subprocess.run(
        ["docker-compose", "-f", path, "--project-directory", os.path.dirname(path), "config"],
        cwd=project, capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"docker-compose config failed in {project}:\n{out.stderr}")
    return unescape(yaml.safe_load(out.stdout))


def unescape(v):
    """`config` writes `$` as `$$`, so that its output reads back the same: the values meant."""
    if isinstance(v, str):
        return v.replace("$$", "$")
    if isinstance(v, list):
        return [unescape(x) for x in v]
    if isinstance(v, dict):
        return {k: unescape(x) for k, x in v.items()}
    return v


def hawser_render(hawser, project, state_dir):
    out = subprocess.run(
        [hawser, "--state-dir", state_dir, "render", "--output", "json", project],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"hawser render failed in {project}:\n{out.stderr}")
    return json.loads(out.stdout)


def words(v):
    if v is None:
        return None
    return shlex.split(v) if isinstance(v, str) else [str(x) for x in v]


def port_text(p):
    """A compose port, short or long, in hawser's form `[IP:][HOST:]CONTAINER/PROTO`."""
    if isinstance(p, dict):
        ip, host = p.get("host_ip"), p.get("published")
        target, proto = p["target"], p.get("protocol", "tcp")
    else:
        p = str(p)
        proto = "tcp"
        if "/" in p:
            p, proto = p.rsplit("/", 1)
        parts = p.split(":")
        ip = host = None
        if len(parts) == 3:
            ip, host, target = parts
        elif len(parts) == 2:
            host, target = parts
        else:
            (target,) = parts
    out = ""
    if ip:
        out += f"{ip}:"
    if host not in (None, ""):
        out += f"{host}:"
    elif ip:
        out += ":"
    return f"{out}{target}/{proto}"


class Project:
    def __init__(self, root, cfg, rendered):
        self.root = os.path.realpath(root)
        self.cfg = cfg
        self.project = rendered["project"]
        self.res = {(r["kind"], r["metadata"]["name"]): r for r in rendered["resources"]}
        self.services = cfg.get("services", {})

    def container(self, svc):
        return self.services[svc].get("container_name", svc)

    def replicas(self, svc):
        s = self.services[svc]
        n = (s.get("deploy") or {}).get("replicas", s.get("scale"))
        return 1 if n is None else int(n)

    def containers(self, svc):
        """The service's containers in hawser: one named as the service, or NAME-1..NAME-N."""
        n = self.replicas(svc)
        base = self.container(svc)
        return [base] if n == 1 else [f"{base}-{i}" for i in range(1, n + 1)]

    def network(self, key):
        spec = (self.cfg.get("networks") or {}).get(key) or {}
        if spec.get("name"):
            return spec["name"]
        return f"{self.project}-default" if key == "default" else key

    def volume(self, key):
        spec = (self.cfg.get("volumes") or {}).get(key) or {}
        return spec.get("name") or key

    def rel(self, path):
        """A host path of the project folder as a path of the repository, else None."""
        real = os.path.normpath(path)
        if real == self.root:
            return "."
        if real.startswith(self.root + "/"):
            return real[len(self.root) + 1:]
        return None

    def mount(self, v, svc):
        """A compose volume as (kind, source, target, read_only or None when not said)."""
        if isinstance(v, dict):
            ty, src, tgt = v.get("type", "volume"), v.get("source"), v["target"]
            ro = v.get("read_only")
        else:
            parts = v.split(":")
            if len(parts) == 1:
                ty, src, tgt, ro = "volume", None, parts[0], None
            else:
                src, tgt = parts[0], parts[1]
                mode = parts[2] if len(parts) > 2 else ""
                ro = True if "ro" in mode.split(",") else None
                ty = "bind" if src.startswith(("/", ".", "~")) else "volume"
        if ty == "tmpfs":
            return ("tmpfs", None, tgt, None)
        if ty == "bind":
            rel = self.rel(os.path.join(self.root, src) if not src.startswith("/") else src)
            if rel is not None:
                kind = "repo" if os.path.exists(os.path.join(self.root, rel)) else "data"
                return (kind, rel, tgt, ro)
            return ("bind", src, tgt, ro)
        if src is None:
            return ("anonymous", None, tgt, ro)
        return ("volume", self.volume(src), tgt, ro)


def hawser_mount(m, state_dir, project):
    ty = m["type"]
    ro = m.get("readOnly", False)
    if ty == "repo":
        return ("repo", m["path"], m["target"], ro)
    if ty == "bind":
        data = os.path.join(state_dir, "data", project) + "/"
        if m["source"].startswith(data):
            return ("data", m["source"][len(data):], m["target"], ro)
        return ("bind", m["source"], m["target"], ro)
    if ty == "volume":
        if "-anon-" in m["source"]:
            return ("anonymous", None, m["target"], ro)
        return ("volume", m["source"], m["target"], ro)
    if ty == "tmpfs":
        return ("tmpfs", None, m["target"], None)
    return (ty, m.get("file"), m["target"], ro)


def compare(hawser, root, state_dir):
    cfg = compose_config(root)
    rendered = hawser_render(hawser, root, state_dir)
    p = Project(root, cfg, rendered)
    profiles = {x for x in os.environ.get("COMPOSE_PROFILES", "").split(",") if x}
    problems = []
    checked = 0

    def differ(svc, what, compose, ours):
        problems.append(f"{svc}: {what}:\n    docker-compose: {compose!r}\n    hawser:         {ours!r}")

    for svc, s in sorted(p.services.items()):
        if s.get("profiles") and not profiles.intersection(s["profiles"]):
            if ("Container", p.container(svc)) in p.res:
                problems.append(f"{svc}: deployed although its profiles are not active")
            continue
        names = p.containers(svc)
        missing = [n for n in names if ("Container", n) not in p.res]
        if missing:
            problems.append(f"{svc}: no Container {', '.join(f'`{n}`' for n in missing)} in hawser render")
            continue
        if not names:
            continue
        c = p.res[("Container", names[0])]
        checked += 1
        spec = c["spec"]
        # Image, or the build it comes from.
        if "build" in s:
            b = s["build"] if isinstance(s["build"], dict) else {"context": s["build"]}
            img = next((r for (k, _), r in p.res.items() if k == "Image" and r["spec"]["ref"] == spec["image"]), None)
            if img is None or "build" not in img["spec"]:
                differ(svc, "build", b, spec["image"])
            else:
                ours = img["spec"]["build"]
                theirs = {
                    "context": p.rel(b["context"]),
                    "dockerfile": b.get("dockerfile"),
                    "args": {k: str(v) for k, v in (b.get("args") or {}).items() if v is not None},
                    "target": b.get("target"),
                }
                mine = {
                    "context": ours["context"],
                    "dockerfile": ours.get("dockerfile"),
                    "args": ours.get("args", {}),
                    "target": ours.get("target"),
                }
                if theirs["dockerfile"] == "Dockerfile" and mine["dockerfile"] is None:
                    mine["dockerfile"] = "Dockerfile"
                if theirs != mine:
                    differ(svc, "build", theirs, mine)
                if s.get("image") and img["metadata"]["name"] != s["image"]:
                    differ(svc, "image (the build's tag)", s["image"], img["metadata"]["name"])
        elif spec["image"] != s.get("image"):
            # A built image run by another service: its name is the tag, its ref the build's.
            img = p.res.get(("Image", s.get("image")))
            if img is None or img["spec"]["ref"] != spec["image"]:
                differ(svc, "image", s.get("image"), spec["image"])
        for key, ours in (("command", "command"), ("entrypoint", "entrypoint")):
            if words(s.get(key)) != spec.get(ours):
                differ(svc, key, words(s.get(key)), spec.get(ours))
        env = {k: str(v) for k, v in (s.get("environment") or {}).items() if v is not None}
        if env != spec.get("env", {}):
            differ(svc, "environment", env, spec.get("env", {}))
        ports = sorted(port_text(x) for x in s.get("ports", []))
        if ports != sorted(spec.get("ports", [])):
            differ(svc, "ports", ports, sorted(spec.get("ports", [])))
        # Volumes; secrets and configs are mounts too in hawser, compared by target below.
        theirs = sorted((p.mount(v, svc) for v in s.get("volumes", [])), key=lambda m: m[2])
        theirs += [("tmpfs", None, t, None) for t in ([s["tmpfs"]] if isinstance(s.get("tmpfs"), str) else s.get("tmpfs", []))]
        special = set()
        for kind, default in (("secrets", "/run/secrets/{}"), ("configs", "/{}")):
            for u in s.get(kind, []):
                u = {"source": u} if isinstance(u, str) else u
                t = u.get("target") or u["source"]
                special.add(t if t.startswith("/") else default.format(t))
        ours_all = [hawser_mount(m, state_dir, p.project) for m in spec.get("volumes", [])]
        mine = sorted((m for m in ours_all if m[2] not in special), key=lambda m: m[2])
        theirs = sorted(theirs, key=lambda m: m[2])
        # Read-only: compose's default is writable; a repository file is read-only unless the
        # compose file says otherwise (a documented difference), so only a said `ro` must agree.
        def shape(ms, ours):
            return [(k, s_, t) for (k, s_, t, _) in ms]
        if shape(theirs, False) != shape(mine, True):
            differ(svc, "volumes", theirs, mine)
        else:
            for a, b in zip(theirs, mine):
                if a[3] is True and not b[3]:
                    differ(svc, f"read-only of {a[2]}", a, b)
                if a[0] == "data" and a[3] is None and b[3]:
                    differ(svc, f"a data folder at {a[2]} must be writable", a, b)
        found = sorted(t for t in special if t not in {m[2] for m in ours_all})
        if found:
            differ(svc, "secrets and configs mounted", sorted(special), sorted(m[2] for m in ours_all))
        # Networks.
        if "network_mode" in s:
            mode = s["network_mode"]
            if mode.startswith("service:"):
                mode = "container:" + p.container(mode[len("service:"):])
            if spec.get("networkMode", "bridge") != mode:
                differ(svc, "network_mode", mode, spec.get("networkMode"))
        else:
            nets = s.get("networks") or {"default": None}
            # Compose always answers to the service's name on its networks (an alias it adds when
            # it creates the container, not printed by `config`); hawser writes it down where
            # the container is named otherwise.
            implicit = [svc] if names[0] != svc else []
            theirs = {p.network(k): sorted(set(((v or {}).get("aliases") or []) + implicit)) for k, v in nets.items()}
            mine = {k: sorted(v.get("aliases", [])) for k, v in spec.get("networks", {}).items()}
            if theirs != mine:
                differ(svc, "networks", theirs, mine)
        # Dependencies (links start their target first in hawser, as in compose v2).
        cond = {"service_started": "started", "service_healthy": "healthy",
                "service_completed_successfully": "completed"}
        deps = s.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        theirs = {n: cond[v.get("condition", "service_started")] for d, v in deps.items() for n in p.containers(d)}
        for link in s.get("links", []):
            theirs.setdefault(p.containers(link.split(":")[0])[0], "started")

        if theirs != spec.get("dependsOn", {}):
            differ(svc, "depends_on", theirs, spec.get("dependsOn", {}))
        # volumes_from: the source's container, read-only where said (`service:NAME[:MODE]`).
        froms = []
        for source in s.get("volumes_from", []):
            parts = source.split(":")
            kind, name, mode = (parts[0], parts[1], parts[2:]) if parts[0] in ("service", "container") else ("service", parts[0], parts[1:])
            target = p.containers(name)[0] if kind == "service" else name
            froms.append(":".join([target] + [m for m in mode if m != "rw"] + (["rw"] if "rw" in mode else [])))
        if froms != spec.get("volumesFrom", []):
            differ(svc, "volumes_from", froms, spec.get("volumesFrom", []))
    if checked == 0:
        problems.append("no service was compared")
    return problems


def main():
    hawser, root, state_dir = sys.argv[1:4]
    problems = compare(hawser, root, state_dir)
    for x in problems:
        print(f"{os.path.basename(root.rstrip('/'))}: {x}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
