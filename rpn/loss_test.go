package rpn

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// smallBatch: two 64x80 images (2 and 0 gt boxes... and a third with 1) on a 4x5 feature map.
func smallBatch(t *testing.T, cfg Config, rng *rand.Rand) (*Anchors, *Targets) {
	t.Helper()
	var cell [][4]float64
	if cfg.Objectness == Softmax2 {
		cell = GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2})
	} else {
		cell = TorchvisionCellAnchors([]float64{24, 48}, []float64{0.5, 1, 2})
	}
	an, err := NewAnchors(cell, 4, 5, 16)
	if err != nil {
		t.Fatal(err)
	}
	images := []Image{
		{Height: 64, Width: 80, Boxes: randomBoxes(rng, 2, 60, 14, 40)},
		{Height: 64, Width: 80},
		{Height: 64, Width: 80, Boxes: randomBoxes(rng, 1, 60, 20, 44)},
	}
	tg, err := AssignTargets(cfg, an, images)
	if err != nil {
		t.Fatal(err)
	}
	return an, tg
}

// TestLossGradcheck: the full objective (cls + 2*reg, lambda 2) against central finite
// differences with respect to scores and deltas, both configs, both machines, float64 (1e-6)
// and float32 (2e-3, step 1e-2). Deltas are kept 0.05 away from the smooth L1 kinks.
func TestLossGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(21))
	for _, cfg := range []Config{DefaultConfig(), TorchvisionConfig()} {
		cfg.Lambda = 2
		_, tg := smallBatch(t, cfg, rng)
		beta := cfg.Beta
		if cfg.Sigma != 0 {
			beta = 1 / (cfg.Sigma * cfg.Sigma)
		}
		scoresShape := []int{tg.B, tg.A, tg.H, tg.W}
		if cfg.Objectness == Softmax2 {
			scoresShape[1] *= 2
		}
		scores := make([]float64, tensor.Shape(scoresShape).TotalSize())
		for i := range scores {
			scores[i] = rng.NormFloat64() * 2
		}
		deltas := make([]float64, len(tg.BBoxTargets))
		for i := range deltas {
			for {
				deltas[i] = tg.BBoxTargets[i] + rng.NormFloat64()*0.4
				r := math.Abs(deltas[i] - tg.BBoxTargets[i])
				if r > 0.05 && math.Abs(r-beta) > 0.05 {
					break
				}
			}
		}
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				t.Run(fmt.Sprintf("%v/%v/%v", cfg.Objectness, dt, machine), func(t *testing.T) {
					build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
						tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
						if err != nil {
							return nil, err
						}
						total, _, _, err := Loss(in[0], in[1], tn, cfg)
						return total, err
					}
					inputs := []gradcheck.Input{
						{Name: "scores", Value: values.Dense(dt, scoresShape, scores), Wrt: true},
						{Name: "deltas", Value: values.Dense(dt, []int{tg.B, 4 * tg.A, tg.H, tg.W}, deltas), Wrt: true},
					}
					if err := gradcheck.Graph(build, inputs, gradcheck.Options{Machine: machine}); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestObjectnessExtremeLogits: logits of ±1e4 give finite losses and gradients. Sigmoid,
// weight 1: z = 1e4, y = 0 → ce = 1e4 (max(z,0) + log1p(exp(-1e4)) = 1e4 + 0), grad
// sigmoid(1e4) - 0 = 1; z = -1e4, y = 0 → ce = 0, grad 0; z = 1e4, y = 1 → ce = 0, grad 0;
// z = -1e4, y = 1 → ce = 1e4, grad -1. Total 2e4.
func TestObjectnessExtremeLogits(t *testing.T) {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		g := G.NewGraph()
		shape := []int{1, 4, 1, 1}
		s := G.NewTensor(g, dt, 4, G.WithShape(shape...), G.WithValue(values.Dense(dt, shape, []float64{1e4, -1e4, 1e4, -1e4})), G.WithName("s"))
		l := G.NewTensor(g, dt, 4, G.WithShape(shape...), G.WithValue(values.Dense(dt, shape, []float64{0, 0, 1, 1})), G.WithName("l"))
		w := G.NewTensor(g, dt, 4, G.WithShape(shape...), G.WithValue(values.Dense(dt, shape, []float64{1, 1, 1, 1})), G.WithName("w"))
		loss, err := ObjectnessLoss(s, l, w, Sigmoid)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, s)
		if err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g)
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		m.Close()
		assertClose(t, fmt.Sprintf("%v loss", dt), []float64{scalarValue(t, loss.Value())}, []float64{2e4}, 0)
		assertClose(t, fmt.Sprintf("%v grad", dt), floats(grads[0].Value()), []float64{1, 0, 0, -1}, 0)
	}
}

