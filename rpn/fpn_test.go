package rpn

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// fpnCase is one case of testdata/fpn_golden.json (gen_fpn_fixtures.py): torchvision 0.14's
// RegionProposalNetwork with 2 or 3 levels.
type fpnCase struct {
	Name                 string
	ImH                  float64 `json:"im_h"`
	ImW                  float64 `json:"im_w"`
	Maps                 [][2]int
	Strides              [][2]float64
	Sizes, Ratios        []float64
	Gt                   [][]float64
	Anchors              []float64
	Labels               [][]float64
	RegTargets           [][]float64 `json:"reg_targets"`
	Objectness, Deltas   [][]float64
	ClsLoss              float64 `json:"cls_loss"`
	BoxLoss              float64 `json:"box_loss"`
	DObjectness, DDeltas [][]float64
}

func loadFPNCases(t *testing.T) []fpnCase { return loadCases[fpnCase](t, "fpn_golden.json") }

// runLossLevels evaluates LossLevels and the gradients w.r.t. every level's scores and deltas.
func runLossLevels(t *testing.T, cfg Config, ts []*Targets, scores, deltas [][]float64, dt tensor.Dtype, lisp bool) (cls, reg float64, ds, dd [][]float64) {
	t.Helper()
	g := G.NewGraph()
	var sn, dn []*G.Node
	var tns []*TargetNodes
	for l, tg := range ts {
		sshape, dshape := tensor.Shape{tg.B, tg.A, tg.H, tg.W}, tensor.Shape{tg.B, 4 * tg.A, tg.H, tg.W}
		sn = append(sn, G.NewTensor(g, dt, 4, G.WithShape(sshape...), G.WithValue(values.Dense(dt, sshape, scores[l])), G.WithName(fmt.Sprint("scores", l))))
		dn = append(dn, G.NewTensor(g, dt, 4, G.WithShape(dshape...), G.WithValue(values.Dense(dt, dshape, deltas[l])), G.WithName(fmt.Sprint("deltas", l))))
		tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
		if err != nil {
			t.Fatal(err)
		}
		tns = append(tns, tn)
	}
	total, c, r, err := LossLevels(sn, dn, tns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	wrt := append(append([]*G.Node(nil), sn...), dn...)
	var grads G.Nodes
	var m G.VM
	if lisp {
		m = G.NewLispMachine(g)
	} else {
		if grads, err = G.Grad(total, wrt...); err != nil {
			t.Fatal(err)
		}
		m = G.NewTapeMachine(g)
	}
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	for i, n := range wrt {
		var v G.Value
		if lisp {
			v, _ = n.Grad()
		} else {
			v = grads[i].Value()
		}
		if i < len(sn) {
			ds = append(ds, floats(v))
		} else {
			dd = append(dd, floats(v))
		}
	}
	return scalarValue(t, c.Value()), scalarValue(t, r.Value()), ds, dd
}

// TestFPNTorchvisionParity: AssignTargetsLevels + LossLevels reproduce torchvision 0.14's FPN
// RPN (one Matcher and one sampler over the levels' concatenated anchors): the anchors (exact),
// every anchor's label, the positives' regression targets, both losses and the gradients w.r.t.
// every level's objectness and deltas, to 1e-12, on both machines.
func TestFPNTorchvisionParity(t *testing.T) {
	for _, c := range loadFPNCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			var levels []*Anchors
			var all []float64
			for l, hw := range c.Maps {
				if c.Strides[l][0] != c.Strides[l][1] {
					t.Fatalf("level %d strides %v", l, c.Strides[l])
				}
				an, err := NewAnchors(TorchvisionCellAnchors([]float64{c.Sizes[l]}, c.Ratios), hw[0], hw[1], c.Strides[l][0])
				if err != nil {
					t.Fatal(err)
				}
				levels = append(levels, an)
				all = append(all, flatten(an.Boxes)...)
			}
			assertClose(t, "anchors", all, c.Anchors, 0)
			cfg := TorchvisionConfig()
			ts, err := AssignTargetsLevels(cfg, levels, imagesOf(c.ImH, c.ImW, c.Gt))
			if err != nil {
				t.Fatal(err)
			}
			positivesPerLevel := make([]int, len(levels))
			for b := range c.Labels {
				n := 0 // index into the concatenation
				for l, an := range levels {
					lay := layout{an.A, an.H, an.W}
					for local := 0; local < lay.anchors(); local, n = local+1, n+1 {
						want := c.Labels[b][n]
						if got := ts[l].Labels[lay.perAnchor(b, local)]; got != want {
							t.Fatalf("image %d anchor %d (level %d, %d): label %v, torchvision %v", b, n, l, local, got, want)
						}
						if want != 1 {
							continue
						}
						positivesPerLevel[l]++
						for k := 0; k < 4; k++ {
							if got := ts[l].BBoxTargets[lay.perDelta(b, local, k)]; math.Abs(got-c.RegTargets[b][4*n+k]) > 1e-12 {
								t.Fatalf("image %d anchor %d delta %d: %v, torchvision %v", b, n, k, got, c.RegTargets[b][4*n+k])
							}
						}
					}
				}
			}
			t.Logf("positives per level %v", positivesPerLevel)
			for _, lisp := range []bool{false, true} {
				cls, reg, ds, dd := runLossLevels(t, cfg, ts, c.Objectness, c.Deltas, tensor.Float64, lisp)
				assertClose(t, "cls", []float64{cls}, []float64{c.ClsLoss}, 1e-12)
				assertClose(t, "reg", []float64{reg}, []float64{c.BoxLoss}, 1e-12)
				for l := range levels {
					assertClose(t, fmt.Sprintf("level %d dobjectness", l), ds[l], c.DObjectness[l], 1e-12)
					assertClose(t, fmt.Sprintf("level %d ddeltas", l), dd[l], c.DDeltas[l], 1e-12)
				}
			}
		})
	}
}

