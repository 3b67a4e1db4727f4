package rpn

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"github.com/detlab/smoothl1/box"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Regression tests for the reliability issue's rpn items: views bound as values, empty tensors,
// target nodes of two heads in one graph, the grid window's int overflow, constant nodes, and
// bit-identical arithmetic across GOAMD64 builds. Crash-prone cases run in a child process
// (isolated), so a regression is reported instead of killing the test binary.

// objectnessCase is one ObjectnessLoss evaluation: the three input values, which of labels and
// weights are G.NewConstant nodes, and the machine.
type objectnessCase struct {
	kind     Objectness
	in       [3]*tensor.Dense // scores, labels, weights
	constant [3]bool
	lisp     bool
}

// runObjectness returns the loss and d loss/d scores (TapeMachine with G.Grad, or LispMachine).
func runObjectness(t *testing.T, c objectnessCase) (float64, *tensor.Dense) {
	t.Helper()
	g := G.NewGraph()
	var nodes [3]*G.Node
	for i, name := range []string{"scores", "labels", "weights"} {
		d := c.in[i]
		if c.constant[i] {
			// a per-case name: gorgonia merges constants by name (gorgonia-notes rule 8)
			nodes[i] = G.NewConstant(d, G.WithName(fmt.Sprintf("%s_const_%p", name, d)))
			continue
		}
		nodes[i] = G.NewTensor(g, d.Dtype(), 4, G.WithShape(d.Shape().Clone()...), G.WithName(name))
		if err := G.Let(nodes[i], d); err != nil {
			t.Fatal(err)
		}
	}
	loss, err := ObjectnessLoss(nodes[0], nodes[1], nodes[2], c.kind)
	if err != nil {
		t.Fatal(err)
	}
	var m G.VM
	var grads G.Nodes
	if c.lisp {
		m = G.NewLispMachine(g)
	} else {
		if grads, err = G.Grad(loss, nodes[0]); err != nil {
			t.Fatal(err)
		}
		m = G.NewTapeMachine(g)
	}
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	var gv G.Value
	if c.lisp {
		if gv, err = nodes[0].Grad(); err != nil {
			t.Fatal(err)
		}
	} else {
		gv = grads[0].Value()
	}
	gd, ok := gv.(*tensor.Dense)
	if !ok {
		t.Fatalf("gradient is %T", gv)
	}
	// the gradient has the node's shape; the op's own (TapeMachine) is not a view. The
	// LispMachine's buffer is gorgonia's, made like the scores' value (a view when they are one):
	// read it through its strides.
	if !gd.Shape().Eq(nodes[0].Shape()) {
		t.Fatalf("gradient shape %v, scores %v", gd.Shape(), nodes[0].Shape())
	}
	cd, err := values.Contiguous(gd)
	if err != nil {
		t.Fatal(err)
	}
	if !c.lisp && (cd != gd || gd.IsView()) {
		t.Fatalf("the op's gradient is a view")
	}
	return scalarValue(t, loss.Value()), cd
}

// randomObjectness: scores N(0, 2), labels in {-1, 0, 1}, weights in (0, 1), for the layout.
func randomObjectness(rng *rand.Rand, dt tensor.Dtype, kind Objectness, B, A, H, W int) [3]*tensor.Dense {
	c := A
	if kind == Softmax2 {
		c = 2 * A
	}
	scores := make([]float64, B*c*H*W)
	for i := range scores {
		scores[i] = rng.NormFloat64() * 2
	}
	labels, weights := make([]float64, B*A*H*W), make([]float64, B*A*H*W)
	for i := range labels {
		labels[i] = float64(rng.Intn(3) - 1)
		weights[i] = rng.Float64()
	}
	return [3]*tensor.Dense{
		values.Dense(dt, tensor.Shape{B, c, H, W}, scores),
		values.Dense(dt, tensor.Shape{B, A, H, W}, labels),
		values.Dense(dt, tensor.Shape{B, A, H, W}, weights),
	}
}

