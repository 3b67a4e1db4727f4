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

// The gradient, derived by hand. With x_i = w_in_i (pred_i - target_i) and the loss
// L = norm * Σ_i w_out_i f(x_i) (norm = 1, 1/N or 1/remaining; None keeps the terms apart):
//
//	dL/dpred_i   =  g * (norm * w_out_i * w_in_i * f'(x_i))    (g: upstream gradient)
//	dL/dtarget_i = -dL/dpred_i                                  (WithTargetGrad only)
//
// The factor in brackets is what the forward saves (saved.go), rounded to the dtype; the
// product with g is rounded again. The recomputation does the same, so both give the same bits.
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

// DiffWRT: pred, and target with WithTargetGrad; never the weights.
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

// SymDiff builds the gradient nodes for the TapeMachine: one diff-op node for pred, which takes
// the forward output too, so that every machine runs it after the forward and it can use the
// forward's save (saved.go); with WithTargetGrad, its negation for target.
func (o smoothL1Op) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != o.Arity() {
		return nil, fmt.Errorf("op: %v.SymDiff: expected %d inputs, got %d", o, o.Arity(), len(inputs))
	}
	if output == nil || grad == nil {
		return nil, fmt.Errorf("op: %v.SymDiff: no output or upstream gradient node", o)
	}
	o.save.want()
	args := append(append(G.Nodes{}, inputs...), output, grad)
	dpred, err := G.ApplyOp(smoothL1DiffOp{o}, args...)
	if err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", o, err)
	}
	grads := make(G.Nodes, len(inputs))
	grads[0] = dpred
	if o.targetGrad {
		if grads[1], err = negate(dpred); err != nil {
			return nil, fmt.Errorf("op: %v.SymDiff: negating the pred gradient: %w", o, err)
		}
	}
	return grads, nil
}

// DoDiff is the LispMachine's backward step: it adds dL/dpred into pred's gradient buffer and,
// with WithTargetGrad, subtracts it from target's (accumulating, never overwriting). It uses the
// forward's save when it is fresh, as the diff op does.
func (o smoothL1Op) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	if len(inputs) != o.Arity() {
		return fmt.Errorf("op: %v.DoDiff: expected %d inputs, got %d", o, o.Arity(), len(inputs))
	}
	o.save.want()
	vals := make([]G.Value, 0, len(inputs))
	for _, n := range inputs {
		vals = append(vals, n.Value())
	}
	dense, err := o.checkValues(vals, o.Arity())
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: %w", o, err)
	}
	up, err := output.Grad()
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: reading the upstream gradient: %w", o, err)
	}
	if o.shape.TotalSize() == 0 {
		return nil // nothing to add (and Dense.Data panics on empty tensors)
	}
	buffers := []*tensor.Dense{nil, nil}
	for i, name := range []string{"pred", "target"} {
		if i == 1 && !o.targetGrad {
			break
		}
		gv, err := inputs[i].Grad()
		if err != nil {
			continue // no gradient buffer: nothing asks for this input's gradient
		}
		buf, ok := gv.(*tensor.Dense)
		if !ok || !buf.Shape().Eq(o.shape) || buf.Dtype() != dense[0].Dtype() {
			return fmt.Errorf("op: %v.DoDiff: %s's gradient buffer is %T %v, want %v %v", o, name, gv, values.ShapeOf(gv), dense[0].Dtype(), o.shape)
		}
		buffers[i] = buf
	}
	factor := o.save.take(vals, output.Value(), false)
	if factor != nil {
		defer o.save.release()
	}
	switch dense[0].Dtype() {
	case tensor.Float64:
		return accumulateGrad[float64](o, dense, factor, up, buffers)
	default:
		return accumulateGrad[float32](o, dense, factor, up, buffers)
	}
}

// accumulateGrad adds dL/dpred (factor times upstream, the diff op's bits) into buffers[0] and
// subtracts it from buffers[1] (either may be nil). factor is the forward's save, or nil to
// recompute it.
func accumulateGrad[T float](o smoothL1Op, dense []*tensor.Dense, factor *tensor.Dense, up G.Value, buffers []*tensor.Dense) error {
	g, scale, err := upstream[T](o, up)
	if err != nil {
		return err
	}
	d := make([]T, o.shape.TotalSize())
	if factor != nil {
		copy(d, factor.Data().([]T))
	} else {
		gradPred(&o.p, slicesOf[T](o, dense), nil, o.factorNorm(), d)
	}
	if g != nil {
		mulInPlace(d, g)
	} else {
		scaleInPlace(d, scale)
	}
	for k, buf := range buffers {
		if buf != nil {
			if err := opkit.Accumulate(buf, d, k == 1); err != nil {
				return fmt.Errorf("op: %v.DoDiff: %w", o, err)
			}
		}
	}
	return nil
}

