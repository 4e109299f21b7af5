"""Running commands for the benchmark scripts: `sh` (stop the benchmark on failure unless told
not to) and `timed` (seconds, or None for a failed run), both in the benchmark's environment."""
import subprocess, sys, time


def runners(env):
    """`sh` and `timed` that run commands with `env`."""

    def sh(cmd, check=True, cwd=None):
        r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
        return r

    def timed(cmd, cwd=None):
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=600)
        if r.returncode != 0:
            print(f"failed: {' '.join(cmd)}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}", file=sys.stderr)
            return None
        return time.perf_counter() - t

    return sh, timed