// viewOf returns a view with d's shape and elements: "columns" is columns 1..W of a (B, C, H,
// W+3) tensor, "transposed" the .T(3, 2, 1, 0) of a (W, H, C, B) tensor. Elements outside the
// view hold 7 (an invalid label, a wrong score), so reading them cannot go unnoticed.
func viewOf(t *testing.T, d *tensor.Dense, layout string) *tensor.Dense {
	t.Helper()
	s := d.Shape()
	B, C, H, W := s[0], s[1], s[2], s[3]
	src := values.Float64s(d)
	var big []float64
	var at func(b, c, h, w int) int
	var shape tensor.Shape
	switch layout {
	case "columns":
		shape = tensor.Shape{B, C, H, W + 3}
		at = func(b, c, h, w int) int { return ((b*C+c)*H+h)*(W+3) + w + 1 }
	case "transposed":
		shape = tensor.Shape{W, H, C, B}
		at = func(b, c, h, w int) int { return ((w*H+h)*C+c)*B + b }
	}
	big = make([]float64, shape.TotalSize())
	for i := range big {
		big[i] = 7
	}
	for b := 0; b < B; b++ {
		for c := 0; c < C; c++ {
			for h := 0; h < H; h++ {
				for w := 0; w < W; w++ {
					big[at(b, c, h, w)] = src[((b*C+c)*H+h)*W+w]
				}
			}
		}
	}
	full := values.Dense(d.Dtype(), shape, big)
	var v *tensor.Dense
	if layout == "columns" {
		sv, err := full.Slice(nil, nil, nil, tensor.S(1, W+1))
		if err != nil {
			t.Fatal(err)
		}
		v = sv.(*tensor.Dense)
	} else {
		if err := full.T(3, 2, 1, 0); err != nil {
			t.Fatal(err)
		}
		v = full
	}
	if !v.Shape().Eq(s) {
		t.Fatalf("view shape %v, want %v", v.Shape(), s)
	}
	if cd, _ := values.Contiguous(v); cd == v {
		t.Fatalf("%s: not a strided view", layout)
	}
	return v
}

// randomOutputs draws network outputs for the targets: scores N(0, 1) of the config's layout,
// deltas N(0, 0.3^2).
func randomOutputs(rng *rand.Rand, cfg Config, tg *Targets) (scoresShape []int, scores, deltas []float64) {
	scoresShape = []int{tg.B, tg.A, tg.H, tg.W}
	if cfg.Objectness == Softmax2 {
		scoresShape[1] *= 2
	}
	scores = make([]float64, tensor.Shape(scoresShape).TotalSize())
	for i := range scores {
		scores[i] = rng.NormFloat64()
	}
	deltas = make([]float64, len(tg.BBoxTargets))
	for i := range deltas {
		deltas[i] = rng.NormFloat64() * 0.3
	}
	return scoresShape, scores, deltas
}

// gradAndRun adds the gradients of cost w.r.t. wrt to g, runs it once on a TapeMachine and
// returns the gradient nodes.
func gradAndRun(t *testing.T, g *G.ExprGraph, cost *G.Node, wrt ...*G.Node) G.Nodes {
	t.Helper()
	grads, err := G.Grad(cost, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	return grads
}

func sameBits(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v (bit for bit)", what, i, got[i], want[i])
		}
	}
}

// TestObjectnessViews: a view bound as scores, labels or weights (a column slice or a transpose)
// gives exactly, bit for bit, the loss and gradient of its contiguous copy, on both machines,
// both dtypes, both heads. Before the fix the op read Data() as contiguous: wrong values, or
// "index out of range" when the view's span was shorter than the tensor (hence the child process).
func TestObjectnessViews(t *testing.T) {
	if !isolated(t) {
		return
	}
	rng := rand.New(rand.NewSource(71))
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, kind := range []Objectness{Softmax2, Sigmoid} {
			in := randomObjectness(rng, dt, kind, 2, 3, 4, 5)
			for _, lisp := range []bool{false, true} {
				wantLoss, wantGrad := runObjectness(t, objectnessCase{kind: kind, in: in, lisp: lisp})
				for pos, name := range []string{"scores", "labels", "weights"} {
					for _, layout := range []string{"columns", "transposed"} {
						t.Run(fmt.Sprintf("%v/%v/lisp=%t/%s/%s", dt, kind, lisp, name, layout), func(t *testing.T) {
							c := objectnessCase{kind: kind, in: in, lisp: lisp}
							c.in[pos] = viewOf(t, in[pos], layout)
							loss, grad := runObjectness(t, c)
							sameBits(t, "loss", []float64{loss}, []float64{wantLoss})
							sameBits(t, "grad", values.Float64s(grad), values.Float64s(wantGrad))
						})
					}
				}
			}
		}
	}
}