// factorNorm is the normaliser folded into the factor: norm for the scalar reductions, 1 for None.
func (o smoothL1Op) factorNorm() float64 {
	if o.reduction == None {
		return 1
	}
	return o.norm()
}

// smoothL1DiffOp computes dL/dpred. Inputs: the forward op's inputs, the forward output (an
// ordering dependency and the key of the save), then the upstream gradient g (scalar, or pred's
// shape for None). It multiplies the forward's saved factor by g in place and returns it, or,
// when the save cannot be trusted, recomputes the factor from the inputs first (same bits).
type smoothL1DiffOp struct{ fwd smoothL1Op }

func (d smoothL1DiffOp) Arity() int { return d.fwd.Arity() + 2 }

// Type: the forward inputs, the forward output, the upstream gradient (the output's type) → pred's
// type.
func (d smoothL1DiffOp) Type() hm.Type {
	return d.fwd.fnType(d.fwd.outType(), d.fwd.outType(), d.fwd.tensorType())
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
func (d smoothL1DiffOp) Hashcode() uint32      { return opkit.Hash(d) }

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
		return backward[float64](o, dense, vals, up, prealloc)
	default:
		return backward[float32](o, dense, vals, up, prealloc)
	}
}

// upstream splits the upstream gradient into a per-element slice (None; a view is read through a
// contiguous copy) or a scalar.
func upstream[T float](o smoothL1Op, up G.Value) (g []T, scale float64, err error) {
	if o.reduction == None {
		var zero T
		dt := tensor.Float64
		if _, ok := any(zero).(float32); ok {
			dt = tensor.Float32
		}
		u, err := o.checkTensor(up, "upstream gradient", dt)
		if err != nil {
			return nil, 0, err
		}
		return u.Data().([]T), 1, nil
	}
	s, err := values.Scalar(up)
	if err != nil {
		return nil, 0, fmt.Errorf("op: %v: upstream gradient: %w", o, err)
	}
	return nil, s, nil
}

// backward returns dL/dpred: the forward's saved factor when it is fresh for these very values
// (saved.go), else a recomputed one, multiplied by the upstream in place.
func backward[T float](o smoothL1Op, dense []*tensor.Dense, vals []G.Value, up G.Value, prealloc G.Value) (G.Value, error) {
	g, scale, err := upstream[T](o, up)
	if err != nil {
		return nil, err
	}
	out := o.save.take(vals[:o.Arity()], vals[o.Arity()], true)
	if out == nil {
		out = denseLike[T](o, dense[0], prealloc)
		gradPred(&o.p, slicesOf[T](o, dense), nil, o.factorNorm(), out.Data().([]T))
	}
	if g != nil {
		mulInPlace(out.Data().([]T), g)
	} else {
		scaleInPlace(out.Data().([]T), scale)
	}
	return out, nil
}

// DiffWRT of the diff op: pred, target (as the forward op) and the upstream gradient; not the
// forward output, which is only an ordering dependency.
func (d smoothL1DiffOp) DiffWRT(n int) []bool {
	wrt := d.fwd.DiffWRT(n)
	if n > 1 {
		wrt[n-2] = false
	}
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
		if grads[1], err = negate(grads[0]); err != nil {
			return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
		}
	}
	if grads[len(grads)-1], err = G.ApplyOp(smoothL1Diff2Op{fwd: d.fwd, wrtGrad: true}, args...); err != nil {
		return nil, fmt.Errorf("op: %v.SymDiff: %w", d, err)
	}
	return grads, nil
}

// smoothL1Diff2Op is the derivative of the diff op. Inputs: the forward inputs, the forward
// output (unused: second order always recomputes), the upstream gradient g of the loss, and u, the upstream gradient of dpred. With wrtGrad false it returns
// d<u, dpred>/dpred (pred's shape); with wrtGrad true, d<u, dpred>/dg (g's shape). It is not
// differentiable itself (third derivatives are zero almost everywhere).
type smoothL1Diff2Op struct {
	fwd     smoothL1Op
	wrtGrad bool
}

func (d smoothL1Diff2Op) Arity() int { return d.fwd.Arity() + 3 }

