#!/usr/bin/python3
"""Times PyTorch/torchvision beside this project's Go benchmarks, on the same shapes.

Optional (needs Debian's python3-torch and python3-torchvision; CI does not run it):

    /usr/bin/python3 scripts/torch_compare.py            # runs the Go benchmarks too
    /usr/bin/python3 scripts/torch_compare.py --no-go    # PyTorch side only

Workloads (as the Go benchmarks):
  * Smooth L1, 16x36x64x64 float32 (batch 16, 9 anchors x 4 deltas, 64x64 map), sigma 3, forward +
    backward: the seed's _smooth_l1_loss (inside/outside weights, dim [1]) and the vectorised,
    unweighted F.smooth_l1_loss (beta 1/9, mean), with 1 and 2 threads.
    Go: BenchmarkSmoothL1_2_36M/float32/fwdbwd in package op, the user's default path
    (op.SmoothL1Loss(pred, target, in, out, 3, 1, 2, 3), G.Grad(loss, pred), a TapeMachine run and
    Reset), beside .../floor, the memory floor (one pass on GOMAXPROCS goroutines reading the four
    inputs once and writing one tensor).
  * RPN: 8 images of 1024x1024, 64x64 feature map, 9 anchors, 20 gt each: torchvision's
    assign_targets_to_anchors + box_coder.encode + compute_loss (sampler inside) forward +
    backward. Go: BenchmarkAssignAndLoss8x64x64Torchvision in package rpn (the default call,
    TargetNodes.Assign, then the loss) beside ...TorchvisionSet (AssignTargets + Set, the baseline).
    --gt 500: 500 gt each, and the peak RSS of both sides, each in a process of its own (Go:
    BenchmarkPeakRSS8x64x64Torchvision500GT, the same step with its peak RSS around it).
  * FPN (--only fpn, on request only: torchvision takes 10-60 s a step): 2 images of 800x1216,
    five levels (sizes 32-512, ratios 0.5/1/2, maps 200x304 ... 13x19, 242,991 anchors per
    image), 100 and 500 gt each from the LCG shared with rpn/bench_fpn_test.go: torchvision's
    assign_targets_to_anchors + encode + concat_box_prediction_layers + compute_loss forward +
    backward, each thread count (--threads) in a process of its own, a warm-up step then --steps
    timed ones, with the process's peak RSS (VmHWM) after building the inputs and after the steps.
    Go: BenchmarkStepFPN2x800x1216/100gt and /500gt (AssignNodesLevels + LossLevels), each in a
    process of its own, with B/op and the test binary's peak RSS; beside them .../100gt-set (the
    baseline: AssignTargetsLevels + Set) and .../100gt-loss-only (the floor: the loss alone).
"""
import argparse
import math
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers

# The seed's _smooth_l1_loss, kept verbatim in one place: op/testdata/gen_fixtures.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "op", "testdata"))
from gen_fixtures import _smooth_l1_loss  # noqa: E402



def timeit(fn, min_time=2.0):
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - start
        if el >= min_time and n >= 5:
            return el / n


def smooth_l1_workloads(threads):
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(7)
    shape = (16, 36, 64, 64)
    pred = (torch.randn(shape, generator=g) * 0.3).float().requires_grad_(True)
    target = (torch.randn(shape, generator=g) * 0.3).float()
    inside = (torch.randint(0, 8, shape, generator=g) == 0).float()
    outside = torch.full(shape, 1.0 / 256, dtype=torch.float32)

    def seed():
        pred.grad = None
        _smooth_l1_loss(pred, target, inside, outside, sigma=3.0, dim=[1]).backward()

    def functional():
        pred.grad = None
        F.smooth_l1_loss(pred, target, beta=1.0 / 9, reduction="mean").backward()

    return timeit(seed), timeit(functional)


def make_rpn(ag, A):
    """torchvision's RPN as rpn.TorchvisionConfig: IoU 0.7/0.3, 256 per image, half positive (its
    head, A anchors per cell, is not run: the workloads' obj and deltas stand for its outputs)."""
    return RegionProposalNetwork(ag, RPNHead(1, A), 0.7, 0.3, 256, 0.5, dict(training=2000, testing=1000),
                                 dict(training=2000, testing=1000), 0.7)


