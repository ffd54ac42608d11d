"""What one gradient all-reduce costs a Ray group on this machine, alone and between minibatch-sized computations.

    python benchmarks/allreduce.py [--floats 10000] [--work 40] [--iters 500] [--pairs 2]

Two processes on loopback (gloo through torch.distributed, as the Ray backend's members use it). 'back to back':
all-reduces one after another; 'interleaved': each after ~0.5 ms of matrix products (`--work` of them), as in
learning, where a member that arrives first waits for its peer. Prints per-iteration time, the compute alone, and
the difference (the all-reduce's cost), for each pair of runs (alternating).
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def compute(steps: int) -> None:
    x = torch.randn(64, 64)
    for _ in range(steps):
        x = torch.tanh(x @ x * 0.01)


def member(rank: int, port: int, floats: int, work: int, iters: int, interleaved: bool, out: mp.Queue) -> None:
    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    store = dist.TCPStore("127.0.0.1", port, is_master=rank == 0, world_size=2,
                          timeout=datetime.timedelta(seconds=30))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=2)
    grads = torch.randn(floats)
    for _ in range(50):
        dist.all_reduce(grads)
    computing = 0.0
    start = time.perf_counter()
    for _ in range(iters):
        if interleaved:
            tic = time.perf_counter()
            compute(work)
            computing += time.perf_counter() - tic
        dist.all_reduce(grads)
    total = time.perf_counter() - start
    if rank == 0:
        out.put((total / iters * 1e3, computing / iters * 1e3))
    dist.destroy_process_group()


def measure(interleaved: bool, floats: int, work: int, iters: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = random.randint(20000, 60000)
    procs = [ctx.Process(target=member, args=(rank, port, floats, work, iters, interleaved, out)) for rank in range(2)]
    for proc in procs:
        proc.start()
    result = out.get(timeout=120)
    for proc in procs:
        proc.join(timeout=30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floats", type=int, default=10_000)
    parser.add_argument("--work", type=int, default=40)
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.pairs):
        for mode in ("back to back", "interleaved"):
            per_iter, computing = measure(mode == "interleaved", args.floats, args.work, args.iters)
            print(f"{mode:>12}: {per_iter:.3f} ms per iteration, compute {computing:.3f} ms, all-reduce "
                  f"{per_iter - computing:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
