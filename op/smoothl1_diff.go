package op

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The gradient, derived by hand. With x_i = w_in_i (pred_i - target_i) and the loss
// L = norm * Σ_i w_out_i f(x_i) (norm = 1, 1/N or 1/remaining; None keeps the terms apart):
//
//	dL/dpred_i   =  g * norm * w_out_i * w_in_i * f'(x_i)      (g: upstream gradient)
//	dL/dtarget_i = -dL/dpred_i
//	dL/dw_in, dL/dw_out: not propagated (constants, as in Caffe and the seed)
//
// The branch mask |x| < beta is piecewise constant: it carries no gradient (the seed's .detach()).
//
// Second order (the diff op is differentiable too), with u the upstream gradient of dpred:
//
//	d<u, dpred>/dpred_i = u_i * g * norm * w_out_i * w_in_i^2 * f''(x_i)
//	d<u, dpred>/dtarget = -d<u, dpred>/dpred
//	d<u, dpred>/dg      = norm * Σ_i u_i w_out_i w_in_i f'(x_i)   (u_i w_out_i w_in_i f'(x_i) for None)

var (
	_ G.SDOp = smoothL1DiffOp{}
	_ G.Op   = smoothL1Diff2Op{}
)

// DiffWRT: pred and target (unless WithoutTargetGrad), never the weights.
func (o smoothL1Op) DiffWRT(n int) []bool {
	wrt := make([]bool, n)
	if n > 0 {
		wrt[0] = true
	}
	if n > 1 {
		wrt[1] = o.targetGrad
	}
	return wrt
}

// SymDiff builds the gradient nodes for the TapeMachine: one diff-op node for pred (a single
// fused pass) and its negation for target.
func (o smoothL1Op) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != o.Arity() {
		return nil, fmt.Errorf("op: %v.SymDiff: expected %d inputs, got %d", o, o.Arity(), len(inputs))
	}
	args := append(append(G.Nodes{}, inputs...), grad)
	dpred, err := G.ApplyOp(smoothL1DiffOp{o}, args...)
	if err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", o, err)
	}
	grads := make(G.Nodes, len(inputs))
	grads[0] = dpred
	if o.targetGrad {
		if grads[1], err = G.Neg(dpred); err != nil {
			return nil, fmt.Errorf("op: %v.SymDiff: negating the pred gradient: %w", o, err)
		}
	}
	return grads, nil
}

// DoDiff is the LispMachine's backward step: it adds dL/dpred into pred's gradient buffer and
// subtracts it from target's (accumulating, never overwriting).
func (o smoothL1Op) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	if len(inputs) != o.Arity() {
		return fmt.Errorf("op: %v.DoDiff: expected %d inputs, got %d", o, o.Arity(), len(inputs))
	}
	vals := make([]G.Value, 0, len(inputs)+1)
	for _, n := range inputs {
		vals = append(vals, n.Value())
	}
	up, err := output.Grad()
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: reading the upstream gradient: %w", o, err)
	}
	vals = append(vals, up)
	d, err := smoothL1DiffOp{o}.Do(vals...)
	if err != nil {
		return err
	}
	dpred := d.(*tensor.Dense)
	if o.shape.TotalSize() == 0 {
		return nil // nothing to add (and Dense.Data panics on empty tensors)
	}
	accumulate := func(n *G.Node, sign float64, name string) error {
		gv, err := n.Grad()
		if err != nil {
			return nil // no gradient buffer: nothing asks for this input's gradient
		}
		buf, ok := gv.(*tensor.Dense)
		if !ok || !buf.Shape().Eq(o.shape) || buf.Dtype() != dpred.Dtype() {
			return fmt.Errorf("op: %v.DoDiff: %s's gradient buffer is %T %v, want %v %v", o, name, gv, values.ShapeOf(gv), dpred.Dtype(), o.shape)
		}
		switch dst := buf.Data().(type) {
		case []float64:
			addScaled(dst, dpred.Data().([]float64), sign)
		case []float32:
			addScaled(dst, dpred.Data().([]float32), sign)
		}
		return nil
	}
	if err := accumulate(inputs[0], 1, "pred"); err != nil {
		return err
	}
	if o.targetGrad {
		return accumulate(inputs[1], -1, "target")
	}
	return nil
}

func addScaled[T float](dst, src []T, sign float64) {
	src = src[:len(dst)]
	if sign > 0 {
		for i := range dst {
			dst[i] += src[i]
		}
		return
	}
	for i := range dst {
		dst[i] -= src[i]
	}
}