// TestObjectnessUpstreamView: the upstream gradient given to the diff op as a one-element view
// of a larger tensor (a slice of a vector, a cell of a matrix) is read at the view's element
// (2), not at the start of its backing span (5): the gradient equals the one computed with the
// scalar 2. (tensor v0.9.24 starts a one-element view's Data() at its element, so this is a
// guard for the Contiguous read of the upstream, not a reproduced failure.)
func TestObjectnessUpstreamView(t *testing.T) {
	if !isolated(t) {
		return
	}
	rng := rand.New(rand.NewSource(72))
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		t.Run(dt.String(), func(t *testing.T) {
			in := randomObjectness(rng, dt, Softmax2, 1, 2, 3, 3)
			d := objectnessDiffOp{objectnessOp{kind: Softmax2, shape: in[0].Shape().Clone()}}
			backing := values.Dense(dt, tensor.Shape{3}, []float64{5, 2, 9})
			sv, err := backing.Slice(tensor.S(1, 3))
			if err != nil {
				t.Fatal(err)
			}
			view := sv.(*tensor.Dense) // (2,): elements 2, 9
			one, err := view.Slice(tensor.S(0, 1))
			if err != nil {
				t.Fatal(err)
			}
			var scalar G.Value = G.NewF64(2)
			if dt == tensor.Float32 {
				scalar = G.NewF32(2)
			}
			want, err := d.Do(in[0], in[1], in[2], scalar)
			if err != nil {
				t.Fatal(err)
			}
			grid := values.Dense(dt, tensor.Shape{2, 3}, []float64{1, 5, 3, 4, 2, 6})
			cell, err := grid.Slice(tensor.S(1, 2), tensor.S(1, 2)) // element 2, after 5 in the backing
			if err != nil {
				t.Fatal(err)
			}
			for _, up := range []G.Value{one.(*tensor.Dense), cell.(*tensor.Dense)} {
				got, err := d.Do(in[0], in[1], in[2], up)
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, "grad", values.Float64s(got), values.Float64s(want))
			}
		})
	}
}

// TestObjectnessEmpty: empty scores (a zero batch, feature map or anchor count) go through
// G.Grad + RunAll (TapeMachine) and the LispMachine: loss 0 (an empty sum), an empty gradient of
// the scores' shape. Before the fix Dense.Data() panicked on the empty tensors.
func TestObjectnessEmpty(t *testing.T) {
	if !isolated(t) {
		return
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, c := range []struct {
			kind       Objectness
			B, A, H, W int
		}{{Softmax2, 0, 3, 4, 5}, {Softmax2, 2, 3, 0, 5}, {Softmax2, 2, 0, 4, 5}, {Sigmoid, 0, 2, 3, 3}, {Sigmoid, 1, 2, 3, 0}} {
			for _, lisp := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%v/%dx%dx%dx%d/lisp=%t", dt, c.kind, c.B, c.A, c.H, c.W, lisp), func(t *testing.T) {
					in := randomObjectness(rand.New(rand.NewSource(1)), dt, c.kind, c.B, c.A, c.H, c.W)
					loss, grad := runObjectness(t, objectnessCase{kind: c.kind, in: in, lisp: lisp})
					if loss != 0 || grad.Shape().TotalSize() != 0 {
						t.Fatalf("loss %v, gradient of %d elements; want 0 and 0", loss, grad.Shape().TotalSize())
					}
				})
			}
		}
	}
}

