import json, os, torch
from safetensors.torch import load_file, save_file
t = load_file('bench/gpu/interop/kiln.safetensors')
want = json.load(open('bench/gpu/interop/kiln_values.json'))
for n, v in want.items():
    got = t[n]
    ref = torch.tensor(v['data'], dtype=got.dtype).reshape(v['shape'])
    assert list(got.shape) == v['shape'], n
    assert torch.equal(got, ref), n
    print('torch read', n, got.dtype, tuple(got.shape), 'identical')
mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
torch.manual_seed(0)
sd = {k: v.detach().contiguous() for k, v in mha.state_dict().items()}
sd['ids'] = torch.tensor([5, -7, 9], dtype=torch.int32)
save_file(sd, os.path.join(os.environ['OUT'], 'torch.safetensors'))
json.dump({k: {'shape': list(v.shape), 'data': v.flatten().tolist()} for k, v in sd.items()}, open(os.path.join(os.environ['OUT'], 'torch_values.json'), 'w'))
x = torch.randn(2, 5, 8)
y, _ = mha(x, x, x, need_weights=False)
json.dump({'x': x.flatten().tolist(), 'y': y.detach().flatten().tolist()}, open(os.path.join(os.environ['OUT'], 'torch_mha.json'), 'w'))
print('torch wrote torch.safetensors and an MHA forward')
