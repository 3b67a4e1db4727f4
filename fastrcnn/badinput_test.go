package fastrcnn

import (
	"math"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestLossBadInput(t *testing.T) {
	cfg := TorchvisionConfig(2)
	tg, err := SampleTargets(cfg, []Image{{Proposals: [][4]float64{{0, 0, 10, 10}}, Boxes: [][4]float64{{1, 1, 11, 11}}, Labels: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	g := G.NewGraph()
	tn, err := NewTargetNodes(g, tensor.Float64, 4, cfg, tg)
	if err != nil {
		t.Fatal(err)
	}
	logits := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 3), G.WithName("logits"))
	deltas := G.NewMatrix(g, tensor.Float64, G.WithShape(4, 12), G.WithName("deltas"))
	rpnTotal := G.NewScalar(g, tensor.Float64, G.WithName("rpn"))
	other := G.NewGraph()
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"nil targets", func() error { _, _, _, err := Loss(logits, deltas, nil); return err }, "target nodes are nil"},
		{"nil logits", func() error { _, _, _, err := Loss(nil, deltas, tn); return err }, "logits (false) or deltas (true) is nil"},
		{"logits shape", func() error {
			_, _, _, err := Loss(G.NewMatrix(g, tensor.Float64, G.WithShape(4, 2), G.WithName("l2")), deltas, tn)
			return err
		}, "logits have shape (4, 2); 4 rows and K=2 classes need (4, 3)"},
		{"deltas shape", func() error {
			_, _, _, err := Loss(logits, G.NewMatrix(g, tensor.Float64, G.WithShape(3, 12), G.WithName("d3")), tn)
			return err
		}, "deltas have shape (3, 12); 4 rows and K=2 classes need (4, 12)"},
		{"dtype", func() error {
			_, _, _, err := Loss(G.NewMatrix(g, tensor.Float32, G.WithShape(4, 3), G.WithName("l32")), deltas, tn)
			return err
		}, "logits (float32), deltas (float64) and targets (float64) must share a dtype"},
		{"other graph", func() error {
			_, _, _, err := Loss(G.NewMatrix(other, tensor.Float64, G.WithShape(4, 3), G.WithName("lo")), deltas, tn)
			return err
		}, "logits belongs to a different graph than the target nodes"},
		{"nil rpn", func() error { _, _, _, err := Objective(nil, logits, deltas, tn); return err }, "rpnTotal is nil"},
		{"rpn not scalar", func() error { _, _, _, err := Objective(deltas, logits, deltas, tn); return err }, "rpnTotal has shape (4, 12); want a scalar"},
		{"rpn dtype", func() error {
			_, _, _, err := Objective(G.NewScalar(g, tensor.Float32, G.WithName("rpn32")), logits, deltas, tn)
			return err
		}, "rpnTotal has dtype float32, the head float64"},
		{"rpn graph", func() error {
			_, _, _, err := Objective(G.NewScalar(other, tensor.Float64, G.WithName("rpno")), logits, deltas, tn)
			return err
		}, "rpnTotal belongs to a different graph"},
		{"nil nodes RoIs", func() error { var n *TargetNodes; _, err := n.RoIs(); return err }, "the target nodes are nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, _, _, err := Objective(rpnTotal, logits, deltas, tn); err != nil {
		t.Fatalf("valid Objective: %v", err)
	}
}

// TestLossValuesInChild runs the head on values that could crash an op (views bound as logits
// and deltas, extreme logits, NaN and huge deltas) on both machines in a child process.
// Expected: a view gives the bits of its contiguous copy; logits ±1e4 give finite values; NaN
// deltas give a NaN box term; a residual of 1e30 is on the linear branch (finite).
func TestLossValuesInChild(t *testing.T) {
	if !crashtest.InChild(t) {
		return
	}
	cfg := TorchvisionConfig(1)
	tg, err := SampleTargets(cfg, []Image{{Proposals: [][4]float64{{0, 0, 10, 10}, {30, 30, 40, 40}}, Boxes: [][4]float64{{1, 1, 11, 11}}, Labels: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	rows := 4 // 3 sampled (the two proposals, the gt) and 1 padding
	logitsData := []float64{0.5, -1, 2, 0.25, -0.5, 1.5, 3, -2}
	deltasData := make([]float64, rows*8)
	for i := range deltasData {
		deltasData[i] = 0.1 * float64(i%7-3)
	}
	base := runHead(t, tensor.Float64, cfg, tg, rows, logitsData, deltasData, false)
	for _, lisp := range []bool{false, true} {
		t.Run("view/"+map[bool]string{false: "tape", true: "lisp"}[lisp], func(t *testing.T) {
			// logits and deltas as column slices of wider tensors holding garbage around them
			g := G.NewGraph()
			lv, dv := columnView(t, logitsData, rows, 2), columnView(t, deltasData, rows, 8)
			l := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, 2), G.WithName("logits"), G.WithValue(lv))
			d := G.NewMatrix(g, tensor.Float64, G.WithShape(rows, 8), G.WithName("deltas"), G.WithValue(dv))
			tn, err := NewTargetNodes(g, tensor.Float64, rows, cfg, tg)
			if err != nil {
				t.Fatal(err)
			}
			total, _, _, err := Loss(l, d, tn)
			if err != nil {
				t.Fatal(err)
			}
			var tv G.Value
			G.Read(total, &tv)
			var m G.VM
			var grads G.Nodes
			if lisp {
				m = G.NewLispMachine(g)
			} else {
				if grads, err = G.Grad(total, l, d); err != nil {
					t.Fatal(err)
				}
				m = G.NewTapeMachine(g)
			}
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			got, _ := values.Scalar(tv)
			var gl, gd []float64
			if lisp {
				gv, _ := l.Grad()
				dv, _ := d.Grad()
				gl, gd = values.Float64s(gv), values.Float64s(dv)
			} else {
				gl, gd = values.Float64s(grads[0].Value()), values.Float64s(grads[1].Value())
			}
			if got != base.total {
				t.Fatalf("total %v, want the contiguous run's %v", got, base.total)
			}
			compareSlices(t, "dlogits", gl, base.gradLogits, 0)
			compareSlices(t, "ddeltas", gd, base.gradDeltas, 0)
		})
	}
	t.Run("extreme logits", func(t *testing.T) {
		r := runHead(t, tensor.Float64, cfg, tg, rows, []float64{1e4, -1e4, -1e4, 1e4, 1e4, -1e4, 0, 0}, deltasData, false)
		if math.IsNaN(r.total) || math.IsInf(r.total, 0) {
			t.Fatalf("total %v, want finite", r.total)
		}
	})
	t.Run("NaN and huge deltas", func(t *testing.T) {
		d := append([]float64(nil), deltasData...)
		d[4] = math.NaN() // row 0's class-1 slot: a foreground row
		r := runHead(t, tensor.Float64, cfg, tg, rows, logitsData, d, false)
		if !math.IsNaN(r.reg) {
			t.Fatalf("reg %v, want NaN", r.reg)
		}
		d[4] = 1e30
		r = runHead(t, tensor.Float32, cfg, tg, rows, logitsData, d, true)
		if math.IsNaN(r.reg) || math.IsInf(r.reg, 0) {
			t.Fatalf("float32 reg %v, want finite", r.reg)
		}
	})
}

// columnView returns a (rows, cols) view, columns 1..cols of a (rows, cols+2) tensor, whose
// elements read row-major are data.
func columnView(t *testing.T, data []float64, rows, cols int) *tensor.Dense {
	t.Helper()
	wide := make([]float64, rows*(cols+2))
	for i := 0; i < rows; i++ {
		wide[i*(cols+2)], wide[i*(cols+2)+cols+1] = 1e6, -1e6 // garbage outside the view
		copy(wide[i*(cols+2)+1:], data[i*cols:(i+1)*cols])
	}
	v, err := tensor.New(tensor.WithShape(rows, cols+2), tensor.WithBacking(wide)).Slice(nil, tensor.S(1, cols+1))
	if err != nil {
		t.Fatal(err)
	}
	if !v.IsView() {
		t.Fatal("not a view")
	}
	return v.(*tensor.Dense)
}