// TestTorchvisionLevelsUneven: TorchvisionLevels reproduces torchvision's AnchorGenerator where
// the image is not a multiple of the feature map (50x90 with 13x19 and 7x10 maps: strides 3 by
// 4 and 7 by 9, image // map per axis), exactly (fixture "uneven" of gen_fpn_fixtures.py); the
// grid window with different strides down and across equals visiting every anchor.
func TestTorchvisionLevelsUneven(t *testing.T) {
	var f struct {
		Uneven struct {
			ImH           int `json:"im_h"`
			ImW           int `json:"im_w"`
			Maps          [][2]int
			Sizes, Ratios []float64
			Anchors       []float64
		}
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "fpn_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	u := f.Uneven
	levels, err := TorchvisionLevels(u.ImH, u.ImW, u.Maps, u.Sizes, u.Ratios)
	if err != nil {
		t.Fatal(err)
	}
	var all []float64
	for _, an := range levels {
		all = append(all, flatten(an.Boxes)...)
	}
	assertClose(t, "anchors", all, u.Anchors, 0)
	rng := rand.New(rand.NewSource(83))
	images := []Image{{Height: 50, Width: 90, Boxes: randomBoxes(rng, 6, 45, 4, 30)}}
	plain := make([]*Anchors, len(levels))
	for l, an := range levels {
		if !an.onGrid() {
			t.Fatalf("level %d not detected as a grid", l)
		}
		plain[l] = &Anchors{Boxes: an.Boxes, A: an.A, H: an.H, W: an.W}
	}
	a, err := AssignTargetsLevels(TorchvisionConfig(), levels, images)
	if err != nil {
		t.Fatal(err)
	}
	b, err := AssignTargetsLevels(TorchvisionConfig(), plain, images)
	if err != nil {
		t.Fatal(err)
	}
	for l := range levels {
		sameBits(t, fmt.Sprint("level ", l, " labels"), a[l].Labels, b[l].Labels)
		sameBits(t, fmt.Sprint("level ", l, " targets"), a[l].BBoxTargets, b[l].BBoxTargets)
	}
}

// TestLossLevelsGradcheck: LossLevels over two levels (2x2 and 1x1 maps, two anchors each, two
// images) against central finite differences w.r.t. both levels' scores and deltas, both
// configs' heads (torchvision with Lambda 2, detectron2's L1), both dtypes, both machines.
// Deltas are kept 0.05 away from the smooth L1 kinks.
func TestLossLevelsGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(84))
	levels, err := TorchvisionLevels(32, 32, [][2]int{{2, 2}, {1, 1}}, []float64{16, 32}, []float64{0.5, 2})
	if err != nil {
		t.Fatal(err)
	}
	images := []Image{
		{Height: 32, Width: 32, Boxes: [][4]float64{{4, 6, 20, 22}, {0, 0, 14, 30}}},
		{Height: 32, Width: 32, Boxes: [][4]float64{{10, 2, 30, 18}}},
	}
	tv := TorchvisionConfig()
	tv.Lambda = 2
	for _, cfg := range []Config{tv, Detectron2Config()} {
		ts, err := AssignTargetsLevels(cfg, levels, images)
		if err != nil {
			t.Fatal(err)
		}
		var inputs []gradcheck.Input
		for l, tg := range ts {
			_, scores, _ := randomOutputs(rng, cfg, tg)
			deltas := make([]float64, len(tg.BBoxTargets))
			for i := range deltas {
				for {
					deltas[i] = tg.BBoxTargets[i] + rng.NormFloat64()*0.4
					r := math.Abs(deltas[i] - tg.BBoxTargets[i])
					if r > 0.05 && math.Abs(r-cfg.Beta) > 0.05 {
						break
					}
				}
			}
			inputs = append(inputs,
				gradcheck.Input{Name: fmt.Sprint("scores", l), Value: values.Dense(tensor.Float64, tensor.Shape{tg.B, tg.A, tg.H, tg.W}, scores), Wrt: true},
				gradcheck.Input{Name: fmt.Sprint("deltas", l), Value: values.Dense(tensor.Float64, tensor.Shape{tg.B, 4 * tg.A, tg.H, tg.W}, deltas), Wrt: true})
		}
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				t.Run(fmt.Sprintf("%v/%v/%v", cfg.Normalisation, dt, machine), func(t *testing.T) {
					in := make([]gradcheck.Input, len(inputs))
					for i, x := range inputs {
						in[i] = gradcheck.Input{Name: x.Name, Value: values.Dense(dt, x.Value.Shape(), values.Float64s(x.Value)), Wrt: true}
					}
					build := func(g *G.ExprGraph, nodes []*G.Node) (*G.Node, error) {
						var s, d []*G.Node
						var tns []*TargetNodes
						for l, tg := range ts {
							tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
							if err != nil {
								return nil, err
							}
							s, d, tns = append(s, nodes[2*l]), append(d, nodes[2*l+1]), append(tns, tn)
						}
						total, _, _, err := LossLevels(s, d, tns, cfg)
						return total, err
					}
					if err := gradcheck.Graph(build, in, gradcheck.Options{Machine: machine}); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
