# PyTorch float16 scaled_dot_product_attention (its fused CUDA kernels, tensor cores) on the shapes of
# attention_variants.mjs, checked against float64 before timing: the comparison for kiln's f16 column.
import json, os, torch
import torch.nn.functional as F
from torch_timing import timeit

dev = 'cuda'
print('torch', torch.__version__, torch.cuda.get_device_name(0))


# check first: f16 inputs, float64 reference on the same (rounded) values
q, k, v = (torch.randn(2, 4, 257, 64, device=dev, dtype=torch.float16) for _ in range(3))
want = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
err = ((F.scaled_dot_product_attention(q, k, v, is_causal=True).double() - want).abs() / want.abs().clamp(min=1)).max().item()
print(f'check f16 causal [2,4,257,64]: max rel err {err:.2e}')
assert err < 2e-3

rows = []
for N, D, causal in [(1024, 64, False), (4096, 64, False), (4096, 64, True), (4096, 128, False), (4096, 128, True), (2048, 256, False)]:
    B, H = 4, 8
    q, k, v = (torch.randn(B, H, N, D, device=dev, dtype=torch.float16, requires_grad=True) for _ in range(3))
    fwd = timeit(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    def fb():
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        o.float().sum().backward()
        q.grad = k.grad = v.grad = None
    fwdbwd = timeit(fb)
    rows.append({'B': B, 'H': H, 'N': N, 'D': D, 'causal': causal, 'fwdMs': fwd, 'fwdBwdMs': fwdbwd})
    print(f'torch f16 B={B} H={H} N={N} D={D} causal={causal}: fwd {fwd:.3f} ms fwd+bwd {fwdbwd:.3f} ms')
json.dump({'torch': torch.__version__, 'rows': rows}, open(os.path.join(os.environ.get('OUT', '/tmp'), 'torch_f16.json'), 'w'), indent=1)
