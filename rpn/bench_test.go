package rpn

import (
	"math/rand"
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

// benchLoss: forward + backward of the full objective through a TapeMachine, float32.
func benchLoss(b *testing.B, cfg Config, withAssign bool) {
	rng := rand.New(rand.NewSource(32))
	an, images := bigScene(rng, 8, 20)
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
		if withAssign {
			if tg, err = AssignTargets(cfg, an, images); err != nil {
				b.Fatal(err)
			}
			if err := tn.Set(tg); err != nil {
				b.Fatal(err)
			}
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
func BenchmarkAssignAndLoss8x64x64Torchvision(b *testing.B) {
	benchLoss(b, TorchvisionConfig(), true)
}