// TestObjectnessConstants: labels and weights given as G.NewConstant nodes (which belong to no
// graph) are accepted and give the same bits as variables, both machines, both dtypes and heads.
// Before the fix ObjectnessLoss rejected them ("belong to a different graph").
func TestObjectnessConstants(t *testing.T) {
	rng := rand.New(rand.NewSource(73))
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, kind := range []Objectness{Softmax2, Sigmoid} {
			in := randomObjectness(rng, dt, kind, 2, 2, 3, 4)
			for _, lisp := range []bool{false, true} {
				for _, constant := range [][3]bool{{false, true, false}, {false, false, true}, {false, true, true}} {
					t.Run(fmt.Sprintf("%v/%v/lisp=%t/%v", dt, kind, lisp, constant), func(t *testing.T) {
						wantLoss, wantGrad := runObjectness(t, objectnessCase{kind: kind, in: in, lisp: lisp})
						loss, grad := runObjectness(t, objectnessCase{kind: kind, in: in, constant: constant, lisp: lisp})
						sameBits(t, "loss", []float64{loss}, []float64{wantLoss})
						sameBits(t, "grad", values.Float64s(grad), values.Float64s(wantGrad))
					})
				}
			}
		}
	}
	// all three constant: no graph to build in, a clear error
	in := randomObjectness(rng, tensor.Float64, Sigmoid, 1, 1, 1, 1)
	_, err := ObjectnessLoss(G.NewConstant(in[0], G.WithName("s_all_const")), G.NewConstant(in[1], G.WithName("l_all_const")), G.NewConstant(in[2], G.WithName("w_all_const")), Sigmoid)
	if err == nil || !strings.Contains(err.Error(), "all constants") {
		t.Fatalf("error %v, want one saying all inputs are constants", err)
	}
}

// TestLossConstantTargets: TargetNodes made of G.NewConstant nodes pass rpn's own checks, and
// (once package op accepts constants too) give the loss and gradients of variable targets.
func TestLossConstantTargets(t *testing.T) {
	rng := rand.New(rand.NewSource(74))
	cfg := TorchvisionConfig()
	_, tg := smallBatch(t, cfg, rng)
	scoresShape, scores, deltas := randomOutputs(rng, cfg, tg)
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		t.Run(dt.String(), func(t *testing.T) {
			wantCls, wantReg, wantDs, wantDd := runLoss(t, cfg, tg, scoresShape, scores, deltas, dt, false)
			g := G.NewGraph()
			s := G.NewTensor(g, dt, 4, G.WithShape(scoresShape...), G.WithValue(values.Dense(dt, scoresShape, scores)), G.WithName("scores"))
			dshape := tensor.Shape{tg.B, 4 * tg.A, tg.H, tg.W}
			d := G.NewTensor(g, dt, 4, G.WithShape(dshape...), G.WithValue(values.Dense(dt, dshape, deltas)), G.WithName("deltas"))
			lshape := tensor.Shape{tg.B, tg.A, tg.H, tg.W}
			k := func(name string, shape tensor.Shape, data []float64) *G.Node {
				return G.NewConstant(values.Dense(dt, shape, data), G.WithName(name+"_const_"+dt.String()))
			}
			tn := &TargetNodes{B: tg.B, A: tg.A, H: tg.H, W: tg.W,
				Labels: k("labels", lshape, tg.Labels), ClsWeights: k("clsw", lshape, tg.ClsWeights),
				BBoxTargets: k("targets", dshape, tg.BBoxTargets), InsideWeights: k("inw", dshape, tg.InsideWeights),
				OutsideWeights: k("outw", dshape, tg.OutsideWeights)}
			total, c, r, err := Loss(s, d, tn, cfg)
			if err != nil {
				t.Fatal(err)
			}
			grads := gradAndRun(t, g, total, s, d)
			sameBits(t, "cls", []float64{scalarValue(t, c.Value())}, []float64{wantCls})
			sameBits(t, "reg", []float64{scalarValue(t, r.Value())}, []float64{wantReg})
			sameBits(t, "dscores", floats(grads[0].Value()), wantDs)
			sameBits(t, "ddeltas", floats(grads[1].Value()), wantDd)
		})
	}
}

