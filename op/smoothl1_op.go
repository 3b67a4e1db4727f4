package op

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Compile-time interface checks.
var (
	_ G.SDOp            = smoothL1Op{}
	_ G.ADOp            = smoothL1Op{}
	_ G.UsePreallocDoer = smoothL1Op{}
)

// SmoothL1Loss mirrors faster-rcnn.pytorch's _smooth_l1_loss(bbox_pred, bbox_targets,
// bbox_inside_weights, bbox_outside_weights, sigma, dim): with x = insideW * (pred - target),
//
//	loss = mean over the remaining axes of ( sum over dims of outsideW * f_sigma(x) )
//
// dims defaults to {1}. insideW and outsideW may be nil (all ones). The result is a scalar node;
// its gradient flows to pred and target (the branch mask carries none, as the seed's .detach()).
// It returns an error, never panics, on nil or mismatched nodes, non-float dtypes, bad sigma or
// bad dims.
func SmoothL1Loss(pred, target, insideW, outsideW *G.Node, sigma float64, dims ...int) (*G.Node, error) {
	if len(dims) == 0 {
		dims = []int{1}
	}
	return SmoothL1(pred, target, WithSigma(sigma), WithWeights(insideW, outsideW), WithSumDims(dims...))
}

// SmoothL1 is the smooth L1 loss with PyTorch's conventions (F.smooth_l1_loss: beta 1, mean
// reduction by default), extended with the seed's inside/outside weights and sum dims.
// See the package documentation for the formulas. It returns an error naming the argument for
// any input it cannot handle.
func SmoothL1(pred, target *G.Node, opts ...Option) (*G.Node, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	o, err := newSmoothL1Op(pred, target, &c)
	if err != nil {
		return nil, err
	}
	nodes := []*G.Node{pred, target}
	if c.insideW != nil {
		nodes = append(nodes, c.insideW)
	}
	if c.outsideW != nil {
		nodes = append(nodes, c.outsideW)
	}
	n, err := G.ApplyOp(o, nodes...)
	if err != nil {
		return nil, fmt.Errorf("op: SmoothL1: %w", err)
	}
	// the save belongs to this node (saved.go); a node gorgonia merged this one into keeps its own
	o.save.setOwner(nodes)
	return n, nil
}

// smoothL1Op is the fused forward pass. It is an immutable value: safe to share between graphs
// and goroutines.
type smoothL1Op struct {
	p          params
	reduction  Reduction
	dims       []int // normalised axes, reduction == sumDims only
	hasInside  bool
	hasOutside bool
	targetGrad bool
	shape      tensor.Shape // pred's shape
	// save is the forward's save for backward (saved.go): the only mutable part, guarded by its
	// own lock and checked before every use. It is not part of the hash: equal ops on equal
	// inputs are one node, and share it.
	save *saved
}

func checkNode(name string, n *G.Node) error {
	if n == nil {
		return fmt.Errorf("op: %s is nil", name)
	}
	return nil
}

func newSmoothL1Op(pred, target *G.Node, c *config) (smoothL1Op, error) {
	var o smoothL1Op
	if err := checkNode("pred", pred); err != nil {
		return o, err
	}
	if err := checkNode("target", target); err != nil {
		return o, err
	}
	named := []struct {
		name string
		n    *G.Node
	}{{"target", target}, {"insideW", c.insideW}, {"outsideW", c.outsideW}}
	dt := pred.Dtype()
	if dt != tensor.Float64 && dt != tensor.Float32 {
		return o, fmt.Errorf("op: pred has dtype %v; only float32 and float64 are supported", dt)
	}
	shape := pred.Shape()
	if pred.IsScalar() || len(shape) == 0 {
		return o, fmt.Errorf("op: pred is a scalar (shape %v); inputs must have rank >= 1 (use a 1-element vector)", shape)
	}
	// Constants (G.NewConstant) belong to no graph and are accepted wherever data is; every
	// other node must share one graph.
	if err := opkit.OneGraph([]string{"pred", "target", "insideW", "outsideW"}, pred, target, c.insideW, c.outsideW); err != nil {
		return o, fmt.Errorf("op: %w", err)
	}
	for _, a := range named {
		if a.n == nil {
			continue
		}
		if a.n.Dtype() != dt {
			return o, fmt.Errorf("op: %s has dtype %v but pred has dtype %v", a.name, a.n.Dtype(), dt)
		}
		if !a.n.Shape().Eq(shape) || a.n.IsScalar() {
			return o, fmt.Errorf("op: %s has shape %v but pred has shape %v", a.name, a.n.Shape(), shape)
		}
	}

	switch {
	case c.haveBeta && c.haveSigma:
		return o, fmt.Errorf("op: both beta (%v) and sigma (%v) given; choose one (beta = 1/sigma^2)", c.beta, c.sigma)
	case c.haveSigma:
		p, err := paramsFromSigma(c.sigma)
		if err != nil {
			return o, err
		}
		o.p = p
	case c.haveBeta:
		p, err := paramsFromBeta(c.beta)
		if err != nil {
			return o, err
		}
		o.p = p
	default:
		o.p, _ = paramsFromBeta(1)
	}

	switch {
	case c.haveDims && c.haveReduction:
		return o, fmt.Errorf("op: WithSumDims(%v) and WithReduction(%v) both given; WithSumDims implies its own reduction", c.dims, c.reduction)
	case c.haveDims:
		dims, err := normaliseDims(c.dims, len(shape), shape)
		if err != nil {
			return o, err
		}
		o.reduction, o.dims = sumDims, dims
	case c.haveReduction:
		if c.reduction != Mean && c.reduction != Sum && c.reduction != None {
			return o, fmt.Errorf("op: reduction %v is not one of None, Sum, Mean", c.reduction)
		}
		o.reduction = c.reduction
	default:
		o.reduction = Mean
	}
	o.hasInside = c.insideW != nil
	o.hasOutside = c.outsideW != nil
	o.targetGrad = c.targetGrad
	o.shape = shape
	o.save = &saved{}
	return o, nil
}

