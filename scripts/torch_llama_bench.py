"""PyTorch eager reference for scripts/performance.sh: one process, the same Llama shapes as
`picotron bench` (tiny, smollm-135m), float32, forward + backward + AdamW on random token ids.
Prints one JSON line: {"preset", "tokens_per_second", "threads", "torch"}.
    python3 scripts/torch_llama_bench.py --preset tiny --batch 4 --grad-acc 2 --seq-len 256 --threads 2
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # vocab, hidden, intermediate, layers, heads, kv heads, tied
    "tiny": (4096, 256, 688, 8, 8, 4, False),
    "smollm-135m": (49152, 576, 1536, 30, 9, 3, True),
}


class Layer(nn.Module):
    def __init__(self, c, i, nh, nkv):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, c // nh
        self.n1, self.n2 = nn.RMSNorm(c, eps=1e-5), nn.RMSNorm(c, eps=1e-5)
        self.qkv = nn.ModuleList(nn.Linear(c, n * self.hd, bias=False) for n in (nh, nkv, nkv))
        self.o = nn.Linear(c, c, bias=False)
        self.gate, self.up, self.down = nn.Linear(c, i, bias=False), nn.Linear(c, i, bias=False), nn.Linear(i, c, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        h = self.n1(x)
        q, k, v = (p(h).view(b, t, n, self.hd).transpose(1, 2) for p, n in zip(self.qkv, (self.nh, self.nkv, self.nkv)))
        def rotate(z):
            z1, z2 = z[..., : self.hd // 2], z[..., self.hd // 2:]
            return z * cos + torch.cat((-z2, z1), -1) * sin
        q, k = rotate(q), rotate(k)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, -1))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, v, c, i, layers, nh, nkv, tied):
        super().__init__()
        self.embed = nn.Embedding(v, c)
        self.layers = nn.ModuleList(Layer(c, i, nh, nkv) for _ in range(layers))
        self.norm = nn.RMSNorm(c, eps=1e-5)
        self.head = nn.Linear(c, v, bias=False)
        if tied:
            self.head.weight = self.embed.weight
        hd = c // nh
        self.inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))

    def forward(self, ids, targets):
        t = ids.shape[1]
        f = torch.outer(torch.arange(t).float(), self.inv)
        cos, sin = torch.cat((f, f), -1).cos(), torch.cat((f, f), -1).sin()
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny", choices=PRESETS)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--grad-acc", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    v = PRESETS[a.preset][0]
    model = Llama(*PRESETS[a.preset])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for step in range(a.steps + 1):   # the first step warms up
        start = time.perf_counter()
        for _ in range(a.grad_acc):
            ids = torch.randint(0, v, (a.batch, a.seq_len + 1))
            (model(ids[:, :-1], ids[:, 1:]) / a.grad_acc).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    tokens = a.batch * a.grad_acc * a.seq_len
    print(json.dumps({"preset": a.preset, "tokens_per_second": tokens / times[len(times) // 2],
                      "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