// Type: the forward inputs, the forward output, g, u → g's type (wrtGrad) or pred's type.
func (d smoothL1Diff2Op) Type() hm.Type {
	if d.wrtGrad {
		return d.fwd.fnType(d.fwd.outType(), d.fwd.outType(), d.fwd.tensorType(), d.fwd.outType())
	}
	return d.fwd.fnType(d.fwd.outType(), d.fwd.outType(), d.fwd.tensorType(), d.fwd.tensorType())
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
func (d smoothL1Diff2Op) Hashcode() uint32      { return opkit.Hash(d) }

func (d smoothL1Diff2Op) Do(vals ...G.Value) (G.Value, error) {
	o := d.fwd
	if len(vals) != d.Arity() {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", d, d.Arity(), len(vals))
	}
	dense, err := o.checkValues(vals, o.Arity())
	if err != nil {
		return nil, err
	}
	u, err := o.checkTensor(vals[len(vals)-1], "second-order upstream", dense[0].Dtype())
	if err != nil {
		return nil, err
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
		hessPred(&o.p, in, g, scale*o.norm(), uu, out.Data().([]T))
	}
	return out, nil
}

// negate returns -x as a node: the target's gradient. gorgonia's Neg panics on empty tensors
// and reads views as contiguous; negOp does neither.
func negate(x *G.Node) (*G.Node, error) {
	return G.ApplyOp(negOp{shape: x.Shape().Clone()}, x)
}

// negOp is elementwise negation of a float tensor: -x for every element, empty stays empty.
// Its derivative is negation again.
type negOp struct{ shape tensor.Shape }

var (
	_ G.SDOp = negOp{}
	_ G.ADOp = negOp{}
)

func (n negOp) Arity() int { return 1 }
func (n negOp) Type() hm.Type {
	t := G.TensorType{Dims: len(n.shape), Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (n negOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 1 {
		return nil, fmt.Errorf("op: %v expects 1 input, got %d", n, len(ds))
	}
	return n.shape.Clone(), nil
}
func (n negOp) ReturnsPtr() bool      { return false }
func (n negOp) CallsExtern() bool     { return false }
func (n negOp) OverwritesInput() int  { return -1 }
func (n negOp) String() string        { return fmt.Sprintf("SmoothL1Neg{shape=%v}", n.shape) }
func (n negOp) WriteHash(h hash.Hash) { fmt.Fprint(h, n.String()) }
func (n negOp) Hashcode() uint32      { return opkit.Hash(n) }

func (n negOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 1 {
		return nil, fmt.Errorf("op: %v expects 1 input, got %d", n, len(vals))
	}
	d, ok := vals[0].(*tensor.Dense)
	if !ok || d == nil || !d.Shape().Eq(n.shape) {
		return nil, fmt.Errorf("op: %v: input is %T %v, want a tensor of shape %v", n, vals[0], values.ShapeOf(vals[0]), n.shape)
	}
	out := tensor.New(tensor.Of(d.Dtype()), tensor.WithShape(n.shape.Clone()...))
	if n.shape.TotalSize() == 0 {
		return out, nil
	}
	c, err := values.Contiguous(d)
	if err != nil {
		return nil, fmt.Errorf("op: %v: %w", n, err)
	}
	switch src := c.Data().(type) {
	case []float64:
		negInto(out.Data().([]float64), src)
	case []float32:
		negInto(out.Data().([]float32), src)
	default:
		return nil, fmt.Errorf("op: %v: dtype %v, want float32 or float64", n, d.Dtype())
	}
	return out, nil
}

func negInto[T float](dst, src []T) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = -v
	}
}

func (n negOp) DiffWRT(k int) []bool {
	wrt := make([]bool, k)
	for i := range wrt {
		wrt[i] = true
	}
	return wrt
}

func (n negOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 1 || grad == nil {
		return nil, fmt.Errorf("op: %v.SymDiff: expected 1 input and a gradient", n)
	}
	d, err := negate(grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d}, nil
}

// DoDiff subtracts the upstream gradient from the input's gradient buffer.
func (n negOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	if len(inputs) != 1 || n.shape.TotalSize() == 0 {
		return nil
	}
	up, err := output.Grad()
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: %w", n, err)
	}
	gv, err := inputs[0].Grad()
	if err != nil {
		return nil // no gradient buffer: nothing asks for this input's gradient
	}
	u, ok1 := up.(*tensor.Dense)
	buf, ok2 := gv.(*tensor.Dense)
	if !ok1 || !ok2 || !u.Shape().Eq(n.shape) || !buf.Shape().Eq(n.shape) || u.Dtype() != buf.Dtype() {
		return fmt.Errorf("op: %v.DoDiff: gradients %T %v and %T %v, want tensors of shape %v", n, up, values.ShapeOf(up), gv, values.ShapeOf(gv), n.shape)
	}
	if u, err = values.Contiguous(u); err != nil {
		return fmt.Errorf("op: %v.DoDiff: %w", n, err)
	}
	switch src := u.Data().(type) {
	case []float64:
		err = opkit.Accumulate(buf, src, true)
	case []float32:
		err = opkit.Accumulate(buf, src, true)
	}
	if err != nil {
		return fmt.Errorf("op: %v.DoDiff: %w", n, err)
	}
	return nil
}
