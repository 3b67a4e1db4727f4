#!/usr/bin/python3
"""Times torchvision 0.14's roi_align and roi_pool on the workload of roi/bench_test.go.

Run from the repository root:  /usr/bin/python3 roi/testdata/torch_bench.py [threads] [repeats]
features (2, 256, 50, 76) float32 from a normal distribution; 512 rois per image with sides
uniform in [16, 416] pixels, drawn with the same 64-bit LCG as bench_test.go (so both time the
same boxes); output 7x7, spatial scale 1/16; roi_align with sampling ratio 2 and aligned=True.
One step = forward, then backward with an upstream of ones. Prints the median of the repeats
(after one warm-up step) per op, wall time as ns/op and process CPU time as cpu-ms/op, and the
fastest step as min-ms/op, in `go test -bench`'s layout (bench_test.go reports the same figures).
"""
import statistics
import sys
import time

import torch
import torchvision
from torchvision.ops import roi_align, roi_pool

BATCH, CHANNELS, HEIGHT, WIDTH = 2, 256, 50, 76
ROIS_PER_IMAGE, STRIDE = 512, 16
MASK = (1 << 64) - 1


def bench_rois():
    state = 14

    def nxt():
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        return (state >> 11) / float(1 << 53)

    img_w, img_h = WIDTH * STRIDE, HEIGHT * STRIDE
    rois = []
    for n in range(BATCH):
        for _ in range(ROIS_PER_IMAGE):
            w = 16 + 400 * nxt()
            h = 16 + 400 * nxt()
            x1 = (img_w - w) * nxt()
            y1 = (img_h - h) * nxt()
            rois.append([n, x1, y1, x1 + w, y1 + h])
    return torch.tensor(rois, dtype=torch.float64).to(torch.float32)


def step(op, features, rois):
    f = features.detach().requires_grad_()
    if op == "roi_align":
        out = roi_align(f, rois, (7, 7), spatial_scale=1 / STRIDE, sampling_ratio=2, aligned=True)
    else:
        out = roi_pool(f, rois, (7, 7), spatial_scale=1 / STRIDE)
    out.backward(torch.ones_like(out))
    return f.grad


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(14)
    features = torch.randn(BATCH, CHANNELS, HEIGHT, WIDTH, generator=gen, dtype=torch.float32)
    rois = bench_rois()
    for op in ("roi_align", "roi_pool"):
        step(op, features, rois)  # warm-up
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            step(op, features, rois)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        ms, cpu_ms = statistics.median(times) * 1e3, statistics.median(cpu) * 1e3
        print(f"BenchmarkTorchvision/{op}-{threads}\t{repeats}\t{ms * 1e6:.0f} ns/op\t{cpu_ms:.1f} cpu-ms/op"
              f"\t{min(times) * 1e3:.1f} min-ms/op\t(torch {torch.__version__}, torchvision {torchvision.__version__})")


if __name__ == "__main__":
    main()