// smoothL1DiffOp computes dL/dpred in one fused pass. Inputs: the forward op's inputs, then the
// upstream gradient g (scalar, or pred's shape for None).
type smoothL1DiffOp struct{ fwd smoothL1Op }

func (d smoothL1DiffOp) Arity() int { return d.fwd.Arity() + 1 }

// Type: the forward inputs, the upstream gradient (the forward output's type) → pred's type.
func (d smoothL1DiffOp) Type() hm.Type {
	return d.fwd.fnType(d.fwd.outType(), d.fwd.tensorType())
}

func (d smoothL1DiffOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != d.Arity() {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", d, d.Arity(), len(ds))
	}
	return d.fwd.shape.Clone(), nil
}

func (d smoothL1DiffOp) ReturnsPtr() bool      { return false }
func (d smoothL1DiffOp) CallsExtern() bool     { return false }
func (d smoothL1DiffOp) OverwritesInput() int  { return -1 }
func (d smoothL1DiffOp) String() string        { return "SmoothL1Diff{" + d.fwd.describe() + "}" }
func (d smoothL1DiffOp) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d smoothL1DiffOp) Hashcode() uint32      { return hashOf(d) }

func (d smoothL1DiffOp) Do(vals ...G.Value) (G.Value, error) { return d.do(nil, vals) }

func (d smoothL1DiffOp) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return d.do(prealloc, vals)
}

func (d smoothL1DiffOp) do(prealloc G.Value, vals []G.Value) (G.Value, error) {
	o := d.fwd
	if len(vals) != d.Arity() {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", d, d.Arity(), len(vals))
	}
	dense, err := o.checkValues(vals, o.Arity())
	if err != nil {
		return nil, err
	}
	up := vals[len(vals)-1]
	if o.shape.TotalSize() == 0 {
		return tensor.New(tensor.Of(dense[0].Dtype()), tensor.WithShape(o.shape.Clone()...)), nil
	}
	switch dense[0].Dtype() {
	case tensor.Float64:
		return backward[float64](o, dense, up, prealloc)
	case tensor.Float32:
		return backward[float32](o, dense, up, prealloc)
	}
	return nil, fmt.Errorf("op: %v: unsupported dtype %v", d, dense[0].Dtype())
}

// upstream splits the upstream gradient into a per-element slice (None) or a scale (scalar
// reductions, normaliser folded in).
func upstream[T float](o smoothL1Op, up G.Value) (g []T, scale float64, err error) {
	if o.reduction == None {
		u, ok := up.(*tensor.Dense)
		if !ok || !u.Shape().Eq(o.shape) {
			return nil, 0, fmt.Errorf("op: %v: upstream gradient is %T %v, want a tensor of shape %v", o, up, values.ShapeOf(up), o.shape)
		}
		g, ok := u.Data().([]T)
		if !ok {
			return nil, 0, fmt.Errorf("op: %v: upstream gradient has dtype %v, want pred's", o, u.Dtype())
		}
		return g, 1, nil
	}
	s, err := values.Scalar(up)
	if err != nil {
		return nil, 0, fmt.Errorf("op: %v: upstream gradient: %w", o, err)
	}
	return nil, s * o.norm(), nil
}

func backward[T float](o smoothL1Op, dense []*tensor.Dense, up G.Value, prealloc G.Value) (G.Value, error) {
	g, scale, err := upstream[T](o, up)
	if err != nil {
		return nil, err
	}
	out := denseLike[T](o, dense[0], prealloc)
	gradPred(&o.p, slicesOf[T](o, dense), g, scale, out.Data().([]T))
	return out, nil
}

// DiffWRT of the diff op: pred, target (as the forward op) and the upstream gradient.
func (d smoothL1DiffOp) DiffWRT(n int) []bool {
	wrt := d.fwd.DiffWRT(n)
	if n > 0 {
		wrt[n-1] = true
	}
	return wrt
}

// SymDiff of the diff op gives exact second derivatives (Hessian-vector products).
func (d smoothL1DiffOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != d.Arity() {
		return nil, fmt.Errorf("op: %v.SymDiff: expected %d inputs, got %d", d, d.Arity(), len(inputs))
	}
	args := append(append(G.Nodes{}, inputs...), grad)
	grads := make(G.Nodes, len(inputs))
	var err error
	if grads[0], err = G.ApplyOp(smoothL1Diff2Op{fwd: d.fwd, wrtGrad: false}, args...); err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
	}
	if d.fwd.targetGrad {
		if grads[1], err = G.Neg(grads[0]); err != nil {
			return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
		}
	}
	if grads[len(grads)-1], err = G.ApplyOp(smoothL1Diff2Op{fwd: d.fwd, wrtGrad: true}, args...); err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
	}
	return grads, nil
}