def rpn_step(rpn, anchors, targets, obj, deltas):
    """One training step of the RPN's objective: assign_targets_to_anchors + box_coder.encode +
    compute_loss (sampler inside), forward and backward, w.r.t. every level's obj and deltas."""
    def step():
        for t in obj + deltas:
            t.grad = None
        labels, matched = rpn.assign_targets_to_anchors(anchors, targets)
        reg_targets = rpn.box_coder.encode(matched, anchors)
        box_cls, box_reg = concat_box_prediction_layers(obj, deltas)
        cls_loss, box_loss = rpn.compute_loss(box_cls, box_reg, labels, reg_targets)
        (cls_loss + box_loss).backward()
    return step


def rpn_inputs(ngt=20):
    """The 8x64x64 workload's inputs: (rpn, anchors, targets, [obj], [deltas])."""
    rng = np.random.RandomState(31)
    B, H, W, A = 8, 64, 64, 9
    ag = AnchorGenerator(sizes=((128.0, 256.0, 512.0),), aspect_ratios=((0.5, 1.0, 2.0),))
    rpn = make_rpn(ag, A)
    il = ImageList(torch.zeros(B, 3, 1024, 1024), [(1024, 1024)] * B)
    anchors = ag(il, [torch.zeros(B, 1, H, W)])
    targets = []
    for _ in range(B):
        boxes = []
        for _ in range(ngt):
            w, h = rng.uniform(30, 300, 2)
            x, y = rng.uniform(0, 1024 - w - 1), rng.uniform(0, 1024 - h - 1)
            boxes.append([round(x), round(y), round(x + w), round(y + h)])
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32)})
    obj = (torch.randn(B, A, H, W) * 0.5).requires_grad_(True)
    deltas = (torch.randn(B, 4 * A, H, W) * 0.5).requires_grad_(True)
    return rpn, anchors, targets, [obj], [deltas]


def rpn_workload(threads, ngt=20):
    torch.set_num_threads(threads)
    return timeit(rpn_step(*rpn_inputs(ngt)))


FPN_MAPS = ((200, 304), (100, 152), (50, 76), (25, 38), (13, 19))
FPN_H, FPN_W, FPN_B = 800, 1216, 2
MASK = (1 << 64) - 1


def fpn_gt_boxes(batch, ngt):
    """The FPN workload's gt boxes, the Python twin of fpnGTImages in rpn/bench_fpn_test.go (the
    same 64-bit LCG, seed and draws): per image and box x1 = floor(U*(1216-16)),
    y1 = floor(U*(800-16)), w = floor(16 + U*400), h = floor(16 + U*400), x2, y2 clamped to the image."""
    state = 13

    def nxt():
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        return (state >> 11) / float(1 << 53)

    images = []
    for _ in range(batch):
        boxes = []
        for _ in range(ngt):
            x1 = math.floor(nxt() * (FPN_W - 16))
            y1 = math.floor(nxt() * (FPN_H - 16))
            w = math.floor(16 + nxt() * 400)
            h = math.floor(16 + nxt() * 400)
            boxes.append([x1, y1, min(x1 + w, FPN_W), min(y1 + h, FPN_H)])
        images.append(boxes)
    return images


def fpn_inputs(ngt):
    """The FPN workload's inputs (as BenchmarkStepFPN2x800x1216): 2 images of 800x1216, five
    levels of sizes 32-512 x ratios 0.5/1/2 on maps FPN_MAPS, N(0, 0.5) obj and deltas."""
    ag = AnchorGenerator(sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    rpn = make_rpn(ag, 3)
    il = ImageList(torch.zeros(FPN_B, 3, FPN_H, FPN_W), [(FPN_H, FPN_W)] * FPN_B)
    anchors = ag(il, [torch.zeros(FPN_B, 1, h, w) for h, w in FPN_MAPS])
    if any(len(a) != 242991 for a in anchors):
        raise SystemExit("torchvision made %s anchors per image; Go's fpnLevels has 242,991" % [len(a) for a in anchors])
    targets = [{"boxes": torch.tensor(b, dtype=torch.float32)} for b in fpn_gt_boxes(FPN_B, ngt)]
    g = torch.Generator().manual_seed(35)
    obj = [(torch.randn(FPN_B, 3, h, w, generator=g) * 0.5).requires_grad_(True) for h, w in FPN_MAPS]
    deltas = [(torch.randn(FPN_B, 12, h, w, generator=g) * 0.5).requires_grad_(True) for h, w in FPN_MAPS]
    return rpn, anchors, targets, obj, deltas


def maxrss_mb():
    """The process's peak RSS so far in MB: /proc/self/status's VmHWM (Linux), else ru_maxrss. Not
    ru_maxrss first: Linux carries it across execve from the parent (this script, after its
    in-process workloads), so a child would report its parent's peak; VmHWM is the child's own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def workload_child(workload, ngt, threads, steps):
    """--child: in a fresh process, builds the workload's inputs and prints the peak RSS (the
    baseline: torch imported, inputs built), runs one warm-up step and steps timed ones on threads
    threads, printing each step's seconds, then the peak RSS."""
    torch.set_num_threads(threads)
    step = rpn_step(*(fpn_inputs(ngt) if workload == "fpn" else rpn_inputs(ngt)))
    print("baseline %.1f" % maxrss_mb(), flush=True)
    step()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        print("step %.6f" % (time.perf_counter() - start), flush=True)
    print("peak %.1f" % maxrss_mb(), flush=True)


