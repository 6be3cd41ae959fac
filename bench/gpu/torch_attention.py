# PyTorch's scaled_dot_product_attention on the shapes bench/gpu/attention_h200.mjs times, in the same call: f16 and
# f32 (TF32 off), forward and forward+backward, CUDA-event medians (torch_timing.py). Prints one JSON line:
#   {"torch": version, "device": name, "rows": [{"shape": [B, H, N, D], "causal": bool, "dtype": "f16" | "f32",
#    "fwdMs": ..., "fwdBwdMs": ...}]}
# Usage: python3 bench/gpu/torch_attention.py '[[[4, 8, 4096, 64], false], ...]'
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_timing import timeit  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cases = json.loads(sys.argv[1])
rows = []
for shape, causal in cases:
    for dtype in ("f16", "f32"):
        t = torch.float16 if dtype == "f16" else torch.float32
        q, k, v = (torch.randn(*shape, device="cuda", dtype=t, requires_grad=True) for _ in range(3))
        fwd = timeit(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))

        def fb():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            o.float().sum().backward()
            q.grad = k.grad = v.grad = None

        rows.append({"shape": shape, "causal": causal, "dtype": dtype, "fwdMs": fwd, "fwdBwdMs": timeit(fb)})
        del q, k, v
print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}))