// TestObjectnessSoftmax2MatchesSigmoid: the 2-class softmax loss of (bg, fg) equals the sigmoid
// loss of fg - bg, and its gradients are ±the sigmoid gradient.
func TestObjectnessSoftmax2MatchesSigmoid(t *testing.T) {
	g := G.NewGraph()
	// A = 2 anchors, 1x1 map: scores (1, 4, 1, 1) = bg0, bg1, fg0, fg1
	s2 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 4, 1, 1), G.WithValue(values.Dense(tensor.Float64, []int{1, 4, 1, 1}, []float64{0.5, -1, 2, 3})), G.WithName("s2"))
	s1 := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 2, 1, 1), G.WithValue(values.Dense(tensor.Float64, []int{1, 2, 1, 1}, []float64{2 - 0.5, 3 + 1})), G.WithName("s1"))
	lab := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 2, 1, 1), G.WithValue(values.Dense(tensor.Float64, []int{1, 2, 1, 1}, []float64{1, 0})), G.WithName("lab"))
	w := G.NewTensor(g, tensor.Float64, 4, G.WithShape(1, 2, 1, 1), G.WithValue(values.Dense(tensor.Float64, []int{1, 2, 1, 1}, []float64{0.5, 2})), G.WithName("w"))
	l2 := G.Must(ObjectnessLoss(s2, lab, w, Softmax2))
	l1 := G.Must(ObjectnessLoss(s1, lab, w, Sigmoid))
	g2, err := G.Grad(l2, s2)
	if err != nil {
		t.Fatal(err)
	}
	g1 := gradAndRun(t, g, l1, s1)
	assertClose(t, "loss", []float64{scalarValue(t, l2.Value())}, []float64{scalarValue(t, l1.Value())}, 1e-15)
	d1, d2 := floats(g1[0].Value()), floats(g2[0].Value())
	assertClose(t, "grad", d2, []float64{-d1[0], -d1[1], d1[0], d1[1]}, 1e-15)
}

// TestObjectnessRejectsBadLabels: a label other than -1, 0, 1 is a run-time error naming it.
func TestObjectnessRejectsBadLabels(t *testing.T) {
	g := G.NewGraph()
	shape := []int{1, 1, 1, 2}
	s := G.NewTensor(g, tensor.Float64, 4, G.WithShape(shape...), G.WithValue(values.Dense(tensor.Float64, shape, []float64{0, 0})), G.WithName("s"))
	l := G.NewTensor(g, tensor.Float64, 4, G.WithShape(shape...), G.WithValue(values.Dense(tensor.Float64, shape, []float64{1, 2})), G.WithName("l"))
	w := G.NewTensor(g, tensor.Float64, 4, G.WithShape(shape...), G.WithValue(values.Dense(tensor.Float64, shape, []float64{1, 1})), G.WithName("w"))
	loss := G.Must(ObjectnessLoss(s, l, w, Sigmoid))
	_ = loss
	m := G.NewTapeMachine(g)
	defer m.Close()
	err := m.RunAll()
	if err == nil || !strings.Contains(err.Error(), "label 1 is 2") {
		t.Fatalf("error %v, want one naming label 1 = 2", err)
	}
}
