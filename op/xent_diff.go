package op

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The gradients of SoftmaxCrossEntropy, derived by hand (formulas in xent.go): the diff op gives
// dL/dz = g * norm * (softmax(z) - onehot(y)) per row (0 on ignored rows); it is differentiable
// in turn, with the softmax Jacobian, so Hessian-vector products through G.Grad twice are exact.

var (
	_ G.SDOp = xentDiffOp{}
	_ G.Op   = xentDiff2Op{}
)

// DiffWRT: the logits; never the labels.
func (o xentOp) DiffWRT(n int) []bool {
	wrt := make([]bool, n)
	if n > 0 {
		wrt[0] = true
	}
	return wrt
}

// SymDiff builds dL/dlogits with the diff op (inputs logits, labels, upstream gradient).
func (o xentOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 2 || grad == nil {
		return nil, fmt.Errorf("op: %v.SymDiff: expected 2 inputs and an upstream gradient, got %d inputs", o, len(inputs))
	}
	d, err := G.ApplyOp(xentDiffOp{o}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", o, err)
	}
	return G.Nodes{d, nil}, nil
}

// DoDiff is the LispMachine's backward step: it adds dL/dlogits into the logits' gradient
// buffer (accumulating, never overwriting).
func (o xentOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	if len(inputs) != 2 {
		return fmt.Errorf("op: %v.DoDiff: expected 2 inputs, got %d", o, len(inputs))
	}
	up, err := output.Grad()
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: reading the upstream gradient: %w", o, err)
	}
	d, err := xentDiffOp{o}.Do(inputs[0].Value(), inputs[1].Value(), up)
	if err != nil {
		return err
	}
	gv, err := inputs[0].Grad()
	if err != nil || o.n == 0 {
		return nil // no gradient buffer (nothing asks for it), or nothing to add
	}
	buf, ok := gv.(*tensor.Dense)
	if !ok || !buf.Shape().Eq(tensor.Shape{o.n, o.k}) || buf.Dtype() != d.Dtype() {
		return fmt.Errorf("op: %v.DoDiff: the logits' gradient buffer is %T %v, want %v (%d, %d)", o, gv, values.ShapeOf(gv), d.Dtype(), o.n, o.k)
	}
	switch src := d.Data().(type) {
	case []float64:
		err = opkit.Accumulate(buf, src, false)
	case []float32:
		err = opkit.Accumulate(buf, src, false)
	}
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: %w", o, err)
	}
	return nil
}

// upstream reads the upstream gradient: per row for None (a tensor (N), views read through a
// copy), else one scalar for every row.
func (o xentOp) upstream(up G.Value, dt tensor.Dtype) (perRow []float64, scalar float64, err error) {
	if o.reduction == None {
		u, err := contiguousFloat(up, tensor.Shape{o.n}, dt, o, "upstream gradient")
		if err != nil {
			return nil, 0, err
		}
		return values.Float64s(u), 0, nil
	}
	s, err := values.Scalar(up)
	if err != nil {
		return nil, 0, fmt.Errorf("op: %v: upstream gradient: %w", o, err)
	}
	return nil, s, nil
}

// rowScale is g_i * norm: the factor of row i's gradient.
func (o xentOp) rowScale(perRow []float64, scalar float64, i, counted int) float64 {
	if perRow != nil {
		return perRow[i] * o.norm(counted)
	}
	return scalar * o.norm(counted)
}

// xentDiffOp computes dL/dlogits. Inputs: logits, labels, the upstream gradient.
type xentDiffOp struct{ fwd xentOp }

func (d xentDiffOp) Arity() int { return 3 }
func (d xentDiffOp) Type() hm.Type {
	return hm.NewFnType(d.fwd.logitsType(), d.fwd.labelsType(), d.fwd.outType(), d.fwd.logitsType())
}
func (d xentDiffOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 3 {
		return nil, fmt.Errorf("op: %v expects 3 inputs, got %d", d, len(ds))
	}
	return tensor.Shape{d.fwd.n, d.fwd.k}, nil
}
func (d xentDiffOp) ReturnsPtr() bool      { return false }
func (d xentDiffOp) CallsExtern() bool     { return false }
func (d xentDiffOp) OverwritesInput() int  { return -1 }
func (d xentDiffOp) String() string        { return "SoftmaxCrossEntropyDiff{" + d.fwd.describe() + "}" }
func (d xentDiffOp) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d xentDiffOp) Hashcode() uint32      { return opkit.Hash(d) }

func (d xentDiffOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 3 {
		return nil, fmt.Errorf("op: %v expects 3 inputs, got %d", d, len(vals))
	}
	in, err := d.fwd.read(vals)
	if err != nil {
		return nil, err
	}
	perRow, scalar, err := d.fwd.upstream(vals[2], in.dt)
	if err != nil {
		return nil, err
	}
	if in.dt == tensor.Float32 {
		return xentGrad[float32](d.fwd, in, perRow, scalar), nil
	}
	return xentGrad[float64](d.fwd, in, perRow, scalar), nil
}

