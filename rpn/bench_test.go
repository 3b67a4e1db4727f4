package rpn

import (
	"math/rand"
	"os"
	"strconv"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The rpn benchmark workload: 8 images of 1024x1024, a 64x64 feature map (stride 16), 9 anchors,
// 20 gt boxes each; and one image with 500 gt boxes.

func benchAssign(b *testing.B, batch, nGT int, cfg Config) {
	rng := rand.New(rand.NewSource(31))
	an, images := bigScene(rng, batch, nGT)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := AssignTargets(cfg, an, images); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAssign8x20GT(b *testing.B)            { benchAssign(b, 8, 20, DefaultConfig()) }
func BenchmarkAssign8x20GTTorchvision(b *testing.B) { benchAssign(b, 8, 20, TorchvisionConfig()) }
func BenchmarkAssign1x500GT(b *testing.B)           { benchAssign(b, 1, 500, DefaultConfig()) }

// benchLoss: forward + backward of the full objective through a TapeMachine, float32; with
// withAssign each step first assigns the targets with the default call, TargetNodes.Assign.
func benchLoss(b *testing.B, cfg Config, withAssign bool) {
	mode := assignOnce
	if withAssign {
		mode = assignViaNodes
	}
	benchStep(b, cfg, mode, 20)
}

// assignMode is how a benchmark step gets its targets.
type assignMode int

const (
	assignOnce     assignMode = iota // targets bound once, the loss alone
	assignViaNodes                   // tn.Assign: the default call of a training loop
	assignViaSet                     // tn.Set(AssignTargets(...)): fresh float64 Targets every step, then copied
)

// benchStep is one training step with nGT gt boxes per image on the 8x64x64 workload: the
// targets (by mode), then the loss's forward and backward.
func benchStep(b *testing.B, cfg Config, mode assignMode, nGT int) {
	rng := rand.New(rand.NewSource(32))
	an, images := bigScene(rng, 8, nGT)
	tg, err := AssignTargets(cfg, an, images)
	if err != nil {
		b.Fatal(err)
	}
	dt := tensor.Float32
	g := G.NewGraph()
	sc := tg.A
	if cfg.Objectness == Softmax2 {
		sc *= 2
	}
	scoresShape := []int{tg.B, sc, tg.H, tg.W}
	deltasShape := []int{tg.B, 4 * tg.A, tg.H, tg.W}
	rnd := func(n int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64() * 0.5
		}
		return x
	}
	s := G.NewTensor(g, dt, 4, G.WithShape(scoresShape...), G.WithValue(values.Dense(dt, scoresShape, rnd(tensor.Shape(scoresShape).TotalSize()))), G.WithName("scores"))
	d := G.NewTensor(g, dt, 4, G.WithShape(deltasShape...), G.WithValue(values.Dense(dt, deltasShape, rnd(tensor.Shape(deltasShape).TotalSize()))), G.WithName("deltas"))
	tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
	if err != nil {
		b.Fatal(err)
	}
	total, _, _, err := Loss(s, d, tn, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := G.Grad(total, s, d); err != nil {
		b.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		switch mode {
		case assignViaNodes:
			err = tn.Assign(cfg, an, images)
		case assignViaSet:
			if tg, err = AssignTargets(cfg, an, images); err == nil {
				err = tn.Set(tg)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := m.RunAll(); err != nil {
			b.Fatal(err)
		}
		m.Reset()
	}
}

func BenchmarkLossFwdBwd8x64x64(b *testing.B)            { benchLoss(b, DefaultConfig(), false) }
func BenchmarkLossFwdBwd8x64x64Torchvision(b *testing.B) { benchLoss(b, TorchvisionConfig(), false) }
func BenchmarkAssignAndLoss8x64x64(b *testing.B)         { benchLoss(b, DefaultConfig(), true) }

// BenchmarkAssignAndLoss8x64x64Torchvision is issue 13's step with the default call
// (scripts/torch_compare.py --only rpn times torchvision's beside it); ...Set is the same step
// through AssignTargets and Set, the baseline.
func BenchmarkAssignAndLoss8x64x64Torchvision(b *testing.B) {
	benchStep(b, TorchvisionConfig(), assignViaNodes, 20)
}
func BenchmarkAssignAndLoss8x64x64TorchvisionSet(b *testing.B) {
	benchStep(b, TorchvisionConfig(), assignViaSet, 20)
}

// The step with 500 gt per image (scripts/torch_compare.py --only rpn --gt 500).
func BenchmarkAssignAndLoss8x64x64Torchvision500GT(b *testing.B) {
	benchStep(b, TorchvisionConfig(), assignViaNodes, 500)
}
func BenchmarkAssignAndLoss8x64x64Torchvision500GTSet(b *testing.B) {
	benchStep(b, TorchvisionConfig(), assignViaSet, 500)
}

// fpnScene is torchvision's FPN RPN on 8 images of 800x1216: sizes 32-512 on 5 levels (feature
// maps 200x304, 100x152, 50x76, 25x38, 13x19; strides 4-64), ratios 0.5/1/2, 242,991 anchors per
// image, random float32 logits N(0, 1) and deltas N(0, 1) (as a fresh head's outputs).
// The anchors are TorchvisionLevels': the fifth level has strides 61 (800 // 13) by 64 (1216 // 19).
//
// RPN_BENCH_DELTA_SCALE (scripts/proposals_compare.py --delta-scale) multiplies the deltas: at
// N(0, 1) many decoded boxes are large, which makes NMS (torchvision's most of all) dear; 0.1 is
// closer to a trained head's outputs.
func fpnScene(b *testing.B) ([]*Anchors, []G.Value, []G.Value, []Image) {
	rng := rand.New(rand.NewSource(33))
	deltaScale := 1.0
	if v := os.Getenv("RPN_BENCH_DELTA_SCALE"); v != "" {
		var err error
		if deltaScale, err = strconv.ParseFloat(v, 64); err != nil {
			b.Fatal(err)
		}
	}
	const B = 8
	levels := fpnLevels(b)
	var objectness, deltas []G.Value
	for _, an := range levels {
		hw := [2]int{an.H, an.W}
		s := make([]float64, B*an.A*hw[0]*hw[1])
		d := make([]float64, 4*len(s))
		for i := range s {
			s[i] = rng.NormFloat64()
		}
		for i := range d {
			d[i] = rng.NormFloat64() * deltaScale
		}
		objectness = append(objectness, values.Dense(tensor.Float32, tensor.Shape{B, an.A, hw[0], hw[1]}, s))
		deltas = append(deltas, values.Dense(tensor.Float32, tensor.Shape{B, 4 * an.A, hw[0], hw[1]}, d))
	}
	images := make([]Image, B)
	for i := range images {
		images[i] = Image{Height: 800, Width: 1216}
	}
	return levels, objectness, deltas, images
}

// fpnLevels is torchvision's FPN anchors for 800x1216: sizes 32-512, ratios 0.5/1/2, five maps.
func fpnLevels(b *testing.B) []*Anchors {
	levels, err := TorchvisionLevels(800, 1216, [][2]int{{200, 304}, {100, 152}, {50, 76}, {25, 38}, {13, 19}},
		[]float64{32, 64, 128, 256, 512}, []float64{0.5, 1, 2})
	if err != nil {
		b.Fatal(err)
	}
	return levels
}

// BenchmarkProposalsFPN8x800x1216: rpn.Proposals with TorchvisionProposals(train) and (eval),
// the default call; "with-anchors" also builds the five levels' anchors each time (torchvision's
// AnchorGenerator runs every forward); the floor reads every logit and selects each level's top
// n, without decoding or NMS. Compare with torchvision's anchors + decode + filter_proposals
// (scripts/proposals_compare.py runs both in one go).
func BenchmarkProposalsFPN8x800x1216(b *testing.B) {
	levels, objectness, deltas, images := fpnScene(b)
	for _, train := range []bool{true, false} {
		name := map[bool]string{true: "train", false: "eval"}[train]
		cfg := TorchvisionProposals(train)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Proposals(cfg, levels, objectness, deltas, images); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/with-anchors", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := Proposals(cfg, fpnLevels(b), objectness, deltas, images); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/floor-topn-only", func(b *testing.B) {
			var keys []float64
			var index []int32
			for i := 0; i < b.N; i++ {
				for l, an := range levels {
					data := objectness[l].Data().([]float32)
					n := an.A * an.H * an.W
					for im := range images {
						keys, index = keys[:0], index[:0]
						for k, v := range data[im*n : (im+1)*n] {
							keys = append(keys, float64(v))
							index = append(index, int32(k))
						}
						selectTop(keys, index, cfg.PreNMSTopN)
					}
				}
			}
		})
	}
}

// BenchmarkAssignFPN800x1216x500GT: AssignTargetsLevels (TorchvisionConfig) on one 800x1216 image
// with torchvision's five FPN levels (242,991 anchors) and 500 gt boxes. Every byte it allocates
// per call is reported (B/op, an upper bound on its peak), beside the anchors x gt float64 matrix
// it does not hold (maskrcnn-benchmark#18) as the metric matrix-B.
func BenchmarkAssignFPN800x1216x500GT(b *testing.B) {
	rng := rand.New(rand.NewSource(34))
	levels := fpnLevels(b)
	total := 0
	for _, an := range levels {
		total += len(an.Boxes)
	}
	im := Image{Height: 800, Width: 1216}
	for j := 0; j < 500; j++ {
		w, h := 8+rng.Float64()*300, 8+rng.Float64()*300
		x, y := rng.Float64()*(1216-w), rng.Float64()*(800-h)
		im.Boxes = append(im.Boxes, [4]float64{x, y, x + w, y + h})
	}
	cfg := TorchvisionConfig()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := AssignTargetsLevels(cfg, levels, []Image{im}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total*500*8), "matrix-B")
}
