"""The matrix products of one training step, timed with the two BLAS libraries side by side:
OpenBLAS (what picotron.swift calls, loaded from the system's libopenblas.so.0) and the one
PyTorch's CPU wheel calls for torch.mm (Intel MKL). Same process, same shapes, the two in turn,
best of several repeats each. Prints one JSON line:
  {"preset", "tokens", "gflop", "openblas_ms", "torch_ms", "openblas_gflops", "torch_gflops",
   "torch_over_openblas", "threads", "cpu"}

The shapes are every linear layer's three products for one micro-batch (N = batch × seq tokens):
forward y = x Wᵀ, input gradient dx = dy W, weight gradient dW = dyᵀ x; attention's own products
are left out (both programs run those in their attention kernels). openblas_ms is therefore the
least time any program on this OpenBLAS spends in a step's linear layers.
    python3 scripts/matmul_ceiling.py --preset tiny --batch 4 --seq-len 256 --threads 2
"""
import argparse, ctypes, ctypes.util, json, os, platform, time

PRESETS = {  # vocab, hidden, intermediate, layers, heads, kv heads
    "tiny": (4096, 256, 688, 8, 8, 4),
    "smollm-135m": (49152, 576, 1536, 30, 9, 3),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny", choices=PRESETS)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    # As picotron does: OpenBLAS 0.3.21 does not recognise some newer Xeons and falls back to
    # its generic kernel; picotron then asks for the kernel the CPU's instructions allow.
    flags = open("/proc/cpuinfo").read()
    if "OPENBLAS_CORETYPE" not in os.environ and " avx512f" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    blas = ctypes.CDLL("libopenblas.so.0")
    blas.openblas_set_num_threads(a.threads)
    import torch   # after OpenBLAS has read its environment
    torch.set_num_threads(a.threads)

    v, c, i, layers, nh, nkv = PRESETS[a.preset]
    hs = c // nh
    n = a.batch * a.seq_len
    linears = [(c, c), (c, nkv * hs), (c, nkv * hs), (c, c), (c, i), (c, i), (i, c)]   # (in, out)
    products = []   # (count per step, transA, transB, m, n, k)
    for din, dout in linears:
        products += [(layers, False, True, n, dout, din),    # y = x Wᵀ     [N, out]
                     (layers, False, False, n, din, dout),   # dx = dy W    [N, in]
                     (layers, True, False, dout, din, n)]    # dW = dyᵀ x   [out, in]
    products += [(1, False, True, n, v, c), (1, False, False, n, c, v), (1, True, False, v, c, n)]   # head

    f32p = ctypes.POINTER(ctypes.c_float)
    sgemm = blas.cblas_sgemm
    sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, f32p, ctypes.c_int, f32p, ctypes.c_int,
                                           ctypes.c_float, f32p, ctypes.c_int]
    row_major, no_trans, trans = 101, 111, 112
    cases = []
    for count, ta, tb, m, nn, k in products:
        A = torch.randn(k, m) if ta else torch.randn(m, k)
        B = torch.randn(nn, k) if tb else torch.randn(k, nn)
        C = torch.empty(m, nn)
        cases.append((count, ta, tb, m, nn, k, A, B, C))

    def run_openblas(case):
        count, ta, tb, m, nn, k, A, B, C = case
        sgemm(row_major, trans if ta else no_trans, trans if tb else no_trans, m, nn, k, 1.0,
              ctypes.cast(A.data_ptr(), f32p), m if ta else k, ctypes.cast(B.data_ptr(), f32p), k if tb else nn,
              0.0, ctypes.cast(C.data_ptr(), f32p), nn)

    def run_torch(case):
        count, ta, tb, m, nn, k, A, B, C = case
        torch.mm(A.t() if ta else A, B.t() if tb else B, out=C)

    best = {"openblas": [float("inf")] * len(cases), "torch": [float("inf")] * len(cases)}
    for _ in range(a.repeats):            # interleaved: all shapes with one library, then the other
        for name, fn in (("openblas", run_openblas), ("torch", run_torch)):
            time.sleep(0.2)               # the other library's idle threads stop spinning
            for j, case in enumerate(cases):
                fn(case)                  # warm
                t = time.perf_counter()
                for _ in range(3):
                    fn(case)
                best[name][j] = min(best[name][j], (time.perf_counter() - t) / 3)
    flop = sum(2.0 * cnt * m * nn * k for cnt, _, _, m, nn, k, *_ in cases)
    ms = {name: 1e3 * sum(cs[0] * t for cs, t in zip(cases, best[name])) for name in best}
    cpu = next((l.split(":", 1)[1].strip() for l in flags.splitlines() if l.startswith("model name")), platform.processor())
    print(json.dumps({"preset": a.preset, "tokens": n, "gflop": round(flop / 1e9, 2),
                      "openblas_ms": round(ms["openblas"], 1), "torch_ms": round(ms["torch"], 1),
                      "openblas_gflops": round(flop / ms["openblas"] / 1e6, 1),
                      "torch_gflops": round(flop / ms["torch"] / 1e6, 1),
                      "torch_over_openblas": round(ms["openblas"] / ms["torch"], 3),
                      "threads": a.threads, "cpu": cpu, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