// TestTwoHeadsOneGraph: two RPN heads with their own targets in one graph. Before the fix the
// second NewTargetNodes returned the first call's nodes (gorgonia merges input nodes by name,
// type and shape) and its Set replaced the first head's targets. Now each head's losses and
// gradients in the shared graph equal, bit for bit, the same head evaluated alone (runLoss), on
// both machines; and setting the second head's targets leaves the first head's values alone.
func TestTwoHeadsOneGraph(t *testing.T) {
	rng := rand.New(rand.NewSource(75))
	cfg := DefaultConfig()
	type head struct {
		tg             *Targets
		scores, deltas []float64
	}
	var heads [2]head
	for i := range heads {
		_, tg := smallBatch(t, cfg, rng)
		_, scores, deltas := randomOutputs(rng, cfg, tg)
		heads[i] = head{tg: tg, scores: scores, deltas: deltas}
	}
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for _, lisp := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/lisp=%t", dt, lisp), func(t *testing.T) {
				g := G.NewGraph()
				var totals, cls, reg [2]*G.Node
				var wrt G.Nodes
				var tns [2]*TargetNodes
				for i, h := range heads {
					tg := h.tg
					sshape, dshape := tensor.Shape{tg.B, 2 * tg.A, tg.H, tg.W}, tensor.Shape{tg.B, 4 * tg.A, tg.H, tg.W}
					s := G.NewTensor(g, dt, 4, G.WithShape(sshape...), G.WithValue(values.Dense(dt, sshape, h.scores)), G.WithName(fmt.Sprint("scores", i)))
					d := G.NewTensor(g, dt, 4, G.WithShape(dshape...), G.WithValue(values.Dense(dt, dshape, h.deltas)), G.WithName(fmt.Sprint("deltas", i)))
					tn, err := NewTargetNodes(g, dt, tg.B, tg.A, tg.H, tg.W, tg)
					if err != nil {
						t.Fatal(err)
					}
					tns[i] = tn
					if totals[i], cls[i], reg[i], err = Loss(s, d, tn, cfg); err != nil {
						t.Fatal(err)
					}
					wrt = append(wrt, s, d)
				}
				if tns[0].Labels == tns[1].Labels || tns[0].Labels.Name() == tns[1].Labels.Name() {
					t.Fatalf("the two heads share target nodes (%s, %s)", tns[0].Labels.Name(), tns[1].Labels.Name())
				}
				sum := G.Must(G.Add(totals[0], totals[1]))
				var grads G.Nodes
				var m G.VM
				if lisp {
					m = G.NewLispMachine(g)
				} else {
					var err error
					if grads, err = G.Grad(sum, wrt...); err != nil {
						t.Fatal(err)
					}
					m = G.NewTapeMachine(g)
				}
				defer m.Close()
				if err := m.RunAll(); err != nil {
					t.Fatal(err)
				}
				for i, h := range heads {
					tg := h.tg
					wantCls, wantReg, wantDs, wantDd := runLoss(t, cfg, tg, []int{tg.B, 2 * tg.A, tg.H, tg.W}, h.scores, h.deltas, dt, lisp)
					sameBits(t, fmt.Sprint("head ", i, " cls"), []float64{scalarValue(t, cls[i].Value())}, []float64{wantCls})
					sameBits(t, fmt.Sprint("head ", i, " reg"), []float64{scalarValue(t, reg[i].Value())}, []float64{wantReg})
					var ds, dd []float64
					if lisp {
						gs, _ := wrt[2*i].Grad()
						gd, _ := wrt[2*i+1].Grad()
						ds, dd = floats(gs), floats(gd)
					} else {
						ds, dd = floats(grads[2*i].Value()), floats(grads[2*i+1].Value())
					}
					sameBits(t, fmt.Sprint("head ", i, " dscores"), ds, wantDs)
					sameBits(t, fmt.Sprint("head ", i, " ddeltas"), dd, wantDd)
				}
				// Set on the second head does not touch the first head's nodes
				before := floats(tns[0].Labels.Value())
				if err := tns[1].Set(heads[0].tg); err != nil {
					t.Fatal(err)
				}
				sameBits(t, "first head's labels after the second's Set", floats(tns[0].Labels.Value()), before)
			})
		}
	}
}

// windowCase is a scene for the windowed-vs-brute-force comparison.
type windowCase struct {
	name   string
	cell   [][4]float64
	H, W   int
	stride float64
	image  Image
}

// assertWindowedEqualsBruteForce assigns the scene with the grid window (anchors made by
// NewAnchors) and with every anchor visited (the same boxes without the grid) and requires
// identical labels, targets and weights (NaN targets compared by bits).
func assertWindowedEqualsBruteForce(t *testing.T, c windowCase, cfg Config) {
	t.Helper()
	an, err := NewAnchors(c.cell, c.H, c.W, c.stride)
	if err != nil {
		t.Fatal(err)
	}
	plain := &Anchors{Boxes: an.Boxes, A: an.A, H: an.H, W: an.W}
	a, errA := AssignTargets(cfg, an, []Image{c.image})
	b, errB := AssignTargets(cfg, plain, []Image{c.image})
	if (errA == nil) != (errB == nil) {
		t.Fatalf("windowed error %v, brute force error %v", errA, errB)
	}
	if errA != nil {
		return
	}
	if a.NumPos[0] != b.NumPos[0] || a.NumNeg[0] != b.NumNeg[0] {
		t.Fatalf("%s: windowed %d positives %d negatives, brute force %d and %d", c.name, a.NumPos[0], a.NumNeg[0], b.NumPos[0], b.NumNeg[0])
	}
	sameBits(t, c.name+" labels", a.Labels, b.Labels)
	sameBits(t, c.name+" targets", a.BBoxTargets, b.BBoxTargets)
	sameBits(t, c.name+" outside weights", a.OutsideWeights, b.OutsideWeights)
}

