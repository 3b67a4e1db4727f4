package rpn

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Issue 13's FPN-scale step: 2 images of 800x1216, torchvision's five FPN levels (fpnLevels,
// 242,991 anchors per image), 100 or 500 gt boxes per image, TorchvisionConfig, float32.
// scripts/torch_compare.py --only fpn --gt 100|500 times torchvision's step on the same boxes
// beside it and runs this benchmark in a process of its own.

// fpnLCG is the generator of the gt boxes; fpn_gt_boxes in scripts/torch_compare.py is its
// Python twin (a 64-bit linear congruential generator, Knuth's MMIX constants, as package roi's
// benchmark), so both sides time the same boxes.
type fpnLCG uint64

func (s *fpnLCG) next() float64 {
	*s = *s*6364136223846793005 + 1442695040888963407
	return float64(uint64(*s)>>11) / (1 << 53)
}

// fpnGTImages are the workload's images: per image (in order) and box, x1 = floor(U*(1216-16)),
// y1 = floor(U*(800-16)), w = floor(16 + U*400), h = floor(16 + U*400), x2 and y2 clamped to the
// image: integer boxes inside 800x1216, at least 16 pixels wide and high.
func fpnGTImages(batch, nGT int) []Image {
	const imgW, imgH = 1216, 800
	s := fpnLCG(13)
	images := make([]Image, batch)
	for i := range images {
		images[i] = Image{Height: imgH, Width: imgW}
		for range nGT {
			x1 := math.Floor(s.next() * (imgW - 16))
			y1 := math.Floor(s.next() * (imgH - 16))
			w := math.Floor(16 + float64(s.next()*400)) // float64(): no fused multiply-add, as Python
			h := math.Floor(16 + float64(s.next()*400))
			images[i].Boxes = append(images[i].Boxes, [4]float64{x1, y1, math.Min(x1+w, imgW), math.Min(y1+h, imgH)})
		}
	}
	return images
}

// peakRSSMB is the process's peak resident set so far, in MB: /proc/self/status's VmHWM on Linux,
// else getrusage's ru_maxrss (KB on Linux). Not ru_maxrss first: Linux carries it across execve
// from the process that started this one (go test's go command, a Python parent), so a test
// binary would report its parent's peak when that is larger; VmHWM is this image's own.
func peakRSSMB() float64 {
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return math.NaN()
	}
	return float64(u.Maxrss) / 1024
}

// fpnStep is the FPN step's graph, built once: per level scores (2, A, H, W) and deltas
// (2, 4A, H, W) with N(0, 0.5) values, the level's TargetNodes, LossLevels and G.Grad w.r.t.
// every scores and deltas node, one TapeMachine.
type fpnStep struct {
	levels []*Anchors
	nodes  []*TargetNodes
	images []Image
	m      G.VM
}

func newFPNStep(b *testing.B, nGT int) *fpnStep {
	const batch = 2
	dt := tensor.Float32
	rng := rand.New(rand.NewSource(35))
	st := &fpnStep{levels: fpnLevels(b), images: fpnGTImages(batch, nGT)}
	g := G.NewGraph()
	var scores, deltas, wrt []*G.Node
	for l, an := range st.levels {
		tn, err := NewTargetNodes(g, dt, batch, an.A, an.H, an.W, nil)
		if err != nil {
			b.Fatal(err)
		}
		st.nodes = append(st.nodes, tn)
		for _, c := range []int{an.A, 4 * an.A} {
			shape := tensor.Shape{batch, c, an.H, an.W}
			x := make([]float64, shape.TotalSize())
			for i := range x {
				x[i] = rng.NormFloat64() * 0.5
			}
			n := G.NewTensor(g, dt, 4, G.WithShape(shape...), G.WithValue(values.Dense(dt, shape, x)), G.WithName(fmt.Sprintf("level%d_%d", l, c)))
			if c == an.A {
				scores = append(scores, n)
			} else {
				deltas = append(deltas, n)
			}
			wrt = append(wrt, n)
		}
	}
	total, _, _, err := LossLevels(scores, deltas, st.nodes, TorchvisionConfig())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := G.Grad(total, wrt...); err != nil {
		b.Fatal(err)
	}
	st.m = G.NewTapeMachine(g)
	return st
}

