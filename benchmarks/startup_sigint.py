"""A Ctrl-C during start-up while one other training run loads both cores: time to the status line and to exit.

    python benchmarks/startup_sigint.py     # 4 tries; prints one line each
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "tests")
load = subprocess.Popen([sys.executable, "-m", "pacer", "train", "--total-steps", "10000000000", "--no-progress",
                         "--run-dir", tempfile.mkdtemp() + "/load"], start_new_session=True,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(12)
try:
    for i in range(4):
        d = tempfile.mkdtemp()
        p = subprocess.Popen([sys.executable, "-m", "pacer", "train", "--run-dir", d + "/r", "--no-progress",
                              "--envs-per-worker", "4", "--total-steps", "100000000"], start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        line = ""
        while "workers on local processes" not in line:
            line = p.stderr.readline()
        t1 = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=120)
        print(f"try {i}: status line after {t1 - t0:.1f} s, exit {p.returncode} {time.monotonic() - t1:.1f} s "
              f"after Ctrl-C, load {os.getloadavg()[0]:.1f}", flush=True)
finally:
    os.killpg(load.pid, signal.SIGINT)
    load.wait(timeout=60)