// norm is the factor applied to the weighted sum for the scalar reductions: 1 for Sum, 1/N for
// Mean, 1/(number of elements left after summing dims) for sumDims.
func (o smoothL1Op) norm() float64 {
	switch o.reduction {
	case Mean:
		return 1 / float64(o.shape.TotalSize())
	case sumDims:
		remaining := 1
		for ax, d := range o.shape {
			if !containsInt(o.dims, ax) {
				remaining *= d
			}
		}
		return 1 / float64(remaining)
	}
	return 1
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (o smoothL1Op) Arity() int {
	n := 2
	if o.hasInside {
		n++
	}
	if o.hasOutside {
		n++
	}
	return n
}

// tensorType is the type of pred (and of every input).
func (o smoothL1Op) tensorType() hm.Type {
	return G.TensorType{Dims: len(o.shape), Of: hm.TypeVariable('a')}
}

func (o smoothL1Op) outType() hm.Type {
	if o.reduction == None {
		return o.tensorType()
	}
	return hm.TypeVariable('a')
}

func (o smoothL1Op) Type() hm.Type { return o.fnType(o.outType()) }

// fnType is the function type taking the forward op's inputs (all of pred's type), then more.
func (o smoothL1Op) fnType(more ...hm.Type) hm.Type {
	ts := make([]hm.Type, 0, o.Arity()+len(more))
	for i := 0; i < o.Arity(); i++ {
		ts = append(ts, o.tensorType())
	}
	return hm.NewFnType(append(ts, more...)...)
}

func (o smoothL1Op) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != o.Arity() {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", o, o.Arity(), len(ds))
	}
	if o.reduction == None {
		return o.shape.Clone(), nil
	}
	return tensor.ScalarShape(), nil
}

func (o smoothL1Op) ReturnsPtr() bool     { return false }
func (o smoothL1Op) CallsExtern() bool    { return false }
func (o smoothL1Op) OverwritesInput() int { return -1 }

// describe is shared by String and WriteHash: every field that changes the result.
func (o smoothL1Op) describe() string {
	s := fmt.Sprintf("%s, reduction=%v", o.p.label, o.reduction)
	if o.reduction == sumDims {
		s += ", dims=" + dimsString(o.dims)
	}
	return s + fmt.Sprintf(", insideW=%t, outsideW=%t, targetGrad=%t, shape=%v", o.hasInside, o.hasOutside, o.targetGrad, o.shape)
}

func (o smoothL1Op) String() string        { return "SmoothL1{" + o.describe() + "}" }
func (o smoothL1Op) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o smoothL1Op) Hashcode() uint32      { return opkit.Hash(o) }

// Do runs the fused forward pass.
func (o smoothL1Op) Do(vals ...G.Value) (G.Value, error) {
	return o.do(nil, vals)
}

// UsePreallocDo writes into prealloc when it has the right type, dtype and shape.
func (o smoothL1Op) UsePreallocDo(prealloc G.Value, vals ...G.Value) (G.Value, error) {
	return o.do(prealloc, vals)
}

func (o smoothL1Op) do(prealloc G.Value, vals []G.Value) (G.Value, error) {
	dense, err := o.checkValues(vals, o.Arity())
	if err != nil {
		return nil, err
	}
	if o.shape.TotalSize() == 0 {
		return o.empty(dense[0].Dtype())
	}
	dt := dense[0].Dtype()
	buf := o.save.beginForward(vals[:o.Arity()], dt, o.shape)
	var out G.Value
	switch dt {
	case tensor.Float64:
		out = forward[float64](o, dense, buf, prealloc)
	default: // checkValues admits only float32 and float64
		out = forward[float32](o, dense, buf, prealloc)
	}
	if buf != nil {
		o.save.endForward(vals[:o.Arity()], out)
	}
	return out, nil
}