// xentGrad writes dz_ik = T(g_i * norm * (s_ik - [k == y_i])), 0 on ignored rows.
func xentGrad[T float](o xentOp, in xentInputs, perRow []float64, scalar float64) *tensor.Dense {
	out := make([]T, o.n*o.k)
	if o.n > 0 {
		z := in.logits.Data().([]T)
		s := make([]float64, o.k)
		for i, y := range in.classes {
			if y < 0 {
				continue
			}
			rowLoss(z[i*o.k:(i+1)*o.k], y, s)
			scale := o.rowScale(perRow, scalar, i, in.counted)
			s[y]-- // softmax - onehot
			for k, v := range s {
				out[i*o.k+k] = T(scale * v)
			}
		}
	}
	return tensor.New(tensor.WithShape(o.n, o.k), tensor.WithBacking(out))
}

// DiffWRT of the diff op: the logits and the upstream gradient.
func (d xentDiffOp) DiffWRT(n int) []bool {
	wrt := make([]bool, n)
	if n == 3 {
		wrt[0], wrt[2] = true, true
	}
	return wrt
}

// SymDiff of the diff op: exact second derivatives (formulas in xent.go).
func (d xentDiffOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 3 || grad == nil {
		return nil, fmt.Errorf("op: %v.SymDiff: expected 3 inputs and an upstream gradient, got %d inputs", d, len(inputs))
	}
	args := append(append(G.Nodes{}, inputs...), grad)
	dz, err := G.ApplyOp(xentDiff2Op{fwd: d.fwd}, args...)
	if err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
	}
	dg, err := G.ApplyOp(xentDiff2Op{fwd: d.fwd, wrtGrad: true}, args...)
	if err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
	}
	return G.Nodes{dz, nil, dg}, nil
}

// xentDiff2Op is the derivative of the diff op. Inputs: logits, labels, the upstream gradient g
// of the loss, and u, the upstream gradient of dL/dlogits. With wrtGrad false it returns
// d<u, dL/dz>/dz (the logits' shape), with wrtGrad true d<u, dL/dz>/dg (g's shape).
type xentDiff2Op struct {
	fwd     xentOp
	wrtGrad bool
}

func (d xentDiff2Op) Arity() int { return 4 }
func (d xentDiff2Op) Type() hm.Type {
	out := d.fwd.logitsType()
	if d.wrtGrad {
		out = d.fwd.outType()
	}
	return hm.NewFnType(d.fwd.logitsType(), d.fwd.labelsType(), d.fwd.outType(), d.fwd.logitsType(), out)
}
func (d xentDiff2Op) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 4 {
		return nil, fmt.Errorf("op: %v expects 4 inputs, got %d", d, len(ds))
	}
	switch {
	case !d.wrtGrad:
		return tensor.Shape{d.fwd.n, d.fwd.k}, nil
	case d.fwd.reduction == None:
		return tensor.Shape{d.fwd.n}, nil
	}
	return tensor.ScalarShape(), nil
}
func (d xentDiff2Op) ReturnsPtr() bool     { return false }
func (d xentDiff2Op) CallsExtern() bool    { return false }
func (d xentDiff2Op) OverwritesInput() int { return -1 }
func (d xentDiff2Op) String() string {
	return fmt.Sprintf("SoftmaxCrossEntropyDiff2{wrtGrad=%t, %s}", d.wrtGrad, d.fwd.describe())
}
func (d xentDiff2Op) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d xentDiff2Op) Hashcode() uint32      { return opkit.Hash(d) }

func (d xentDiff2Op) Do(vals ...G.Value) (G.Value, error) {
	o := d.fwd
	if len(vals) != 4 {
		return nil, fmt.Errorf("op: %v expects 4 inputs, got %d", d, len(vals))
	}
	in, err := o.read(vals)
	if err != nil {
		return nil, err
	}
	perRow, scalar, err := o.upstream(vals[2], in.dt)
	if err != nil {
		return nil, err
	}
	u, err := contiguousFloat(vals[3], tensor.Shape{o.n, o.k}, in.dt, d, "second-order upstream")
	if err != nil {
		return nil, err
	}
	uu := values.Float64s(u)
	z := values.Float64s(in.logits)
	s := make([]float64, o.k)
	dz := make([]float64, o.n*o.k)
	dg := make([]float64, o.n) // per row: Σ_k u_ik (s_ik - [k == y_i]) * norm
	for i, y := range in.classes {
		if y < 0 {
			continue
		}
		row, ur := z[i*o.k:(i+1)*o.k], uu[i*o.k:(i+1)*o.k]
		rowLoss(row, y, s)
		su := 0.0
		for k, v := range s {
			su += v * ur[k]
		}
		scale := o.rowScale(perRow, scalar, i, in.counted)
		for k, v := range s {
			dz[i*o.k+k] = scale * v * (ur[k] - su) // g_i norm s_ik (u_ik - Σ s u)
		}
		dg[i] = (su - ur[y]) * o.norm(in.counted) // Σ_k u_ik s_ik - u_iy, times norm
	}
	if d.wrtGrad {
		if o.reduction != None {
			total := 0.0
			for _, v := range dg {
				total += v
			}
			if in.dt == tensor.Float32 {
				return scalarValue[float32](total, nil), nil
			}
			return scalarValue[float64](total, nil), nil
		}
		return values.Dense(in.dt, tensor.Shape{o.n}, dg), nil
	}
	return values.Dense(in.dt, tensor.Shape{o.n, o.k}, dz), nil
}
