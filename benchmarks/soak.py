"""Repeated-fault and endurance runs for the supervised runtime (`make soak`); results go to benchmarks/results/.

    python benchmarks/soak.py kills 20        # one run, a random worker SIGKILLed 20 times
    python benchmarks/soak.py cycles 200      # 200 start/stop cycles of local workers in one Python process
    python benchmarks/soak.py soak 30         # one 30-minute run, sampling memory and descriptors

Each prints one JSON record with its counts and writes it to benchmarks/results/soak-<mode>-<time>.json.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from faults import Run  # noqa: E402 - the fault-injection helpers of the tests
from leftovers import session_processes, shm_and_tmp  # noqa: E402


def rss_and_fds(pids: list[int]) -> tuple[int, int]:
    rss = fds = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return rss, fds


def kills(n: int, out: Path) -> dict[str, Any]:
    run = Run(out / "kills", "--total-steps", "1000000000", "--set", f"runtime.max_restarts={n + 5}", "--set",
              "runtime.stop_at_return=null")
    run.wait_for_steps(5000)
    detect: list[float] = []
    for i in range(n):
        time.sleep(random.uniform(2.0, 4.0))
        victim = random.choice(run.workers())
        seen_before = sum("died with signal SIGKILL" in line for _, line in run.lines)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while sum("died with signal SIGKILL" in line for _, line in run.lines) == seen_before:
            if time.monotonic() - killed > 30:
                raise RuntimeError(f"kill {i + 1} was not detected within 30 s")
            time.sleep(0.01)
        detect.append(time.monotonic() - killed)
        run.wait_for_line("restarting worker")
    run.signal(signal.SIGINT)
    try:
        code = run.proc.wait(30)
    except subprocess.TimeoutExpired:  # record where it hangs, then end it
        stacks = subprocess.run(["py-spy", "dump", "--pid", str(run.proc.pid)], capture_output=True, text=True)
        print(stacks.stdout, stacks.stderr, file=sys.stderr)
        code = run.wait(0.1)
    run.reader.join(timeout=5)
    procs, files = run.leftovers(settle=10)
    return {"kills": n, "detected": len(detect), "restarts": sum("restarting worker" in line for _, line in run.lines),
            "detect_s_median": round(statistics.median(detect), 3), "detect_s_max": round(max(detect), 3),
            "exit_code": code, "leftover_processes": procs, "leftover_files": sorted(files)}


def cycles(n: int, out: Path) -> dict[str, Any]:
    code = f"""
import json, os, sys, time
sys.path.insert(0, {str(ROOT / 'tests')!r})
import pacer
from leftovers import shm_and_tmp
def fds(): return len(os.listdir('/proc/self/fd'))
def rss(): return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) * 1024
cfg = lambda i: {{'runtime': {{'workers': 2, 'total_steps': 500, 'eval_every': 0, 'final_eval_episodes': 0}},
                 'env': {{'envs_per_worker': 2}},
                 'log': {{'run_dir': {str(out)!r} + f'/c{{i}}', 'progress': False, 'tensorboard': False}}}}
pacer.train(cfg(-1))
base_fds, base_rss, before = fds(), rss(), shm_and_tmp()
times = []
for i in range({n}):
    t = time.monotonic(); pacer.train(cfg(i)); times.append(time.monotonic() - t)
print(json.dumps({{'cycles': {n}, 'fds_before': base_fds, 'fds_after': fds(), 'rss_before': base_rss,
                  'rss_after': rss(), 'cycle_s_median': sorted(times)[len(times) // 2],
                  'new_shm_or_pymp': sorted(p for p in shm_and_tmp() - before if not p.startswith('/tmp/pymp-'))}}))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    stdout, _ = proc.communicate()
    record = json.loads(stdout.strip().splitlines()[-1])
    time.sleep(1.0)
    record["leftover_processes_after_exit"] = session_processes(proc.pid)
    return record


def soak(minutes: float, out: Path) -> dict[str, Any]:
    before = shm_and_tmp()
    run = Run(out / "soak", "--total-steps", "1000000000000", "--time-limit", str(minutes * 60),
              "--set", "runtime.eval_every=500000", "--set", "log.checkpoint_every=2000000",
              "--set", "runtime.stop_at_return=null")
    samples = []
    start = time.monotonic()
    while run.proc.poll() is None:
        pids = [pid for pid, state in session_processes(run.proc.pid) if state != "Z"]
        rss, fds = rss_and_fds(pids)
        samples.append({"t": round(time.monotonic() - start, 1), "processes": len(pids), "rss": rss, "fds": fds})
        time.sleep(30)
    code = run.wait(60)
    procs, files = run.leftovers(settle=10)
    summary = json.loads((run.run_dir / "summary.json").read_text()) if code == 0 else {}
    steady = [s for s in samples if s["t"] >= 60] or samples
    return {"minutes": minutes, "exit_code": code, "env_steps": summary.get("env_steps"),
            "rss_first": steady[0]["rss"], "rss_last": steady[-1]["rss"], "rss_max": max(s["rss"] for s in steady),
            "fds_first": steady[0]["fds"], "fds_last": steady[-1]["fds"], "samples": samples,
            "leftover_processes": procs, "leftover_files": sorted(files - before)}


def main() -> None:
    mode, amount = sys.argv[1], float(sys.argv[2])
    sys.path.insert(0, str(ROOT / "src"))
    from pacer.bench.record import git_commit

    commit = git_commit()  # before this run writes anything
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "runs" / f"soak-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    record = {"kills": kills, "cycles": cycles, "soak": soak}[mode](int(amount) if mode != "soak" else amount, out)
    record.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpus=os.cpu_count(), commit=commit,
                  command=f"python benchmarks/soak.py {mode} {sys.argv[2]}")
    path = ROOT / "benchmarks" / "results" / f"soak-{mode}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "samples"}))


if __name__ == "__main__":
    main()
