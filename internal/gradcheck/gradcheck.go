package gradcheck

import (
	"errors"
	"fmt"
	"math"

	"github.com/detlab/smoothl1/internal/values"
	"gonum.org/v1/gonum/diff/fd"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Tolerance accepts got when |got - want| <= Abs + Rel*|want|.
type Tolerance struct{ Abs, Rel float64 }

// Mismatch is the worst disagreement found: the index into x, got (analytic) and want (numerical).
type Mismatch struct {
	Input     string
	Index     int
	Got, Want float64
	// Ratio is |got - want| / (Abs + Rel*|want|); above 1 fails.
	Ratio float64
}

func (m *Mismatch) Error() string {
	return fmt.Sprintf("gradcheck: %s[%d]: analytic %.10g, finite difference %.10g (%.3g x tolerance)", m.Input, m.Index, m.Got, m.Want, m.Ratio)
}

// Slices compares grad with the central finite-difference gradient of f at x (step h). It
// returns the worst element when it is out of tolerance, nil otherwise. x is not modified.
func Slices(f func(x []float64) float64, x, grad []float64, h float64, tol Tolerance) *Mismatch {
	if len(grad) != len(x) {
		return &Mismatch{Input: "grad", Index: len(grad), Got: float64(len(grad)), Want: float64(len(x)), Ratio: math.Inf(1)}
	}
	want := make([]float64, len(x))
	fd.Gradient(want, f, append([]float64(nil), x...), &fd.Settings{Formula: fd.Central, Step: h})
	return worst("x", grad, want, tol)
}

func worst(name string, got, want []float64, tol Tolerance) *Mismatch {
	var w *Mismatch
	for i := range got {
		r := math.Abs(got[i]-want[i]) / (tol.Abs + tol.Rel*math.Abs(want[i]))
		if math.IsNaN(r) {
			r = math.Inf(1)
		}
		if w == nil || r > w.Ratio {
			w = &Mismatch{Input: name, Index: i, Got: got[i], Want: want[i], Ratio: r}
		}
	}
	if w != nil && w.Ratio > 1 {
		return w
	}
	return nil
}

// Machine chooses how the analytic gradient is computed.
type Machine int

const (
	// Tape uses G.Grad and a TapeMachine (SymDiff).
	Tape Machine = iota
	// Lisp uses a LispMachine's forward-backward pass (DoDiff).
	Lisp
)

func (m Machine) String() string {
	if m == Lisp {
		return "LispMachine"
	}
	return "TapeMachine"
}

// Input is one input node of the graph under test.
type Input struct {
	Name  string
	Value *tensor.Dense // float32 or float64
	// Wrt marks the inputs whose gradient is checked.
	Wrt bool
}

// Build makes a scalar loss from the input nodes (in the order of the inputs).
type Build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)

// Options of Graph. Zero Step and Tol get defaults by dtype: float64 step 1e-6, tolerance
// 1e-6 abs and rel; float32 step 1e-2, tolerance 2e-3 abs and rel.
type Options struct {
	Machine Machine
	Step    float64
	Tol     Tolerance
}

// Graph checks the gradient of the scalar built by build with respect to every input with Wrt.
func Graph(build Build, inputs []Input, opt Options) error {
	if len(inputs) == 0 {
		return errors.New("gradcheck: no inputs")
	}
	dt := inputs[0].Value.Dtype()
	if opt.Step == 0 {
		opt.Step = 1e-6
		if dt == tensor.Float32 {
			opt.Step = 1e-2
		}
	}
	if opt.Tol == (Tolerance{}) {
		opt.Tol = Tolerance{Abs: 1e-6, Rel: 1e-6}
		if dt == tensor.Float32 {
			opt.Tol = Tolerance{Abs: 2e-3, Rel: 2e-3}
		}
	}
	analytic, err := Analytic(build, inputs, opt.Machine)
	if err != nil {
		return err
	}
	var evalErr error
	var bad *Mismatch
	k := 0
	for i, in := range inputs {
		if !in.Wrt {
			continue
		}
		x := values.Float64s(in.Value)
		f := func(xi []float64) float64 {
			vals := make([]*tensor.Dense, len(inputs))
			for j := range inputs {
				vals[j] = inputs[j].Value
			}
			vals[i] = values.Dense(in.Value.Dtype(), in.Value.Shape(), xi)
			v, err := Forward(build, names(inputs), vals)
			if err != nil && evalErr == nil {
				evalErr = err
			}
			return v
		}
		want := make([]float64, len(x))
		fd.Gradient(want, f, x, &fd.Settings{Formula: fd.Central, Step: opt.Step})
		if evalErr != nil {
			return evalErr
		}
		if m := worst(in.Name, analytic[k], want, opt.Tol); m != nil && (bad == nil || m.Ratio > bad.Ratio) {
			bad = m
		}
		k++
	}
	if bad != nil {
		return fmt.Errorf("%s: %w", opt.Machine, bad)
	}
	return nil
}

func names(inputs []Input) []string {
	s := make([]string, len(inputs))
	for i, in := range inputs {
		s[i] = in.Name
	}
	return s
}

func newInputs(g *G.ExprGraph, names []string, vals []*tensor.Dense) []*G.Node {
	nodes := make([]*G.Node, len(vals))
	for i, v := range vals {
		nodes[i] = G.NewTensor(g, v.Dtype(), v.Dims(), G.WithShape(v.Shape().Clone()...), G.WithValue(v.Clone().(*tensor.Dense)), G.WithName(names[i]))
	}
	return nodes
}

// Forward evaluates the scalar built by build at vals on a TapeMachine.
func Forward(build Build, names []string, vals []*tensor.Dense) (float64, error) {
	g := G.NewGraph()
	cost, err := build(g, newInputs(g, names, vals))
	if err != nil {
		return 0, err
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		return 0, err
	}
	return values.Scalar(cost.Value())
}

// Analytic returns the gradients of the scalar built by build with respect to the inputs with
// Wrt, in input order, as float64 slices.
func Analytic(build Build, inputs []Input, machine Machine) ([][]float64, error) {
	vals := make([]*tensor.Dense, len(inputs))
	for i, in := range inputs {
		vals[i] = in.Value
	}
	g := G.NewGraph()
	nodes := newInputs(g, names(inputs), vals)
	cost, err := build(g, nodes)
	if err != nil {
		return nil, err
	}
	var wrt G.Nodes
	for i, in := range inputs {
		if in.Wrt {
			wrt = append(wrt, nodes[i])
		}
	}
	var out [][]float64
	switch machine {
	case Tape:
		grads, err := G.Grad(cost, wrt...)
		if err != nil {
			return nil, fmt.Errorf("gradcheck: G.Grad: %w", err)
		}
		m := G.NewTapeMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			return nil, fmt.Errorf("gradcheck: TapeMachine: %w", err)
		}
		for _, gn := range grads {
			out = append(out, values.Float64s(gn.Value()))
		}
	case Lisp:
		m := G.NewLispMachine(g)
		defer m.Close()
		if err := m.RunAll(); err != nil {
			return nil, fmt.Errorf("gradcheck: LispMachine: %w", err)
		}
		for _, n := range wrt {
			gv, err := n.Grad()
			if err != nil {
				return nil, fmt.Errorf("gradcheck: LispMachine gradient of %s: %w", n.Name(), err)
			}
			out = append(out, values.Float64s(gv))
		}
	default:
		return nil, fmt.Errorf("gradcheck: unknown machine %d", machine)
	}
	return out, nil
}
