# PyTorch float32 scaled_dot_product_attention and matmul on the same shapes as attention_h100.mjs,
# checked against a float64 computation before timing. TF32 is off so that float32 means float32.
import json, os, sys, torch
import torch.nn.functional as F
from torch_timing import timeit

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = 'cuda'
quick = '--quick' in sys.argv
print('torch', torch.__version__, torch.cuda.get_device_name(0))


rows = []
Ns = [1024, 4096] if quick else [512, 1024, 2048, 4096, 8192, 16384]
for D in (64, 128):
    for causal in (False, True):
        for N in Ns:
            B, H = (1 if N >= 8192 else 4), 8
            q, k, v = (torch.randn(B, H, N, D, device=dev, requires_grad=True) for _ in range(3))
            if N <= 1024:
                ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal)
                err = ((F.scaled_dot_product_attention(q, k, v, is_causal=causal).double() - ref).abs().max() / ref.abs().max().clamp(min=1)).item()
                assert err < 1e-4, err
            flops = 4 * B * H * N * N * D * (0.5 if causal else 1)
            with torch.no_grad():
                fwd = timeit(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
            def fb():
                o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                o.sum().backward()
                q.grad = k.grad = v.grad = None
            fwdbwd = timeit(fb)
            rows.append(dict(B=B, H=H, N=N, D=D, causal=causal, fwdMs=fwd, fwdBwdMs=fwdbwd, fwdTflops=flops / fwd / 1e9))
            print(f'torch B={B} H={H} N={N} D={D} causal={causal}: fwd {fwd:.3f} ms ({flops / fwd / 1e9:.2f} TFLOP/s) fwd+bwd {fwdbwd:.3f} ms')
mm = []
for n in (1024, 4096):
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    t = timeit(lambda: a @ b)
    mm.append(dict(n=n, ms=t, tflops=2 * n ** 3 / t / 1e9))
    print(f'torch matmul {n}^3 f32 (no TF32): {t:.3f} ms, {2 * n ** 3 / t / 1e9:.2f} TFLOP/s')
json.dump(dict(torch=torch.__version__, rows=rows, matmul=mm), open(os.path.join(os.environ.get('OUT', '/tmp'), 'torch_h100.json'), 'w'), indent=1)