def torch_child(workload, ngt, threads=2, steps=3):
    """Runs workload_child in a process of its own (so that its peak is the workload's alone);
    returns (baseline MB, peak MB, mean seconds per step, fastest step's seconds)."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", workload, str(ngt), str(threads), str(steps)],
                         capture_output=True, text=True, check=True).stdout
    vals = {"step": []}
    for line in out.splitlines():
        key, v = line.split()
        if key == "step":
            vals["step"].append(float(v))
        else:
            vals[key] = float(v)
    return vals["baseline"], vals["peak"], sum(vals["step"]) / len(vals["step"]), min(vals["step"])


def go_bench_metrics(pkg, pattern, benchtime="2s"):
    """Runs Go benchmarks; returns {name: {unit: value}} of every metric (ns/op, B/op, ...)."""
    out = subprocess.run(["go", "test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, pkg],
                         capture_output=True, text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$", line)
        if m:
            pairs = re.findall(r"([\d.e+-]+) (\S+)", m.group(3))
            res[m.group(1)] = {unit: float(v) for v, unit in pairs}
    return res


def go_bench(pkg, pattern, benchtime="2s"):
    """Runs Go benchmarks; returns {name: seconds per op}."""
    return {name: m["ns/op"] / 1e9 for name, m in go_bench_metrics(pkg, pattern, benchtime).items() if "ns/op" in m}


def interleaved_l1(rounds):
    """The op's headline comparison, side by side: each round times F.smooth_l1_loss on 2 threads,
    then the Go default path and the memory floor, so that the machine's load hits both alike.
    Returns per-round (torch, go, floor) seconds."""
    out = []
    for _ in range(rounds):
        torch.set_num_threads(2)
        g = torch.Generator().manual_seed(7)
        shape = (16, 36, 64, 64)
        pred = (torch.randn(shape, generator=g) * 0.3).float().requires_grad_(True)
        target = (torch.randn(shape, generator=g) * 0.3).float()

        def functional():
            pred.grad = None
            F.smooth_l1_loss(pred, target, beta=1.0 / 9, reduction="mean").backward()

        t = timeit(functional, 1.0)
        go = go_bench("./op", "SmoothL1_2_36M/float32/(fwdbwd|floor)$", "1s")
        out.append((t, go.get("BenchmarkSmoothL1_2_36M/float32/fwdbwd"), go.get("BenchmarkSmoothL1_2_36M/float32/floor")))
    return out


def print_rss(label, torch_rss, go_rss):
    """One workload's peak RSS, both sides: torch_rss (baseline, peak) from torch_child, go_rss a
    Go benchmark's metrics (start-RSS-MB, peak-RSS-MB and, for the FPN step, built-RSS-MB)."""
    tb, tp = torch_rss
    print("peak RSS, %s (MB; each side a process of its own):" % label)
    print("  torchvision (2 threads): baseline %.0f (torch imported, inputs built), peak %.0f, increment %.0f" % (tb, tp, tp - tb))
    if go_rss:
        built = " built %.0f (graph and inputs)," % go_rss["built-RSS-MB"] if "built-RSS-MB" in go_rss else ""
        print("  Go test binary: start %.0f,%s peak %.0f, increment %.0f" % (go_rss["start-RSS-MB"], built, go_rss["peak-RSS-MB"], go_rss["peak-RSS-MB"] - go_rss["start-RSS-MB"]))
        print("  Go peak / torchvision peak: %.3f (issue 13's target: <= 0.25)" % (go_rss["peak-RSS-MB"] / tp))