// empty is the result on empty inputs, as in PyTorch: an empty tensor (None), 0 (Sum), NaN
// (Mean, and sumDims when nothing remains: 0 * 1/0). gorgonia's Dense.Data panics on empty
// tensors, so no kernel runs.
func (o smoothL1Op) empty(dt tensor.Dtype) (G.Value, error) {
	if o.reduction == None {
		return tensor.New(tensor.Of(dt), tensor.WithShape(o.shape.Clone()...)), nil
	}
	if dt == tensor.Float32 {
		return scalarValue[float32](0*o.norm(), nil), nil
	}
	return scalarValue[float64](0*o.norm(), nil), nil
}

// checkValues verifies the first `count` run-time values (dense tensors of one float dtype and
// pred's shape) and returns them contiguous: a view is read through a row-major copy
// (values.Contiguous), a contiguous value as it is.
func (o smoothL1Op) checkValues(vals []G.Value, count int) ([]*tensor.Dense, error) {
	if len(vals) < count {
		return nil, fmt.Errorf("op: %v expects %d inputs, got %d", o, count, len(vals))
	}
	out := make([]*tensor.Dense, count)
	for i := 0; i < count; i++ {
		d, err := o.checkTensor(vals[i], o.inputName(i), tensor.Dtype{})
		if err != nil {
			return nil, err
		}
		if i > 0 && d.Dtype() != out[0].Dtype() {
			return nil, fmt.Errorf("op: %v: input %s has dtype %v, pred has %v", o, o.inputName(i), d.Dtype(), out[0].Dtype())
		}
		out[i] = d
	}
	return out, nil
}

// checkTensor checks that v is a float tensor of pred's shape (and of dtype dt unless dt is the
// zero Dtype) and returns it contiguous.
func (o smoothL1Op) checkTensor(v G.Value, name string, dt tensor.Dtype) (*tensor.Dense, error) {
	d, err := opkit.DenseInput(o, "input "+name, v, o.shape, dt)
	if err != nil {
		return nil, fmt.Errorf("op: %w", err)
	}
	return d, nil
}

func (o smoothL1Op) inputName(i int) string {
	names := []string{"pred", "target"}
	if o.hasInside {
		names = append(names, "insideW")
	}
	if o.hasOutside {
		names = append(names, "outsideW")
	}
	if i < len(names) {
		return names[i]
	}
	return "grad"
}

// slicesOf extracts the inputs' backing slices (weights nil when absent).
func slicesOf[T float](o smoothL1Op, dense []*tensor.Dense) inputs[T] {
	in := inputs[T]{pred: dense[0].Data().([]T), target: dense[1].Data().([]T)}
	i := 2
	if o.hasInside {
		in.insideW = dense[i].Data().([]T)
		i++
	}
	if o.hasOutside {
		in.outsideW = dense[i].Data().([]T)
	}
	return in
}

// forward computes the loss and, when save is not nil, writes the factor of saved.go into it in
// the same sweep.
func forward[T float](o smoothL1Op, dense []*tensor.Dense, save *tensor.Dense, prealloc G.Value) G.Value {
	in := slicesOf[T](o, dense)
	var factor []T
	if save != nil {
		factor = save.Data().([]T)
	}
	if o.reduction == None {
		out := denseLike[T](o, dense[0], prealloc)
		elementLoss(&o.p, in, out.Data().([]T), factor)
		return out
	}
	norm := o.norm()
	if factor != nil {
		return scalarValue[T](sumLossSave(&o.p, in, norm, factor)*norm, prealloc)
	}
	return scalarValue[T](sumLoss(&o.p, in)*norm, prealloc)
}

// denseLike returns prealloc when it is a usable dense tensor of pred's dtype and shape, else a
// new one.
func denseLike[T float](o smoothL1Op, like *tensor.Dense, prealloc G.Value) *tensor.Dense {
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == like.Dtype() && d.Shape().Eq(o.shape) && d.IsNativelyAccessible() {
		if _, ok := d.Data().([]T); ok {
			return d
		}
	}
	return tensor.New(tensor.Of(like.Dtype()), tensor.WithShape(o.shape.Clone()...))
}

// scalarValue makes the gorgonia scalar of dtype T (reusing prealloc when it is one).
func scalarValue[T float](v float64, prealloc G.Value) G.Value {
	var zero T
	switch any(zero).(type) {
	case float32:
		if p, ok := prealloc.(*G.F32); ok {
			*p = G.F32(v)
			return p
		}
		return G.NewF32(float32(v))
	default:
		if p, ok := prealloc.(*G.F64); ok {
			*p = G.F64(v)
			return p
		}
		return G.NewF64(v)
	}
}
