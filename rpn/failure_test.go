package rpn

import (
	"errors"
	"fmt"
	"github.com/detlab/smoothl1/box"
	"math"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestFailureTable runs every bad input of every exported function of package rpn and checks
// that each returns an error naming the argument and the offending values (or, for the three
// functions without an error result, nil), and that nothing panics. The recover is here, in the
// test; the library never recovers. (Package op has its own table: op/badinput_test.go.)
func TestFailureTable(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	good := GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2})
	an, err := NewAnchors(good, 4, 5, 16)
	if err != nil {
		t.Fatal(err)
	}
	img := func(boxes ...[4]float64) []Image { return []Image{{Height: 64, Width: 80, Boxes: boxes}} }
	withCfg := func(f func(c *Config)) error {
		c := DefaultConfig()
		f(&c)
		_, err := AssignTargets(c, an, img([4]float64{10, 10, 40, 40}))
		return err
	}
	nilResult := func(name string, v [][4]float64) error {
		if v != nil {
			return nil
		}
		return errors.New(name + " returned nil")
	}
	g, other := G.NewGraph(), G.NewGraph()
	tn, err := NewTargetNodes(g, tensor.Float64, 2, 3, 4, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(g *G.ExprGraph, dt tensor.Dtype, shape ...int) *G.Node {
		return G.NewTensor(g, dt, len(shape), G.WithShape(shape...))
	}
	scores, deltas := mk(g, tensor.Float64, 2, 6, 4, 5), mk(g, tensor.Float64, 2, 12, 4, 5)
	loss := func(s, d *G.Node, tn *TargetNodes, cfg Config) error {
		_, _, _, err := Loss(s, d, tn, cfg)
		return err
	}
	cfg := DefaultConfig()

	cases := []struct {
		name string
		call func() error
		want []string
	}{
		// anchors
		{"GenerateAnchors base 0", func() error { return nilResult("GenerateAnchors", GenerateAnchors(0, []float64{1}, []float64{1})) }, []string{"returned nil"}},
		{"GenerateAnchors ratio NaN", func() error { return nilResult("GenerateAnchors", GenerateAnchors(16, []float64{nan}, []float64{1})) }, []string{"returned nil"}},
		{"GenerateAnchors scale -1", func() error { return nilResult("GenerateAnchors", GenerateAnchors(16, []float64{1}, []float64{-1})) }, []string{"returned nil"}},
		{"TorchvisionCellAnchors size Inf", func() error {
			return nilResult("TorchvisionCellAnchors", TorchvisionCellAnchors([]float64{inf}, []float64{1}))
		}, []string{"returned nil"}},
		{"GenerateAnchorsChecked base 0", func() error { _, err := GenerateAnchorsChecked(0, []float64{1}, []float64{1}); return err }, []string{"baseSize 0 is 0"}},
		{"GenerateAnchorsChecked ratio NaN", func() error { _, err := GenerateAnchorsChecked(16, []float64{1, nan}, []float64{1}); return err }, []string{"ratio 1 is NaN"}},
		{"GenerateAnchorsChecked no scales", func() error { _, err := GenerateAnchorsChecked(16, []float64{1}, nil); return err }, []string{"no scales"}},
		{"TorchvisionCellAnchorsChecked size -8", func() error { _, err := TorchvisionCellAnchorsChecked([]float64{-8}, []float64{1}); return err }, []string{"size 0 is -8"}},
		{"TorchvisionCellAnchorsChecked no ratios", func() error { _, err := TorchvisionCellAnchorsChecked([]float64{8}, nil); return err }, []string{"no ratios"}},
		{"TorchvisionLevels sizes", func() error { _, err := TorchvisionLevels(64, 64, [][2]int{{8, 8}}, nil, []float64{1}); return err }, []string{"1 feature maps and 0 sizes"}},
		{"TorchvisionLevels map larger than image", func() error {
			_, err := TorchvisionLevels(64, 64, [][2]int{{8, 8}, {128, 8}}, []float64{16, 32}, []float64{1})
			return err
		}, []string{"level 1", "128x8", "64x64"}},
		{"NewAnchorsStrides strideX Inf", func() error { _, err := NewAnchorsStrides(good, 2, 2, 8, inf); return err }, []string{"NewAnchorsStrides", "stride", "+Inf"}},
		{"ShiftAnchors no cell", func() error { _, err := ShiftAnchors(nil, 2, 2, 16); return err }, []string{"no cell anchors"}},
		{"ShiftAnchors empty map", func() error { _, err := ShiftAnchors(good, 0, 5, 16); return err }, []string{"0x5"}},
		{"ShiftAnchors stride 0", func() error { _, err := ShiftAnchors(good, 2, 2, 0); return err }, []string{"stride", "got 0"}},
		{"ShiftAnchors stride NaN", func() error { _, err := ShiftAnchors(good, 2, 2, nan); return err }, []string{"stride", "NaN"}},
		{"ShiftAnchors NaN cell", func() error { _, err := ShiftAnchors([][4]float64{{0, nan, 1, 1}}, 2, 2, 16); return err }, []string{"cell anchor 0", "non-finite"}},
		{"ShiftAnchors inverted cell", func() error { _, err := ShiftAnchors([][4]float64{{5, 0, 1, 1}}, 2, 2, 16); return err }, []string{"cell anchor 0", "x2 < x1"}},
		{"NewAnchors from invalid GenerateAnchors", func() error { _, err := NewAnchors(GenerateAnchors(-1, nil, nil), 2, 2, 16); return err }, []string{"no cell anchors"}},
		// assignment
		{"AssignTargets nil anchors", func() error { _, err := AssignTargets(cfg, nil, img()); return err }, []string{"anchors are nil"}},
		{"AssignTargets empty anchor set", func() error { _, err := AssignTargets(cfg, &Anchors{}, img()); return err }, []string{"A=0 H=0 W=0"}},
		{"AssignTargets anchor count", func() error {
			_, err := AssignTargets(cfg, &Anchors{Boxes: an.Boxes[:5], A: an.A, H: an.H, W: an.W}, img())
			return err
		}, []string{"5 anchor boxes", "= 120"}},
		{"AssignTargets NaN anchor", func() error {
			boxes := append([][4]float64(nil), an.Boxes...)
			boxes[7][2] = nan
			_, err := AssignTargets(cfg, &Anchors{Boxes: boxes, A: an.A, H: an.H, W: an.W}, img())
			return err
		}, []string{"anchor 7", "non-finite"}},
		{"AssignTargets no images", func() error { _, err := AssignTargets(cfg, an, nil); return err }, []string{"no images"}},
		{"AssignTargets image size 0", func() error { _, err := AssignTargets(cfg, an, []Image{{Height: 0, Width: 80}}); return err }, []string{"image 0", "0x80"}},
		{"AssignTargets image size NaN", func() error { _, err := AssignTargets(cfg, an, []Image{{Height: 64, Width: nan}}); return err }, []string{"image 0", "64xNaN"}},
		{"AssignTargets gt x2 < x1", func() error { _, err := AssignTargets(cfg, an, img([4]float64{10, 10, 5, 40})); return err }, []string{"image 0, gt box 0", "[10 10 5 40]", "x2 < x1"}},
		{"AssignTargets gt NaN", func() error {
			_, err := AssignTargets(cfg, an, img([4]float64{10, 10, 40, 40}, [4]float64{nan, 0, 1, 1}))
			return err
		}, []string{"gt box 1", "non-finite"}},
		{"AssignTargets gt Inf", func() error { _, err := AssignTargets(cfg, an, img([4]float64{0, 0, inf, 1})); return err }, []string{"gt box 0", "non-finite"}},
		{"AssignTargets zero-area gt (no +1)", func() error {
			_, err := AssignTargets(TorchvisionConfig(), an, img([4]float64{10, 10, 10, 40}))
			return err
		}, []string{"gt box 0", "zero width or height"}},
		{"Config PositiveIoU 2", func() error { return withCfg(func(c *Config) { c.PositiveIoU = 2 }) }, []string{"PositiveIoU", "2"}},
		{"Config NegativeIoU > PositiveIoU", func() error { return withCfg(func(c *Config) { c.NegativeIoU = 0.8 }) }, []string{"NegativeIoU", "0.8"}},
		{"Config AnchorsPerImage 0", func() error { return withCfg(func(c *Config) { c.AnchorsPerImage = 0 }) }, []string{"AnchorsPerImage", "0"}},
		{"Config FgFraction 1.5", func() error { return withCfg(func(c *Config) { c.FgFraction = 1.5 }) }, []string{"FgFraction", "1.5"}},
		{"Config AllowedBorder NaN", func() error { return withCfg(func(c *Config) { c.AllowedBorder = nan }) }, []string{"AllowedBorder", "NaN"}},
		{"Config Sigma -3", func() error { return withCfg(func(c *Config) { c.Sigma = -3 }) }, []string{"Sigma", "-3"}},
		{"Config Sigma and Beta", func() error { return withCfg(func(c *Config) { c.Beta = 0.1 }) }, []string{"Sigma (3)", "Beta (0.1)"}},
		{"Config Beta NaN", func() error { return withCfg(func(c *Config) { c.Sigma, c.Beta = 0, nan }) }, []string{"Beta", "NaN"}},
		{"Config Lambda -1", func() error { return withCfg(func(c *Config) { c.Lambda = -1 }) }, []string{"Lambda", "-1"}},
		{"Config PositiveWeight 1", func() error { return withCfg(func(c *Config) { c.PositiveWeight = 1 }) }, []string{"PositiveWeight", "1"}},
		{"Config PositiveWeight with PerBatch", func() error {
			return withCfg(func(c *Config) { c.PositiveWeight, c.Normalisation = 0.5, PerBatch })
		}, []string{"PositiveWeight (0.5)", "per-batch"}},
		{"Config Objectness", func() error { return withCfg(func(c *Config) { c.Objectness = 5 }) }, []string{"Objectness(5)"}},
		{"Config Normalisation", func() error { return withCfg(func(c *Config) { c.Normalisation = 5 }) }, []string{"Normalisation(5)"}},
		{"Config coder weight 0", func() error { return withCfg(func(c *Config) { c.Coder.Weights[2] = 0 }) }, []string{"weight 2", "0"}},
		{"BoxCoder ClampLog NaN", func() error { c := TorchvisionCoder(); c.ClampLog = nan; return c.Validate() }, []string{"ClampLog", "NaN"}},
		{"NMS lengths", func() error { _, err := box.NMS(good, []float64{1}, 0.5, 0, true); return err }, []string{"6 boxes", "1 scores"}},
		{"NMS thresh NaN", func() error { _, err := box.NMS(good, make([]float64, 6), nan, 0, true); return err }, []string{"thresh is NaN"}},
		// target nodes and loss
		{"NewTargetNodes nil graph", func() error { _, err := NewTargetNodes(nil, tensor.Float64, 1, 1, 1, 1, nil); return err }, []string{"graph is nil"}},
		{"NewTargetNodes int dtype", func() error { _, err := NewTargetNodes(g, tensor.Int, 1, 1, 1, 1, nil); return err }, []string{"dtype int"}},
		{"NewTargetNodes B 0", func() error { _, err := NewTargetNodes(g, tensor.Float64, 0, 1, 1, 1, nil); return err }, []string{"B=0"}},
		{"Set nil targets", func() error { return tn.Set(nil) }, []string{"targets are nil"}},
		{"Set on nil nodes", func() error { var none *TargetNodes; return none.Set(&Targets{}) }, []string{"target nodes are nil"}},
		{"Set batch mismatch", func() error { return tn.Set(&Targets{B: 3, A: 3, H: 4, W: 5}) }, []string{"B=3", "B=2"}},
		{"Set short data", func() error { return tn.Set(&Targets{B: 2, A: 3, H: 4, W: 5, Labels: make([]float64, 5)}) }, []string{"rpn_labels has 5 values", "want 120"}},
		{"Loss nil scores", func() error { return loss(nil, deltas, tn, cfg) }, []string{"scores (false)"}},
		{"Loss nil targets", func() error { return loss(scores, deltas, nil, cfg) }, []string{"targets are nil"}},
		{"Loss score channels", func() error { return loss(mk(g, tensor.Float64, 2, 3, 4, 5), deltas, tn, cfg) }, []string{"scores have shape (2, 3, 4, 5)", "(2, 6, 4, 5)"}},
		{"Loss batch mismatch", func() error { return loss(mk(g, tensor.Float64, 3, 6, 4, 5), deltas, tn, cfg) }, []string{"(3, 6, 4, 5)", "B=2"}},
		{"Loss feature map mismatch", func() error { return loss(scores, mk(g, tensor.Float64, 2, 12, 5, 5), tn, cfg) }, []string{"deltas have shape (2, 12, 5, 5)", "(2, 12, 4, 5)"}},
		{"Loss dtype", func() error {
			return loss(mk(g, tensor.Float32, 2, 6, 4, 5), mk(g, tensor.Float32, 2, 12, 4, 5), tn, cfg)
		}, []string{"float32", "float64"}},
		{"Loss other graph", func() error {
			return loss(mk(other, tensor.Float64, 2, 6, 4, 5), mk(other, tensor.Float64, 2, 12, 4, 5), tn, cfg)
		}, []string{"one graph"}},
		{"Loss nil target node", func() error { half := *tn; half.InsideWeights = nil; return loss(scores, deltas, &half, cfg) }, []string{"target node is nil"}},
		{"LossLevels no levels", func() error { _, _, _, err := LossLevels(nil, nil, nil, cfg); return err }, []string{"0 levels of scores"}},
		{"LossLevels shared targets", func() error {
			_, _, _, err := LossLevels([]*G.Node{scores, scores}, []*G.Node{deltas, deltas}, []*TargetNodes{tn, tn}, cfg)
			return err
		}, []string{"levels 0 and 1 share target nodes"}},
		{"AssignTargetsLevels no levels", func() error { _, err := AssignTargetsLevels(cfg, nil, img()); return err }, []string{"no levels"}},
		{"AssignTargetsLevels nil level", func() error { _, err := AssignTargetsLevels(cfg, []*Anchors{an, nil}, img()); return err }, []string{"level 1", "anchors are nil"}},
		{"Proposals bad config", func() error {
			pc := TorchvisionProposals(true)
			pc.MinSize = -1
			_, err := Proposals(pc, []*Anchors{an}, nil, nil, img())
			return err
		}, []string{"MinSize", "-1"}},
		{"Proposals level counts", func() error {
			_, err := Proposals(TorchvisionProposals(true), []*Anchors{an}, nil, nil, img())
			return err
		}, []string{"1 levels of anchors, 0 of objectness"}},
		{"Proposals shape", func() error {
			v := tensor.New(tensor.WithShape(1, 6, 4, 5), tensor.WithBacking(make([]float64, 120)))
			_, err := Proposals(TorchvisionProposals(true), []*Anchors{an}, []G.Value{v}, []G.Value{v}, img())
			return err
		}, []string{"deltas[0] has shape (1, 6, 4, 5)", "want (1, 24, 4, 5)"}},
		{"Proposals no images", func() error {
			_, err := Proposals(TorchvisionProposals(true), []*Anchors{an}, []G.Value{nil}, []G.Value{nil}, nil)
			return err
		}, []string{"no images"}},
		{"Proposals value type", func() error {
			_, err := Proposals(TorchvisionProposals(true), []*Anchors{an}, []G.Value{G.NewF64(1)}, []G.Value{nil}, img())
			return err
		}, []string{"objectness[0] is *gorgonia.F64"}},
		{"Loss bad config", func() error { c := cfg; c.Sigma = -1; return loss(scores, deltas, tn, c) }, []string{"Sigma", "-1"}},
		{"ObjectnessLoss nil weights", func() error { _, err := ObjectnessLoss(scores, tn.Labels, nil, Softmax2); return err }, []string{"weights is nil"}},
		{"ObjectnessLoss kind", func() error { _, err := ObjectnessLoss(scores, tn.Labels, tn.ClsWeights, 7); return err }, []string{"Objectness(7)"}},
		{"ObjectnessLoss labels shape", func() error {
			_, err := ObjectnessLoss(scores, mk(g, tensor.Float64, 2, 2, 4, 5), tn.ClsWeights, Softmax2)
			return err
		}, []string{"labels have shape (2, 2, 4, 5)", "(2, 3, 4, 5)"}},
		{"ObjectnessLoss odd channels", func() error {
			_, err := ObjectnessLoss(mk(g, tensor.Float64, 2, 5, 4, 5), tn.Labels, tn.ClsWeights, Softmax2)
			return err
		}, []string{"channel count 5"}},
		{"ObjectnessLoss rank", func() error {
			_, err := ObjectnessLoss(mk(g, tensor.Float64, 6, 4), tn.Labels, tn.ClsWeights, Sigmoid)
			return err
		}, []string{"shape (6, 4)"}},
		{"ObjectnessLoss int scores", func() error {
			_, err := ObjectnessLoss(mk(g, tensor.Int, 2, 3, 4, 5), tn.Labels, tn.ClsWeights, Sigmoid)
			return err
		}, []string{"dtype int"}},
		{"ObjectnessLoss dtype mismatch", func() error {
			_, err := ObjectnessLoss(mk(g, tensor.Float32, 2, 3, 4, 5), tn.Labels, tn.ClsWeights, Sigmoid)
			return err
		}, []string{"labels have dtype float64", "float32"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("PANIC: %v", r)
						t.Errorf("panicked: %v", r)
					}
				}()
				err = c.call()
			}()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
