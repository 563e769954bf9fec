#!/usr/bin/env python3
"""Generate small reference fixtures from Hugging Face transformers' LlamaForCausalLM.

What it makes
-------------
The Swift tests (Tests/LlamaTests) compare our Llama against transformers without
needing Python at test time. This script writes, by default into
Tests/LlamaTests/Fixtures/:

  <case>/config.json         model.save_pretrained(dir): the Hugging Face config
  <case>/model.safetensors   model.save_pretrained(dir): float32 weights (in the tied
                             case lm_head.weight is NOT stored: it is embed_tokens)
  <case>/batch.safetensors   input_ids int64 [B,T], labels int64 [B,T] (B=2, T=12;
                             labels = input_ids with 3 positions set to -100)
  <case>/expected.safetensors  float32:
                               logits [B,T,V]
                               loss   [1]   (the model's own loss from labels=...)
                               grad.<name>  for every name of model.named_parameters()
                               adamw.<name> the parameter after ONE torch.optim.AdamW
                                            step on those gradients
  <case>/hyper.json          the AdamW hyperparameters (lr, beta1, beta2, eps, weight_decay)
  dtypes.safetensors         x.f32 / x.bf16 / x.f16 [3,5] and x.bf16.widened /
                             x.f16.widened (float32 of the bf16/f16 values, as torch widens)
  README.md                  versions, command, float32-vs-float64 error numbers

for <case> in {tied, untied}. It also runs the same forward/backward/AdamW step in
float64 from the same weights and reports the float32-vs-float64 error, so tests
can choose tolerances with a reason.

How to run
----------
From the repository root:

  python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt \
      && .venv/bin/python scripts/make_fixtures.py

Other uses:

  # a model directory the tests never saw (e.g. for `picotron reference`):
  .venv/bin/python scripts/make_fixtures.py --out /tmp/m --seed 7 --case untied
  picotron reference --model /tmp/m --batch /tmp/m/batch.safetensors

  # both cases under a new root (DIR/tied, DIR/untied, DIR/dtypes.safetensors, DIR/README.md):
  .venv/bin/python scripts/make_fixtures.py --out DIR --seed 3 --case both

With --case tied|untied the files go straight into --out; with --case both they go
into --out/tied and --out/untied. The output is deterministic for a given seed
(and given torch/transformers versions).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file, load_file
from transformers import LlamaConfig, LlamaForCausalLM

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "LlamaTests" / "Fixtures"

B, T = 2, 12
# (row, col) positions of labels set to -100. labels[:, 0] is never a target
# (the loss shifts labels left by one), so all three of these really mask a target:
# two in the middle of a row and one at the very end of a row.
IGNORED = [(0, 5), (1, 3), (1, T - 1)]

HYPER = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}

CASES = {
    "tied": dict(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    ),
    "untied": dict(
        vocab_size=64,
        hidden_size=24,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=8,  # deliberately NOT hidden_size / num_attention_heads (= 4)
        rms_norm_eps=1e-6,
        rope_theta=500000.0,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    ),
}
CASE_INDEX = {"tied": 0, "untied": 1}


def transformers_major() -> int:
    return int(transformers.__version__.split(".")[0])


def make_config(spec: dict) -> LlamaConfig:
    spec = dict(spec)
    theta = spec.pop("rope_theta")
    common = dict(
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        initializer_range=0.02,
        use_cache=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    if transformers_major() >= 5:
        cfg = LlamaConfig(**spec, **common, rope_parameters={"rope_type": "default", "rope_theta": theta})
    else:
        cfg = LlamaConfig(**spec, **common, rope_theta=theta, rope_scaling=None)
    cfg._attn_implementation = "eager"
    return cfg


def build_model(spec: dict, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = make_config(spec)
    try:
        model = LlamaForCausalLM._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    except TypeError:
        model = LlamaForCausalLM(cfg)
    model = model.float()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    # Re-draw the weights so the test is meaningful: attention far from uniform,
    # gradients not tiny. named_parameters() yields a tied lm_head/embed once.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                assert p.dim() == 2, name  # Linear or Embedding weight, no biases
                p.normal_(0.0, 0.15)
    if spec["tie_word_embeddings"]:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    else:
        assert model.lm_head.weight is not model.model.embed_tokens.weight
    model.train()  # dropout is 0 anyway; train() like a real pre-training step
    return model


def make_batch(vocab: int, seed: int):
    g = torch.Generator().manual_seed(seed + 12345)
    input_ids = torch.randint(0, vocab, (B, T), generator=g, dtype=torch.int64)
    labels = input_ids.clone()
    for r, c in IGNORED:
        labels[r, c] = -100
    return input_ids, labels


def forward_backward(model, input_ids, labels):
    model.zero_grad(set_to_none=True)
    out = model(input_ids=input_ids, labels=labels, use_cache=False)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return out.logits.detach().clone(), out.loss.detach().clone(), grads


def adamw_step(params: dict, grads: dict) -> dict:
    """One torch.optim.AdamW step on copies of `params` (name -> tensor); returns the new values."""
    names, copies = [], []
    for n, p in params.items():
        q = p.detach().clone().requires_grad_(True)
        q.grad = grads[n].detach().clone()
        names.append(n)
        copies.append(q)
    opt = torch.optim.AdamW(
        copies,
        lr=HYPER["lr"],
        betas=(HYPER["beta1"], HYPER["beta2"]),
        eps=HYPER["eps"],
        weight_decay=HYPER["weight_decay"],
        foreach=False,
        fused=False,
    )
    opt.step()
    return {n: q.detach().clone() for n, q in zip(names, copies)}


def reference_forward(params: dict, spec: dict, input_ids, labels):
    """An independent, plain-torch Llama forward in the dtype of `params` (used in float64).

    transformers' model.double() is not fully float64: LlamaRMSNorm normalises in float32,
    the rotary cos/sin and inv_freq are computed in float32, eager attention's softmax runs
    in float32 and the causal-LM loss upcasts logits with .float(). This function has no
    such islands, so it is the "exact math" that the float32 fixtures are measured against.
    It also spells out the conventions our Swift Llama must follow.
    """
    dt = params["model.embed_tokens.weight"].dtype
    H, nh, nkv, hd = spec["hidden_size"], spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    eps, theta = spec["rms_norm_eps"], spec["rope_theta"]
    Bq, Tq = input_ids.shape

    def rms(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rot_half(x):  # HF/Llama "rotate_half": pairs (i, i + hd/2), not interleaved pairs
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat((-x2, x1), dim=-1)

    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=dt) / hd))
    ang = torch.arange(Tq, dtype=dt)[:, None] * inv_freq[None, :]
    cos = torch.cat((ang.cos(), ang.cos()), -1)  # [T, hd]
    sin = torch.cat((ang.sin(), ang.sin()), -1)
    causal = torch.full((Tq, Tq), float("-inf"), dtype=dt).triu(1)

    E = params["model.embed_tokens.weight"]
    h = E[input_ids]
    for l in range(spec["num_hidden_layers"]):
        P = lambda n: params[f"model.layers.{l}.{n}"]
        x = rms(h, P("input_layernorm.weight"))
        q = (x @ P("self_attn.q_proj.weight").T).view(Bq, Tq, nh, hd).transpose(1, 2)
        k = (x @ P("self_attn.k_proj.weight").T).view(Bq, Tq, nkv, hd).transpose(1, 2)
        v = (x @ P("self_attn.v_proj.weight").T).view(Bq, Tq, nkv, hd).transpose(1, 2)
        q = q * cos + rot_half(q) * sin
        k = k * cos + rot_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)  # query head i uses kv head i // (nh/nkv)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5 + causal, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(Bq, Tq, nh * hd)
        h = h + o @ P("self_attn.o_proj.weight").T
        x = rms(h, P("post_attention_layernorm.weight"))
        g = torch.nn.functional.silu(x @ P("mlp.gate_proj.weight").T) * (x @ P("mlp.up_proj.weight").T)
        h = h + g @ P("mlp.down_proj.weight").T
    h = rms(h, params["model.norm.weight"])
    W = E if spec["tie_word_embeddings"] else params["lm_head.weight"]
    logits = h @ W.T
    loss = manual_loss(logits, labels)
    return logits, loss


def reference_forward_backward(model, spec, input_ids, labels, dtype=torch.float64):
    params = {n: p.detach().to(dtype).clone().requires_grad_(True) for n, p in model.named_parameters()}
    logits, loss = reference_forward(params, spec, input_ids, labels)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items()}
    return params, logits.detach(), loss.detach(), grads


def manual_loss(logits, labels):
    """Cross-entropy as we expect transformers to compute it: shift, mean over targets."""
    lg = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    lb = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(lg, lb, ignore_index=-100, reduction="mean")


def err(a32: torch.Tensor, a64: torch.Tensor):
    """(max abs error, max abs error / max |ref|, max elementwise rel error where |ref| > 1e-3 max|ref|)."""
    a32 = a32.double()
    d = (a32 - a64).abs()
    scale = a64.abs().max().item()
    mask = a64.abs() > 1e-3 * scale
    rel = (d[mask] / a64.abs()[mask]).max().item() if mask.any() else 0.0
    return d.max().item(), d.max().item() / max(scale, 1e-300), rel


def worst(errs):
    return tuple(max(e[i] for e in errs) for i in range(3))


def make_case(case: str, out_dir: Path, seed: int) -> dict:
    spec = CASES[case]
    case_seed = seed + CASE_INDEX[case]
    out_dir.mkdir(parents=True, exist_ok=True)

    model = build_model(spec, case_seed)
    model64 = copy.deepcopy(model).double()  # same weights, transformers in "float64"
    input_ids, labels = make_batch(spec["vocab_size"], case_seed)
    p32 = {n: p.detach() for n, p in model.named_parameters()}

    # 1. the fixtures: transformers in float32
    logits, loss, grads = forward_backward(model, input_ids, labels)
    new_params = adamw_step(p32, grads)
    # 2. transformers after model.double() (keeps float32 islands, see reference_forward)
    logits_hd, loss_hd, grads_hd = forward_backward(model64, input_ids, labels)
    new_hd = adamw_step({n: p.detach() for n, p in model64.named_parameters()}, grads_hd)
    # 3. the independent plain-torch reference in true float64, and the same code in float32
    p64, logits_r, loss_r, grads_r = reference_forward_backward(model, spec, input_ids, labels, torch.float64)
    new_r = adamw_step(p64, grads_r)
    p32r, logits_r32, loss_r32, grads_r32 = reference_forward_backward(model, spec, input_ids, labels, torch.float32)
    new_r32 = adamw_step(p32r, grads_r32)

    # Sanity: transformers' loss == shift-by-one mean cross-entropy over non-ignored targets.
    ml = manual_loss(logits.double(), labels).item()
    assert abs(ml - loss.item()) < 1e-6 * abs(ml), (ml, loss.item())
    n_targets = int((labels[:, 1:] != -100).sum())

    def compare(lg, ls, gr, nw, lg_ref, ls_ref, gr_ref, nw_ref):
        e = {
            "logits": err(lg, lg_ref),
            "loss": err(ls.reshape(1), ls_ref.reshape(1)),
            "grad": worst([err(gr[n], gr_ref[n]) for n in gr]),
            "adamw": worst([err(nw[n], nw_ref[n]) for n in nw]),
        }
        # AdamW step 1 is lr * g/(|g|+eps) ~ lr*sign(g): count update entries that differ by
        # more than 1% of lr (sign flips of tiny gradients).
        bad = 0
        for n in nw:
            p0 = p32[n].double()
            bad += int(((nw[n].double() - p0) - (nw_ref[n].double() - p0)).abs().gt(0.01 * HYPER["lr"]).sum())
        e["adamw_update_disagreements"] = bad
        return e

    errors = {
        # what the tolerances should be based on: fixture error against exact math
        "hf32_vs_ref64": compare(logits, loss, grads, new_params, logits_r, loss_r, grads_r, new_r),
        # the literal model.double() comparison
        "hf32_vs_hf64": compare(logits, loss, grads, new_params, logits_hd, loss_hd, grads_hd, new_hd),
        # how far transformers' model.double() is from true float64
        "hf64_vs_ref64": compare(logits_hd, loss_hd, grads_hd, new_hd, logits_r, loss_r, grads_r, new_r),
        # two independent float32 implementations (what Swift-vs-fixture will look like)
        "ref32_vs_hf32": compare(logits_r32, loss_r32, grads_r32, new_r32, logits, loss, grads, new_params),
    }
    assert errors["hf32_vs_ref64"]["logits"][1] < 1e-4, errors  # the reference agrees with transformers
    assert errors["hf32_vs_ref64"]["grad"][1] < 1e-3, errors

    # Write the model as Hugging Face does.
    for stale in ("model.safetensors", "pytorch_model.bin", "generation_config.json"):
        if (out_dir / stale).exists():
            (out_dir / stale).unlink()
    model.save_pretrained(out_dir, safe_serialization=True)
    gen = out_dir / "generation_config.json"
    if gen.exists():
        gen.unlink()  # not needed by anybody; keep the fixtures small and stable

    save_file(
        {"input_ids": input_ids.contiguous(), "labels": labels.contiguous()},
        str(out_dir / "batch.safetensors"),
    )
    expected = {"logits": logits.float().contiguous(), "loss": loss.float().reshape(1).contiguous()}
    for n, g in grads.items():
        expected["grad." + n] = g.float().contiguous()
    for n, p in new_params.items():
        expected["adamw." + n] = p.float().contiguous()
    save_file(expected, str(out_dir / "expected.safetensors"), metadata={"format": "pt"})
    with open(out_dir / "hyper.json", "w") as f:
        json.dump(HYPER, f, indent=2)
        f.write("\n")

    print(
        f"[{case}] seed={case_seed} loss={loss.item():.9f} (float64 reference {loss_r.item():.12f}) "
        f"targets={n_targets} params={sum(p.numel() for p in model.parameters())} -> {out_dir}"
    )
    return {
        "case": case,
        "seed": case_seed,
        "loss32": loss.item(),
        "loss64": loss_r.item(),
        "loss_hf64": loss_hd.item(),
        "n_targets": n_targets,
        "min_abs_grad": min(g.abs()[g != 0].min().item() for g in grads_r.values()),
        "adamw_from_fixture_grads": max(
            (adamw_step({n: p.double() for n, p in p32.items()}, {n: g.double() for n, g in grads.items()})[n]
             - new_params[n].double()).abs().max().item()
            for n in grads
        ),
        "n_zero_grads": sum(int((g == 0).sum()) for g in grads_r.values()),
        # entries whose |grad| is within 10x of that tensor's float32 error: another float32
        # implementation might get their sign wrong, moving adamw.<name> by up to 2*lr there.
        "n_sign_fragile": sum(
            int(((grads_r[n].abs() < 10 * (grads[n].double() - grads_r[n]).abs().max()) & (grads_r[n] != 0)).sum())
            for n in grads
        ),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_param_tensors": len(grads),
        "errors": errors,
        "param_names": list(grads.keys()),
    }


def verify_reload(out_dir: Path, expected_loss: float):
    """Reload config.json + model.safetensors with from_pretrained and recompute the loss."""
    try:
        m = LlamaForCausalLM.from_pretrained(out_dir, attn_implementation="eager", dtype=torch.float32)
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(out_dir, attn_implementation="eager", torch_dtype=torch.float32)
    batch = load_file(str(out_dir / "batch.safetensors"))
    exp = load_file(str(out_dir / "expected.safetensors"))
    with torch.no_grad():
        out = m(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False)
    assert out.loss.item() == expected_loss, (out.loss.item(), expected_loss)
    assert torch.equal(out.logits, exp["logits"]), "reloaded logits differ"
    if m.config.tie_word_embeddings:
        assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    return out.loss.item()


def make_dtypes(out_dir: Path, seed: int):
    g = torch.Generator().manual_seed(seed + 999)
    # Rows at three magnitudes so exponents differ; random mantissas exercise rounding.
    x = torch.randn(3, 5, generator=g, dtype=torch.float32) * torch.tensor([[1.0], [100.0], [0.01]])
    bf16 = x.to(torch.bfloat16)
    f16 = x.to(torch.float16)
    save_file(
        {
            "x.f32": x.contiguous(),
            "x.bf16": bf16.contiguous(),
            "x.f16": f16.contiguous(),
            "x.bf16.widened": bf16.to(torch.float32).contiguous(),
            "x.f16.widened": f16.to(torch.float32).contiguous(),
        },
        str(out_dir / "dtypes.safetensors"),
    )


def fmt(x: float) -> str:
    return f"{x:.2e}"


def write_readme(out_dir: Path, results: list, seed: int, argv: list):
    cfg_keys = json.loads((out_dir / results[0]["case"] / "config.json").read_text())
    rope_note = (
        "`rope_parameters` (transformers 5.x style: "
        f"`{json.dumps(cfg_keys.get('rope_parameters'))}`); there is no top-level `rope_theta`"
        if "rope_parameters" in cfg_keys
        else f"a top-level `rope_theta` (transformers 4.x style); `rope_scaling` is {json.dumps(cfg_keys.get('rope_scaling'))}"
    )
    dtype_key = "dtype" if "dtype" in cfg_keys else "torch_dtype"
    cmd = "python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt && .venv/bin/python scripts/make_fixtures.py"
    if argv:
        cmd += " " + " ".join(argv)
    lines = []
    lines.append("# Llama reference fixtures (generated: do not edit by hand)\n")
    lines.append(
        "Made by `scripts/make_fixtures.py` from Hugging Face transformers' `LlamaForCausalLM` "
        "(eager attention, float32, CPU), so the Swift tests can check our Llama against "
        "transformers without Python at test time.\n"
    )
    lines.append("## How they were made\n")
    lines.append(f"- torch {torch.__version__}, transformers {transformers.__version__}, "
                 f"safetensors {__import__('safetensors').__version__}, numpy {__import__('numpy').__version__}, "
                 f"Python {sys.version.split()[0]}")
    lines.append(f"- command (from the repository root): `{cmd}`")
    lines.append(f"- base seed {seed}; case `tied` uses seed {seed}, case `untied` seed {seed + 1} (`torch.manual_seed`)")
    lines.append("- weights: built with `LlamaForCausalLM(config)`, then every Linear/Embedding weight re-drawn "
                 "from normal(0, 0.15) and every RMSNorm weight as 1 + 0.1*randn (no biases exist)")
    lines.append(f"- batch: B={B}, T={T}, `input_ids` uniform in [0, vocab); `labels` = `input_ids` with "
                 f"positions (row, col) {IGNORED} set to -100")
    lines.append(f"- AdamW: `torch.optim.AdamW(lr={HYPER['lr']}, betas=({HYPER['beta1']}, {HYPER['beta2']}), "
                 f"eps={HYPER['eps']}, weight_decay={HYPER['weight_decay']}, foreach=False)`, one step, applied to "
                 "every parameter (norm weights and embeddings included: no decay groups)\n")
    lines.append("## Files\n")
    lines.append("Per case (`tied/`, `untied/`):\n")
    lines.append("- `config.json`, `model.safetensors`: `model.save_pretrained(dir)`. In `tied/` the file holds no "
                 "`lm_head.weight` (it is `model.embed_tokens.weight`, `tie_word_embeddings: true`).")
    lines.append("- `batch.safetensors`: `input_ids` int64 [B,T], `labels` int64 [B,T].")
    lines.append("- `expected.safetensors` (float32): `logits` [B,T,V], `loss` [1], `grad.<name>` and `adamw.<name>` "
                 "for every name yielded by `model.named_parameters()` (tied: `lm_head.weight` is not listed; the "
                 "gradient of `model.embed_tokens.weight` includes the lm_head use).")
    lines.append("- `hyper.json`: the AdamW hyperparameters.\n")
    lines.append("`dtypes.safetensors`: `x.f32` [3,5] float32 (rows scaled by 1, 100, 0.01), `x.bf16`, `x.f16` "
                 "(`x.to(dtype)`, round-to-nearest-even), `x.bf16.widened`, `x.f16.widened` (float32 of those, "
                 "exact).\n")
    lines.append("## Config format\n")
    lines.append(f"This transformers ({transformers.__version__}) writes {rope_note}. The dtype key is "
                 f"`{dtype_key}`. Keys in `{results[0]['case']}/config.json`: "
                 + ", ".join(f"`{k}`" for k in cfg_keys) + ".\n")
    lines.append("## Loss convention\n")
    lines.append("`loss` is the model's own (`model(input_ids, labels=labels).loss`): logits at position t are scored "
                 "against `labels[:, t+1]` (transformers shifts the labels left by one inside the loss; "
                 "`labels[:, 0]` is never a target), and the mean is taken over the non-(-100) targets of the whole "
                 "batch (not per row). Here that is "
                 + ", ".join(f"{r['n_targets']} targets ({r['case']})" for r in results)
                 + f" out of B*(T-1) = {B * (T - 1)}. The script checks this against a hand-written shifted "
                 "cross-entropy in float64.\n")
    lines.append("## float32 vs float64\n")
    lines.append("Measures: `abs` = max |a - b|; `rel(max)` = max |a - b| / max |b| over the tensor; `rel(elem)` = "
                 "max elementwise |a - b| / |b| over entries with |b| > 1e-3 max |b|. For grads and adamw: the worst "
                 "over all parameter tensors.\n")
    lines.append("transformers' `model.double()` is not entirely float64: `LlamaRMSNorm` normalises in float32, the "
                 "rotary inv_freq/cos/sin are computed in float32, eager attention's softmax runs in float32 and the "
                 "causal-LM loss does `logits.float()` (so the \"float64\" loss is a float32 number). The script "
                 "therefore also has an independent plain-torch Llama (`reference_forward`), run in true float64 "
                 "from the same weights. That is the exact math the fixtures are measured against here.\n")
    lines.append("### Fixture (transformers, float32) against exact math (plain-torch reference, float64)\n")
    lines.append("Base tolerances on this table.\n")
    lines.append("| case | quantity | abs | rel(max) | rel(elem) |")
    lines.append("| --- | --- | --- | --- | --- |")
    for r in results:
        for q in ("logits", "loss", "grad", "adamw"):
            a, rm, re_ = r["errors"]["hf32_vs_ref64"][q]
            lines.append(f"| {r['case']} | {q} | {fmt(a)} | {fmt(rm)} | {fmt(re_)} |")
    lines.append("")
    lines.append("### Other comparisons, rel(max) (abs)\n")
    names = {
        "hf32_vs_hf64": "transformers float32 vs transformers `model.double()` (the literal float64 run)",
        "hf64_vs_ref64": "transformers `model.double()` vs the float64 reference (its float32 islands)",
        "ref32_vs_hf32": "the plain-torch reference run in float32 vs the float32 fixture. It is bit-identical: "
                         "same math, same torch kernels in the same order, which confirms the conventions written in "
                         "`reference_forward` (rotate_half RoPE, kv head i // (heads/kv_heads), shifted mean loss). "
                         "An implementation that sums in another order (ours) should expect differences up to "
                         "about twice the first table, not zero",
    }
    lines.append("| case | comparison | logits | loss | grad | adamw | AdamW update entries off by > 1% of lr |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        for c in ("hf32_vs_ref64", "hf32_vs_hf64", "hf64_vs_ref64", "ref32_vs_hf32"):
            e = r["errors"][c]
            cells = " | ".join(f"{fmt(e[q][1])} ({fmt(e[q][0])})" for q in ("logits", "loss", "grad", "adamw"))
            lines.append(f"| {r['case']} | {c} | {cells} | {e['adamw_update_disagreements']} |")
    lines.append("")
    for c, d in names.items():
        lines.append(f"- `{c}`: {d}")
    lines.append("- `hf32_vs_ref64`: the table above")
    lines.append("")
    lines.append("| case | loss (fixture, float32) | loss (reference, float64) | loss (transformers `model.double()`) | params |")
    lines.append("| --- | --- | --- | --- | --- |")
    for r in results:
        lines.append(f"| {r['case']} | {r['loss32']:.9f} | {r['loss64']:.12f} | {r['loss_hf64']:.12f} | "
                     f"{r['n_params']} ({r['n_param_tensors']} tensors) |")
    lines.append("")
    lines.append("Note on AdamW: after one step m̂ = g and v̂ = g², so the update is lr·g/(|g|+eps) ≈ lr·sign(g) "
                 "plus the decoupled decay lr·wd·p. It checks the decay, the bias correction and the sign, but is "
                 "insensitive to the size of the gradient and to beta1/beta2 beyond the bias correction. Entries "
                 "with |g| near eps, or whose float32 sign is uncertain, would be fragile; the last column above "
                 "counts update entries that disagree with float64 by more than 1% of lr, and the smallest |grad| "
                 "(float64 reference, exact zeros excluded) is "
                 + ", ".join(f"{r['min_abs_grad']:.2e} in {r['case']}" for r in results)
                 + ". Entries whose |grad| is within 10x of their tensor's float32 error (sign could differ in "
                 "another float32 implementation, moving that adamw entry by up to 2·lr): "
                 + ", ".join(f"{r['n_sign_fragile']} in {r['case']}" for r in results)
                 + ". Exact-zero gradients (rows of `embed_tokens` for tokens absent from the batch, untied case; "
                 "AdamW still applies the weight decay to them): "
                 + ", ".join(f"{r['n_zero_grads']} in {r['case']}" for r in results)
                 + ".\n")
    lines.append("So test the optimizer on its own: apply our AdamW to the weights in `model.safetensors` and the "
                 "fixture's own `grad.<name>` (not to gradients we computed), and compare with `adamw.<name>`; "
                 "done that way the float64 formula matches the fixture to "
                 + ", ".join(f"{r['adamw_from_fixture_grads']:.1e} ({r['case']})" for r in results)
                 + " max abs. Comparing after our own backward instead needs a per-entry allowance of 2·lr at the "
                 "sign-fragile entries counted above.\n")
    (out_dir / "README.md").write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="output directory (default: Tests/LlamaTests/Fixtures). With --case tied|untied the "
                         "model directory itself; with --case both the parent of tied/ and untied/")
    ap.add_argument("--seed", type=int, default=0,
                    help="base seed (default 0): case tied uses SEED, case untied SEED+1, with --case both or alone")
    ap.add_argument("--case", choices=["tied", "untied", "both"], default="both")
    ap.add_argument("--no-verify", action="store_true", help="skip the from_pretrained reload check")
    args = ap.parse_args()

    torch.set_num_threads(1)  # reproducible reductions
    torch.use_deterministic_algorithms(True)

    out = args.out.resolve()
    results = []
    if args.case == "both":
        out.mkdir(parents=True, exist_ok=True)
        for case in ("tied", "untied"):
            results.append(make_case(case, out / case, args.seed))
        make_dtypes(out, args.seed)
    else:
        results.append(make_case(args.case, out, args.seed))

    for r in results:
        d = out / r["case"] if args.case == "both" else out
        if not args.no_verify:
            l = verify_reload(d, r["loss32"])
            print(f"[{r['case']}] reload via from_pretrained: loss={l:.9f} (identical, logits identical)")
        for c in ("hf32_vs_ref64", "hf32_vs_hf64", "ref32_vs_hf32"):
            e = r["errors"][c]
            print(f"[{r['case']}] {c} rel(max): logits {fmt(e['logits'][1])}, loss {fmt(e['loss'][1])}, "
                  f"grads {fmt(e['grad'][1])}, adamw {fmt(e['adamw'][1])}; "
                  f"adamw update disagreements {e['adamw_update_disagreements']}")

    for f in out.rglob("*"):  # safetensors writes 0600 files; make them ordinary
        if f.is_file():
            f.chmod(0o644)

    if args.case == "both":
        argv = []
        if out != DEFAULT_OUT.resolve():
            argv += ["--out", str(args.out)]
        if args.seed != 0:
            argv += ["--seed", str(args.seed)]
        write_readme(out, results, args.seed, argv)
        print(f"wrote {out / 'README.md'}")


if __name__ == "__main__":
    main()
