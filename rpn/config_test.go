package rpn

import (
	"math/rand"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestNormalisationRecorded: Targets record their Config, so a Loss whose normalisation differs
// from the one AssignTargets baked into the weights is an error (before: a silently mis-scaled
// loss), whichever of TargetNodes.Set and Loss comes first; one Config for both is accepted.
func TestNormalisationRecorded(t *testing.T) {
	rng := rand.New(rand.NewSource(81))
	assignCfg := DefaultConfig() // PerImage
	_, tg := smallBatch(t, assignCfg, rng)
	if c, ok := tg.Config(); !ok || c.Normalisation != PerImage {
		t.Fatalf("Targets.Config() = %v, %t", c.Normalisation, ok)
	}
	lossCfg := assignCfg
	lossCfg.Normalisation = PerBatch
	// build makes scores, deltas and target nodes in a new graph, with tg bound when given
	build := func(bound *Targets) (s, d *G.Node, tn *TargetNodes) {
		g := G.NewGraph()
		s = G.NewTensor(g, tensor.Float64, 4, G.WithShape(tg.B, 2*tg.A, tg.H, tg.W), G.WithName("s"))
		d = G.NewTensor(g, tensor.Float64, 4, G.WithShape(tg.B, 4*tg.A, tg.H, tg.W), G.WithName("d"))
		tn, err := NewTargetNodes(g, tensor.Float64, tg.B, tg.A, tg.H, tg.W, bound)
		if err != nil {
			t.Fatal(err)
		}
		return s, d, tn
	}
	for _, c := range []struct {
		name string
		run  func() error
		want string
	}{
		{"targets first, then a loss with another normalisation", func() error {
			s, d, tn := build(tg)
			_, _, _, err := Loss(s, d, tn, lossCfg)
			return err
		}, "assigned with Normalisation per-image but the loss uses Normalisation per-batch"},
		{"loss first, then targets of another normalisation", func() error {
			s, d, tn := build(nil)
			if _, _, _, err := Loss(s, d, tn, lossCfg); err != nil {
				return err
			}
			return tn.Set(tg)
		}, "TargetNodes.Set: the targets were assigned with Normalisation per-image"},
		{"two losses of different normalisations on one set of nodes", func() error {
			s, d, tn := build(nil)
			if _, _, _, err := Loss(s, d, tn, assignCfg); err != nil {
				return err
			}
			_, _, _, err := Loss(s, d, tn, lossCfg)
			return err
		}, "already feed a loss with Normalisation per-image"},
		{"positive weight differs", func() error {
			s, d, tn := build(tg)
			c := assignCfg
			c.PositiveWeight = 0.25
			_, _, _, err := Loss(s, d, tn, c)
			return err
		}, "PositiveWeight 0.25"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	// one Config for both: accepted, and Set keeps accepting targets of that Config
	s, d, tn := build(tg)
	if _, _, _, err := Loss(s, d, tn, assignCfg); err != nil {
		t.Fatal(err)
	}
	if err := tn.Set(tg); err != nil {
		t.Fatal(err)
	}
}

// TestDetectron2Normalisation: Detectron2Config labels exactly as TorchvisionConfig (same
// matcher and sampler) and divides by AnchorsPerImage x B instead of S, the sampled count: with
// the same beta (1/9 here, to compare), cls_d2 = cls_tv * S / (256 B) and reg_d2 = reg_tv * S /
// (256 B) (hand-derived from the two normalisations), on both machines. Its own beta is 0 (L1).
func TestDetectron2Normalisation(t *testing.T) {
	if c := Detectron2Config(); c.Beta != 0 || c.Sigma != 0 || c.Normalisation != PerAnchorBudget || c.Objectness != Sigmoid {
		t.Fatalf("Detectron2Config: %+v", c)
	}
	rng := rand.New(rand.NewSource(82))
	tv := TorchvisionConfig()
	an, _ := smallBatch(t, tv, rng)
	d2 := Detectron2Config()
	d2.Beta = tv.Beta
	images := []Image{
		{Height: 64, Width: 80, Boxes: randomBoxes(rng, 2, 60, 14, 40)},
		{Height: 64, Width: 80, Boxes: randomBoxes(rng, 1, 60, 20, 44)},
	}
	tgTV, err := AssignTargets(tv, an, images)
	if err != nil {
		t.Fatal(err)
	}
	tgD2, err := AssignTargets(d2, an, images)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "labels", tgD2.Labels, tgTV.Labels)
	S := 0
	for b := range images {
		S += tgTV.NumPos[b] + tgTV.NumNeg[b]
	}
	scale := float64(S) / (256 * float64(len(images)))
	shape, scores, deltas := randomOutputs(rng, tv, tgTV)
	for _, lisp := range []bool{false, true} {
		clsTV, regTV, _, _ := runLoss(t, tv, tgTV, shape, scores, deltas, tensor.Float64, lisp)
		clsD2, regD2, _, _ := runLoss(t, d2, tgD2, shape, scores, deltas, tensor.Float64, lisp)
		assertClose(t, "cls", []float64{clsD2}, []float64{clsTV * scale}, 1e-14)
		assertClose(t, "reg", []float64{regD2}, []float64{regTV * scale}, 1e-14)
	}
}