// TestWindowExtremeMagnitudes: the grid window converted (g - c)/stride with int(math.Ceil(v)),
// which overflows above 2^63 (amd64 gives MinInt64): gt {0, 0, 1e21, 1e21} reached no anchor
// (0 positives where brute force has 12: every kept anchor ties as that gt's best) and a stride
// of 1e-17 did the same. Now the window is clamped in float64 first and equals brute force.
func TestWindowExtremeMagnitudes(t *testing.T) {
	paper := GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{1, 2})
	tv := TorchvisionCellAnchors([]float64{16, 32}, []float64{0.5, 1, 2})
	cases := []windowCase{
		{"gt 1e21", paper, 4, 5, 16, Image{Height: 64, Width: 80, Boxes: [][4]float64{{0, 0, 1e21, 1e21}}}},
		{"gt -1e21..1e21", paper, 4, 5, 16, Image{Height: 64, Width: 80, Boxes: [][4]float64{{-1e21, -1e21, 1e21, 1e21}}}},
		{"gt 1e300", tv, 4, 5, 16, Image{Height: 64, Width: 80, Boxes: [][4]float64{{-1e300, 0, 1e300, 1e300}}}},
		{"gt far away", paper, 4, 5, 16, Image{Height: 64, Width: 80, Boxes: [][4]float64{{1e20, 1e20, 2e20, 2e20}, {10, 10, 40, 40}}}},
		{"gt max float", tv, 3, 3, 16, Image{Height: 64, Width: 80, Boxes: [][4]float64{{-math.MaxFloat64, -math.MaxFloat64, math.MaxFloat64, math.MaxFloat64}}}},
		{"stride 1e-17", paper, 4, 5, 1e-17, Image{Height: 64, Width: 80, Boxes: [][4]float64{{10, 10, 40, 40}}}},
		{"stride 1e-300", tv, 4, 5, 1e-300, Image{Height: 64, Width: 80, Boxes: [][4]float64{{0, 0, 30, 20}}}},
		{"stride 1e300", tv, 3, 4, 1e300, Image{Height: 1e301, Width: 1e301, Boxes: [][4]float64{{0, 0, 30, 20}, {1e300 - 10, 0, 1e300 + 10, 20}}}},
	}
	for _, c := range cases {
		for _, cfg := range []Config{DefaultConfig(), TorchvisionConfig()} {
			t.Run(c.name+"/"+cfg.Objectness.String(), func(t *testing.T) {
				assertWindowedEqualsBruteForce(t, c, cfg)
			})
		}
	}
	// the case of the issue, counted: 12 positives (hand-derived: the 4x5x6 anchors inside the
	// 64x80 image with the +1 convention, every one of whose IoU with the huge gt is the same
	// tiny value for equal-area anchors... counted by the brute force path)
	an, err := NewAnchors(paper, 4, 5, 16)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := AssignTargets(DefaultConfig(), an, []Image{cases[0].image})
	if err != nil {
		t.Fatal(err)
	}
	if tg.NumPos[0] == 0 {
		t.Fatalf("gt {0, 0, 1e21, 1e21} made no anchor positive")
	}
}

