# PyTorch's side of bench/gpu/fusion_h200.mjs: the fusion lab's training step (embedding, L post-norm causal
# TransformerEncoderLayers with relu and no dropout, a linear head, cross-entropy, AdamW lr 3e-3) in f32 (TF32 off),
# eager and under torch.compile, at the sizes given; CUDA-event medians (torch_timing.py). Prints one JSON line:
#   {"torch": version, "device": name, "rows": [{"size": {...}, "mode": "eager" | "compile", "ms": ..., "loss": ...}]}
# Usage: python3 bench/gpu/torch_fusion.py '[{"L": 2, "E": 32, "B": 4, "T": 16, "H": 4, "FF": 64, "V": 67}, ...]'
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from torch_timing import timeit  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
rows = []
for size in json.loads(sys.argv[1]):
    L, E, B, T, H, FF, V = (size[k] for k in ("L", "E", "B", "T", "H", "FF", "V"))
    for mode in ("eager", "compile"):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(V, E).cuda()
        layers = torch.nn.ModuleList([torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True) for _ in range(L)]).cuda()
        head = torch.nn.Linear(E, V).cuda()
        params = [*emb.parameters(), *layers.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=3e-3)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(T, device="cuda")
        ids = torch.tensor([(i * 7 + 3) % V for i in range(B * T)], device="cuda")
        tokens = ids.view(B, T)
        targets = torch.roll(ids, -1)

        def step():
            opt.zero_grad(set_to_none=True)
            h = emb(tokens)
            for layer in layers:
                h = layer(h, src_mask=mask, is_causal=True)
            loss = torch.nn.functional.cross_entropy(head(h).reshape(B * T, V), targets)
            loss.backward()
            opt.step()
            return loss

        fn = torch.compile(step) if mode == "compile" else step
        try:
            ms = timeit(fn)
            rows.append({"size": size, "mode": mode, "ms": ms, "loss": float(fn().item())})
        except Exception as e:  # torch.compile may be unavailable (no triton): say so, keep the eager row
            rows.append({"size": size, "mode": mode, "error": f"{type(e).__name__}: {e}"[:300]})
print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}))