// run is one training step: the targets by mode, then the forward and backward.
func (st *fpnStep) run(b *testing.B, mode assignMode) {
	cfg := TorchvisionConfig()
	switch mode {
	case assignViaNodes:
		if err := AssignNodesLevels(cfg, st.levels, st.nodes, st.images); err != nil {
			b.Fatal(err)
		}
	case assignViaSet:
		tgs, err := AssignTargetsLevels(cfg, st.levels, st.images)
		if err != nil {
			b.Fatal(err)
		}
		for l, tg := range tgs {
			if err := st.nodes[l].Set(tg); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := st.m.RunAll(); err != nil {
		b.Fatal(err)
	}
	st.m.Reset()
}

// BenchmarkStepFPN2x800x1216 is the FPN step with 100 and 500 gt per image, each on a graph built
// once: "100gt" and "500gt" are the default call, AssignNodesLevels, then RunAll and Reset;
// "-set" is the baseline, AssignTargetsLevels and each level's Set; "-loss-only" the floor, the
// run alone with the targets assigned once. Beside B/op each reports the process's peak RSS before
// its graph was built (start-RSS-MB), once built (built-RSS-MB: before the first step; for
// -loss-only after the step that assigned its targets) and after its loop (peak-RSS-MB). Peaks are per process and never go down: for separable figures run one
// sub-benchmark per process (torch_compare.py does, for the default call).
func BenchmarkStepFPN2x800x1216(b *testing.B) {
	for _, nGT := range []int{100, 500} {
		for _, v := range []struct {
			suffix string
			mode   assignMode
		}{{"", assignViaNodes}, {"-set", assignViaSet}, {"-loss-only", assignOnce}} {
			var st *fpnStep
			var start, built float64
			b.Run(fmt.Sprintf("%dgt%s", nGT, v.suffix), func(b *testing.B) {
				if st == nil {
					start = peakRSSMB()
					st = newFPNStep(b, nGT)
					if v.mode == assignOnce {
						st.run(b, assignViaNodes)
					}
					built = peakRSSMB()
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					st.run(b, v.mode)
				}
				b.StopTimer()
				b.ReportMetric(start, "start-RSS-MB")
				b.ReportMetric(built, "built-RSS-MB")
				b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
			})
			if st != nil {
				st.m.Close()
			}
		}
	}
}

// BenchmarkPeakRSS8x64x64Torchvision500GT is BenchmarkAssignAndLoss8x64x64Torchvision500GT
// (benchStep) with the process's peak RSS: before the benchmark built anything (start-RSS-MB) and
// after its loop (peak-RSS-MB); torch_compare.py --only rpn --gt 500 runs it in a process of its
// own. The harness calls it once per b.N it tries; start-RSS-MB is the first call's.
func BenchmarkPeakRSS8x64x64Torchvision500GT(b *testing.B) {
	if rss8x64x64Start == 0 {
		rss8x64x64Start = peakRSSMB()
	}
	benchStep(b, TorchvisionConfig(), assignViaNodes, 500)
	b.StopTimer()
	b.ReportMetric(rss8x64x64Start, "start-RSS-MB")
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
}

// rss8x64x64Start is BenchmarkPeakRSS8x64x64Torchvision500GT's start-RSS-MB.
var rss8x64x64Start float64

// BenchmarkAssignFPNTinyGTs: one 800x1216 image with torchvision's five FPN levels and 500 gt
// boxes of 2x2 pixels (a crowd of tiny objects, found by review to make the pruning matcher's
// recomputation of low-quality matches dominate: every tiny gt ties with dozens of 32x32 anchors).
func BenchmarkAssignFPNTinyGTs(b *testing.B) {
	levels := fpnLevels(b)
	rng := rand.New(rand.NewSource(35))
	im := Image{Height: 800, Width: 1216}
	for j := 0; j < 500; j++ {
		x, y := math.Round(rng.Float64()*1200), math.Round(rng.Float64()*790)
		im.Boxes = append(im.Boxes, [4]float64{x, y, x + 2, y + 2})
	}
	cfg := TorchvisionConfig()
	var as Assigner
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := as.AssignTargetsLevels(cfg, levels, []Image{im}); err != nil {
			b.Fatal(err)
		}
	}
}
