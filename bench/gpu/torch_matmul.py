# PyTorch's torch.matmul on the shapes bench/gpu/matmul_h200.mjs times, in the same call: f32 with TF32 off (true f32),
# f32 with TF32 on, and f16 (tensor cores); CUDA-event medians (torch_timing.py). Prints one JSON line:
#   {"torch": version, "device": name, "rows": [{"shape": [M, K, N], "dtype": "f32" | "tf32" | "f16", "ms": ...}]}
# Usage: python3 bench/gpu/torch_matmul.py '[[4096, 4096, 4096], ...]'
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from torch_timing import timeit  # noqa: E402

shapes = json.loads(sys.argv[1])
rows = []
for M, K, N in shapes:
    for dtype in ("f32", "tf32", "f16"):
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        t = torch.float16 if dtype == "f16" else torch.float32
        a = torch.randn(M, K, device="cuda", dtype=t)
        b = torch.randn(K, N, device="cuda", dtype=t)
        rows.append({"shape": [M, K, N], "dtype": dtype, "ms": timeit(lambda: torch.matmul(a, b))})
        del a, b
torch.backends.cuda.matmul.allow_tf32 = False
print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}))
