package fastrcnn

import (
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestObjectiveGradcheck checks the gradient of Objective (an RPN stand-in Σ x² plus the head
// loss) with respect to the logits, the deltas and x against central finite differences, on
// both machines, float32 and float64, both presets, with 4 padding rows. The deltas are their
// targets plus offsets of magnitude 0.03-0.06 or 0.5-2 (inside weights scale nothing: they are
// 1), so every residual is at least 0.05 from the smooth L1 kink at beta (1/9 or 1) and from 0.
func TestObjectiveGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	images := []Image{randomImage(rng, 2, 2, 9, 150), randomImage(rng, 1, 2, 6, 150)}
	for _, preset := range []struct {
		name string
		cfg  Config
	}{{"torchvision", TorchvisionConfig(2)}, {"py-faster-rcnn", PyFasterRCNNConfig(2)}} {
		tg, err := SampleTargets(preset.cfg, images)
		if err != nil {
			t.Fatal(err)
		}
		rows, C := tg.Rows()+4, preset.cfg.Columns()
		if tg.Rows() < 4 || tg.NumFg[0]+tg.NumFg[1] == 0 {
			t.Fatalf("%s: %d rows, %v fg: the case needs foreground and background", preset.name, tg.Rows(), tg.NumFg)
		}
		logits := make([]float64, rows*(preset.cfg.NumClasses+1))
		for i := range logits {
			logits[i] = rng.NormFloat64()
		}
		deltas := make([]float64, rows*C)
		for i := range deltas {
			var target float64
			if i < len(tg.BBoxTargets) {
				target = tg.BBoxTargets[i]
			}
			mag := 0.03 + 0.03*rng.Float64()
			if rng.Intn(2) == 0 {
				mag = 0.5 + 1.5*rng.Float64()
			}
			if preset.cfg.Beta == 1 && mag < 1 {
				mag += 0.2 // beyond 0.05 of 0 and of the kink at 1
			}
			if rng.Intn(2) == 0 {
				mag = -mag
			}
			deltas[i] = target + mag
		}
		x := []float64{0.3, -0.7, 1.1}
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				t.Run(preset.name+"/"+dt.String()+"/"+machine.String(), func(t *testing.T) {
					cfg := preset.cfg
					build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
						tn, err := NewTargetNodes(g, dt, rows, cfg, tg)
						if err != nil {
							return nil, err
						}
						rpnTotal, err := G.Sum(G.Must(G.Square(in[2])))
						if err != nil {
							return nil, err
						}
						total, _, _, err := Objective(rpnTotal, in[0], in[1], tn)
						return total, err
					}
					inputs := []gradcheck.Input{
						{Name: "logits", Value: values.Dense(dt, tensor.Shape{rows, cfg.NumClasses + 1}, logits), Wrt: true},
						{Name: "deltas", Value: values.Dense(dt, tensor.Shape{rows, C}, deltas), Wrt: true},
						{Name: "x", Value: values.Dense(dt, tensor.Shape{3}, x), Wrt: true},
					}
					if err := gradcheck.Graph(build, inputs, gradcheck.Options{Machine: machine}); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
