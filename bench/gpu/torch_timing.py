# CUDA-event timing shared by the PyTorch comparison scripts: grows the batch of calls until it takes 100 ms
# (or 200 calls), then returns the median per-call time in ms of `reps` batches.
import torch


def timeit(fn, reps=5):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    iters = 1
    while True:
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters): fn()
        e.record(); torch.cuda.synchronize()
        if s.elapsed_time(e) > 100 or iters >= 200: break
        iters *= 4
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(iters): fn()
        e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / iters)
    ts.sort()
    return ts[len(ts) // 2]