def fpn_main(args):
    """--only fpn: BenchmarkStepFPN2x800x1216 (one process per gt count) beside torchvision's step
    on the same boxes, each thread count in a process of its own (a warm-up step, then --steps)."""
    print("FPN step: 2 images of 800x1216, 5 levels, 242,991 anchors per image; torchvision's "
          "assign_targets_to_anchors + encode + concat_box_prediction_layers + compute_loss fwd+bwd; "
          "Go AssignNodesLevels + LossLevels fwd+bwd (TapeMachine, float32, GOMAXPROCS=2)")
    for ngt in ([args.gt] if args.gt else [100, 500]):
        runs = {t: torch_child("fpn", ngt, t, args.steps) for t in args.threads}
        go = {} if args.no_go else go_bench_metrics("./rpn", "StepFPN2x800x1216/%dgt$" % ngt).get("BenchmarkStepFPN2x800x1216/%dgt" % ngt, {})
        go_s = go.get("ns/op", 0) / 1e9
        print("\n%d gt per image" % ngt)
        print("  %-62s %10s %10s %10s" % ("", "ms/step", "fastest", "x Go"))
        for t, (_, _, mean, fastest) in runs.items():
            ratio = "%.1fx" % (mean / go_s) if go_s else "-"
            print("  %-62s %10.1f %10.1f %10s" % ("torchvision, %d thread(s), %d steps" % (t, args.steps), mean * 1e3, fastest * 1e3, ratio))
        if go_s:
            print("  %-62s %10.2f %10s %10s   %.1f MB/op allocated" % ("Go BenchmarkStepFPN2x800x1216/%dgt (default call)" % ngt, go_s * 1e3, "", "", go["B/op"] / 1e6))
            # the baseline (AssignTargetsLevels + Set) and the floor (the loss alone), in one process
            other = go_bench_metrics("./rpn", "StepFPN2x800x1216/%dgt-(set|loss-only)$" % ngt)
            for suffix, what in (("set", "baseline: AssignTargetsLevels + Set"), ("loss-only", "floor: loss fwd+bwd alone")):
                m = other.get("BenchmarkStepFPN2x800x1216/%dgt-%s" % (ngt, suffix))
                if m:
                    print("  %-62s %10.2f %10s %10s   %.1f MB/op allocated" % ("Go " + what, m["ns/op"] / 1e6, "", "", m["B/op"] / 1e6))
        if 2 in runs:
            print_rss("FPN %d gt" % ngt, runs[2][:2], go)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-go", action="store_true")
    ap.add_argument("--only", choices=["l1", "rpn", "fpn"], help="one workload only (fpn runs on request only)")
    ap.add_argument("--gt", type=int, choices=[20, 100, 500],
                    help="gt boxes per image: rpn 20 (default), 100 (no Go benchmark) or 500; fpn 100 or 500 (default both)")
    ap.add_argument("--threads", type=lambda v: [int(t) for t in v.split(",")], default=[2, 1],
                    help="rpn and fpn: torchvision's thread counts, e.g. 2,1 (default) or 2")
    ap.add_argument("--steps", type=int, default=3, help="fpn and rpn --gt 500: timed steps per torchvision run, after a warm-up step")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the op's headline comparison")
    ap.add_argument("--child", nargs=4, metavar=("WORKLOAD", "GT", "THREADS", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        workload, ngt, threads, steps = args.child
        workload_child(workload, int(ngt), int(threads), int(steps))
        return
    print("torch", torch.__version__)
    if args.only == "fpn":
        if args.gt == 20:
            ap.error("--only fpn takes --gt 100 or 500")
        fpn_main(args)
        return
    gt = args.gt or 20
    rows = []
    if args.only != "rpn":
        for threads in (1, 2):
            seed, func = smooth_l1_workloads(threads)
            rows.append(("torch seed _smooth_l1_loss fwd+bwd, %d thread(s)" % threads, seed))
            rows.append(("torch F.smooth_l1_loss fwd+bwd, %d thread(s)" % threads, func))
    rss500 = None  # torchvision's (baseline, peak) at 500 gt, 2 threads
    if args.only != "l1":
        for threads in sorted(args.threads):
            name = "torchvision assign+encode+compute_loss fwd+bwd, %d gt, %d thread(s)" % (gt, threads)
            if gt == 500:  # 20-30 s a step: --steps of them (after a warm-up) in a process of its own, with its peak RSS
                base, peak, mean, _ = torch_child("rpn", 500, threads, args.steps)
                if threads == 2:
                    rss500 = (base, peak)
                rows.append((name, mean))
            else:
                rows.append((name, rpn_workload(threads, gt)))
    go = {}
    if not args.no_go:
        if args.only != "rpn":
            go.update(go_bench("./op", "SmoothL1_2_36M/float32/(fwdbwd|floor)$"))
        if args.only != "l1" and gt != 100:
            go.update(go_bench("./rpn", "AssignAndLoss8x64x64Torchvision%s(Set)?$|LossFwdBwd8x64x64Torchvision$" % ("500GT" if gt == 500 else "")))
    go_l1 = go.get("BenchmarkSmoothL1_2_36M/float32/fwdbwd")
    go_floor = go.get("BenchmarkSmoothL1_2_36M/float32/floor")
    suffix = "500GT" if gt == 500 else ""
    go_rpn = go.get("BenchmarkAssignAndLoss8x64x64Torchvision" + suffix)
    go_rpn_set = go.get("BenchmarkAssignAndLoss8x64x64Torchvision%sSet" % suffix)
    print("%-66s %10s %10s" % ("workload", "ms", "x Go"))
    for name, sec in rows:
        ref = go_rpn if "torchvision" in name else go_l1
        ratio = "%.1fx" % (sec / ref) if ref else "-"
        print("%-66s %10.2f %10s" % (name, sec * 1e3, ratio))
    if go_l1:
        print("%-66s %10.2f" % ("Go op.SmoothL1Loss fwd+bwd, default path (TapeMachine, GOMAXPROCS=2)", go_l1 * 1e3))
    if go_floor:
        print("%-66s %10.2f %9.2fx" % ("Go memory floor (read 4 inputs once, write 1; x = default / floor)", go_floor * 1e3, go_l1 / go_floor if go_l1 else 0))
    if args.only != "rpn" and not args.no_go and args.rounds > 0:
        print("\ninterleaved rounds: F.smooth_l1_loss (2 threads) | Go default path | memory floor, ms; Go / torch; Go / floor")
        res = interleaved_l1(args.rounds)
        for t, go, fl in res:
            print("  %8.2f | %8.2f | %8.2f   %.2fx   %.2fx" % (t * 1e3, go * 1e3, fl * 1e3, go / t, go / fl))
        ratios = sorted(go / t for t, go, _ in res)
        print("  median Go / torch: %.2fx" % ratios[len(ratios) // 2])
    if go_rpn:
        print("%-66s %10.2f" % ("Go rpn TargetNodes.Assign + rpn.Loss fwd+bwd (torchvision config)", go_rpn * 1e3))
    go_rpn_floor = go.get("BenchmarkLossFwdBwd8x64x64Torchvision")
    if go_rpn_floor and go_rpn:
        print("%-66s %10.2f" % ("Go floor: rpn.Loss fwd+bwd alone (targets bound once)", go_rpn_floor * 1e3))
    if go_rpn_set:
        print("%-66s %10.2f" % ("Go baseline: rpn.AssignTargets + TargetNodes.Set + rpn.Loss", go_rpn_set * 1e3))
        for name, sec in rows:
            if "torchvision" in name:
                print("  %-64s %9.1fx" % (name + " / baseline", sec / go_rpn_set))
    if args.only != "l1" and gt == 500:
        # Peak memory, each side in a process of its own (the Go side is benchStep with its peak RSS
        # around it).
        go_rss = {} if args.no_go else go_bench_metrics("./rpn", "PeakRSS8x64x64Torchvision500GT$").get("BenchmarkPeakRSS8x64x64Torchvision500GT")
        print_rss("8x64x64, 500 gt", rss500 or torch_child("rpn", 500, 2, args.steps)[:2], go_rss)


if __name__ == "__main__":
    main()