// FuzzWindowExtreme: random scenes whose gt coordinates and strides span 1e-300 to 1e300 in
// magnitude (either sign): windowed assignment equals brute force, or both fail alike.
func FuzzWindowExtreme(f *testing.F) {
	f.Add(int64(1), int8(21), int8(0), false)
	f.Add(int64(2), int8(0), int8(-17), true)
	f.Add(int64(3), int8(100), int8(100), false)
	f.Fuzz(func(t *testing.T, seed int64, gtExp, strideExp int8, torchvision bool) {
		rng := rand.New(rand.NewSource(seed))
		cfg := DefaultConfig()
		if torchvision {
			cfg = TorchvisionConfig()
		}
		stride := math.Pow(10, float64(strideExp%31)*10/3) // 1e-100 .. 1e100
		if stride == 0 || math.IsInf(stride, 0) {
			stride = 16
		}
		scale := math.Pow(10, float64(gtExp)*300/127)
		im := Image{Height: 64, Width: 80}
		for j := 0; j < 1+rng.Intn(4); j++ {
			x, y := (rng.Float64()*2-1)*scale, (rng.Float64()*2-1)*scale
			w, h := rng.Float64()*scale, rng.Float64()*scale
			box := [4]float64{x, y, x + w, y + h}
			if rng.Intn(3) == 0 {
				box = [4]float64{rng.Float64() * 60, rng.Float64() * 40, 70, 60}
			}
			im.Boxes = append(im.Boxes, box)
		}
		c := windowCase{name: "fuzz", cell: GenerateAnchors(8, []float64{0.5, 1, 2}, []float64{1, 2}), H: 1 + rng.Intn(5), W: 1 + rng.Intn(5), stride: stride, image: im}
		assertWindowedEqualsBruteForce(t, c, cfg)
	})
}

// TestArithmeticDigest logs a SHA-256 of the bits of IoU, Encode/Decode (both coders),
// GenerateAnchors/ShiftAnchors, AssignTargets, the objectness loss and gradient, and Proposals
// (decode, clip, NMS) on seeded inputs. `make fma-check` runs it in GOAMD64=v1 and v3 builds and requires one digest: before
// products were wrapped in float64(...) the v3 build fused them into FMAs and the digests
// differed. (The digest is compared across builds, never against a stored value.)
func TestArithmeticDigest(t *testing.T) {
	h := sha256.New()
	put := func(vs ...float64) {
		for _, v := range vs {
			_ = binary.Write(h, binary.LittleEndian, math.Float64bits(v))
		}
	}
	rng := rand.New(rand.NewSource(76))
	// inputs rounded product by product (float64(...)), so the test's own arithmetic is the
	// same in both builds
	randomBox := func() [4]float64 {
		x, y := float64(rng.Float64()*500), float64(rng.Float64()*500)
		return [4]float64{x, y, x + 1 + float64(rng.Float64()*200), y + 1 + float64(rng.Float64()*200)}
	}
	for i := 0; i < 2000; i++ {
		a, b := randomBox(), randomBox()
		put(box.IoU(a, b, true), box.IoU(a, b, false))
		for _, c := range []BoxCoder{PyFasterRCNNCoder(), TorchvisionCoder(), {Weights: [4]float64{10, 10, 5, 5}}} {
			d := c.Encode(a, b)
			put(d[:]...)
			r := c.Decode(a, [4]float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()})
			put(r[:]...)
		}
	}
	cell := GenerateAnchors(16, []float64{0.5, 1, 2}, []float64{8, 16, 32})
	an, err := NewAnchors(cell, 10, 13, 16.3)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range an.Boxes {
		put(b[:]...)
	}
	for _, cfg := range []Config{DefaultConfig(), TorchvisionConfig()} {
		tg, err := AssignTargets(cfg, an, []Image{{Height: 170, Width: 215, Boxes: [][4]float64{randomBox(), randomBox(), randomBox()}}})
		if err != nil {
			t.Fatal(err)
		}
		put(tg.Labels...)
		put(tg.BBoxTargets...)
		put(tg.OutsideWeights...)
	}
	for _, kind := range []Objectness{Softmax2, Sigmoid} {
		in := randomObjectness(rng, tensor.Float64, kind, 2, 3, 4, 5)
		loss, grad := runObjectness(t, objectnessCase{kind: kind, in: in})
		put(loss)
		put(values.Float64s(grad)...)
	}
	// NMS and proposals (box's geometry and rpn's scores) on one fixture case
	c := loadProposalCases(t)[0]
	pcfg, levels, objectness, deltas, images := c.setup(t, tensor.Float64)
	props, err := Proposals(pcfg, levels, objectness, deltas, images)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range props {
		put(flatten(p.Boxes)...)
		put(p.Scores...)
	}
	t.Logf("digest %x", h.Sum(nil))
}