// smoothL1Diff2Op is the derivative of the diff op. Inputs: the forward inputs, the upstream
// gradient g of the loss, and u, the upstream gradient of dpred. With wrtGrad false it returns
// d<u, dpred>/dpred (pred's shape); with wrtGrad true, d<u, dpred>/dg (g's shape). It is not
// differentiable itself (third derivatives are zero almost everywhere).
type smoothL1Diff2Op struct {
	fwd     smoothL1Op
	wrtGrad bool
}

func (d smoothL1Diff2Op) Arity() int { return d.fwd.Arity() + 2 }

// Type: the forward inputs, g, u → g's type (wrtGrad) or pred's type.
func (d smoothL1Diff2Op) Type() hm.Type {
	if d.wrtGrad {
		return d.fwd.fnType(d.fwd.outType(), d.fwd.tensorType(), d.fwd.outType())
	}
	return d.fwd.fnType(d.fwd.outType(), d.fwd.tensorType(), d.fwd.tensorType())
}

func (d smoothL1Diff2Op) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != d.Arity() {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", d, d.Arity(), len(ds))
	}
	if d.wrtGrad && d.fwd.reduction != None {
		return tensor.ScalarShape(), nil
	}
	return d.fwd.shape.Clone(), nil
}

func (d smoothL1Diff2Op) ReturnsPtr() bool     { return false }
func (d smoothL1Diff2Op) CallsExtern() bool    { return false }
func (d smoothL1Diff2Op) OverwritesInput() int { return -1 }
func (d smoothL1Diff2Op) String() string {
	return fmt.Sprintf("SmoothL1Diff2{wrtGrad=%t, %s}", d.wrtGrad, d.fwd.describe())
}
func (d smoothL1Diff2Op) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d smoothL1Diff2Op) Hashcode() uint32      { return hashOf(d) }

func (d smoothL1Diff2Op) Do(vals ...G.Value) (G.Value, error) {
	o := d.fwd
	if len(vals) != d.Arity() {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", d, d.Arity(), len(vals))
	}
	dense, err := o.checkValues(vals, o.Arity())
	if err != nil {
		return nil, err
	}
	u, ok := vals[len(vals)-1].(*tensor.Dense)
	if !ok || !u.Shape().Eq(o.shape) || u.Dtype() != dense[0].Dtype() {
		return nil, fmt.Errorf("op: %v: second-order upstream is %T %v, want %v %v", d, vals[len(vals)-1], values.ShapeOf(vals[len(vals)-1]), dense[0].Dtype(), o.shape)
	}
	up := vals[len(vals)-2]
	if o.shape.TotalSize() == 0 {
		if d.wrtGrad && o.reduction != None {
			return o.empty(dense[0].Dtype()) // Σ over nothing: 0 (* norm)
		}
		return tensor.New(tensor.Of(dense[0].Dtype()), tensor.WithShape(o.shape.Clone()...)), nil
	}
	switch dense[0].Dtype() {
	case tensor.Float64:
		return second[float64](d, dense, up, u)
	default:
		return second[float32](d, dense, up, u)
	}
}

func second[T float](d smoothL1Diff2Op, dense []*tensor.Dense, up G.Value, u *tensor.Dense) (G.Value, error) {
	o := d.fwd
	g, scale, err := upstream[T](o, up)
	if err != nil {
		return nil, err
	}
	in := slicesOf[T](o, dense)
	uu := u.Data().([]T)
	if d.wrtGrad && o.reduction != None {
		return scalarValue[T](dotGrad(&o.p, in, uu)*o.norm(), nil), nil
	}
	out := tensor.New(tensor.Of(dense[0].Dtype()), tensor.WithShape(o.shape.Clone()...))
	if d.wrtGrad {
		// None: d<u, dpred>/dg_i = u_i * w_out_i * w_in_i * f'(x_i)
		gradPred(&o.p, in, uu, 1, out.Data().([]T))
	} else {
		hessPred(&o.p, in, g, scale, uu, out.Data().([]T))
	}
	return out, nil
}
