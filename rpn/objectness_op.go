package rpn

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The objectness loss as one fused op, for both heads. With z the foreground logit of an anchor
// (Sigmoid: the score; Softmax2: s_fg - s_bg, since softmax over two classes is the sigmoid of
// the difference) and y in {0, 1} its label,
//
//	ce(z, y)  = max(z, 0) - z*y + log1p(exp(-|z|))      (= -ln softmax(s)[y], stable for any z)
//	loss      = Σ_{label >= 0} w_i ce(z_i, y_i)          (label -1 ignored whatever its weight)
//	dloss/dz  = w (sigmoid(z) - y)
//	Softmax2: dloss/ds_fg = dloss/dz, dloss/ds_bg = -dloss/dz
//
// Logits of ±1e4 give finite losses (1e4) and gradients (±w). Inputs: scores, labels, weights;
// only scores are differentiated. gorgonia's LogSumExp and Log(SoftMax) are not used (both are
// broken in v0.9.18).

var (
	_ G.SDOp = objectnessOp{}
	_ G.ADOp = objectnessOp{}
)

// ObjectnessLoss returns the scalar Σ w_i ce(z_i, y_i) over anchors with label >= 0. scores has
// shape (B, 2A, H, W) for Softmax2 or (B, A, H, W) for Sigmoid; labels and weights (B, A, H, W),
// the dtype of scores. Labels must be -1, 0 or 1 (checked when the op runs).
func ObjectnessLoss(scores, labels, weights *G.Node, kind Objectness) (*G.Node, error) {
	for _, a := range []struct {
		name string
		n    *G.Node
	}{{"scores", scores}, {"labels", labels}, {"weights", weights}} {
		if a.n == nil {
			return nil, fmt.Errorf("rpn: ObjectnessLoss: %s is nil", a.name)
		}
	}
	if kind != Softmax2 && kind != Sigmoid {
		return nil, fmt.Errorf("rpn: ObjectnessLoss: unknown objectness %v", kind)
	}
	dt := scores.Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("rpn: ObjectnessLoss: scores have dtype %v; want float32 or float64", dt)
	}
	ss := scores.Shape()
	if len(ss) != 4 {
		return nil, fmt.Errorf("rpn: ObjectnessLoss: scores have shape %v; want (B, %s, H, W)", ss, map[Objectness]string{Softmax2: "2A", Sigmoid: "A"}[kind])
	}
	A := ss[1]
	if kind == Softmax2 {
		if ss[1]%2 != 0 {
			return nil, fmt.Errorf("rpn: ObjectnessLoss: softmax2 scores have shape %v; channel count %d must be 2A", ss, ss[1])
		}
		A = ss[1] / 2
	}
	want := tensor.Shape{ss[0], A, ss[2], ss[3]}
	if err := oneGraph("ObjectnessLoss", []string{"scores", "labels", "weights"}, scores, labels, weights); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		name string
		n    *G.Node
	}{{"labels", labels}, {"weights", weights}} {
		if a.n.Dtype() != dt {
			return nil, fmt.Errorf("rpn: ObjectnessLoss: %s have dtype %v but scores have %v", a.name, a.n.Dtype(), dt)
		}
		if !a.n.Shape().Eq(want) {
			return nil, fmt.Errorf("rpn: ObjectnessLoss: %s have shape %v; scores of shape %v need %v", a.name, a.n.Shape(), ss, want)
		}
	}
	o := objectnessOp{kind: kind, shape: ss}
	n, err := G.ApplyOp(o, scores, labels, weights)
	if err != nil {
		return nil, fmt.Errorf("rpn: ObjectnessLoss: %w", err)
	}
	return n, nil
}

// oneGraph reports nodes of different graphs, naming them (opkit.OneGraph: constants join any
// graph; at least one node must belong to one).
func oneGraph(fn string, names []string, nodes ...*G.Node) error {
	if err := opkit.OneGraph(names, nodes...); err != nil {
		return fmt.Errorf("rpn: %s: %w", fn, err)
	}
	return nil
}

type objectnessOp struct {
	kind  Objectness
	shape tensor.Shape // scores
}

func (o objectnessOp) anchorsShape() tensor.Shape {
	s := o.shape.Clone()
	if o.kind == Softmax2 {
		s[1] /= 2
	}
	return s
}

func (o objectnessOp) Arity() int { return 3 }
func (o objectnessOp) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t, hm.TypeVariable('a'))
}
func (o objectnessOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 3 {
		return nil, fmt.Errorf("rpn: %v expects 3 inputs, got %d", o, len(ds))
	}
	return tensor.ScalarShape(), nil
}
func (o objectnessOp) ReturnsPtr() bool      { return false }
func (o objectnessOp) CallsExtern() bool     { return false }
func (o objectnessOp) OverwritesInput() int  { return -1 }
func (o objectnessOp) String() string        { return fmt.Sprintf("ObjectnessLoss{%v, %v}", o.kind, o.shape) }
func (o objectnessOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o objectnessOp) Hashcode() uint32      { return opkit.Hash(o) }

func (o objectnessOp) values(vals []G.Value) (scores, labels, weights *tensor.Dense, err error) {
	if len(vals) < 3 {
		return nil, nil, nil, fmt.Errorf("rpn: %v expects 3 inputs, got %d", o, len(vals))
	}
	want := []tensor.Shape{o.shape, o.anchorsShape(), o.anchorsShape()}
	names := []string{"scores", "labels", "weights"}
	ds := make([]*tensor.Dense, 3)
	for i := 0; i < 3; i++ {
		d, ok := vals[i].(*tensor.Dense)
		if !ok || d == nil || !d.Shape().Eq(want[i]) {
			return nil, nil, nil, fmt.Errorf("rpn: %v: %s is %T of shape %v, want a tensor of shape %v", o, names[i], vals[i], values.ShapeOf(vals[i]), want[i])
		}
		if d.Dtype() != tensor.Float32 && d.Dtype() != tensor.Float64 || (i > 0 && d.Dtype() != ds[0].Dtype()) {
			return nil, nil, nil, fmt.Errorf("rpn: %v: %s has dtype %v", o, names[i], d.Dtype())
		}
		// a view's Data() is its whole backing span: read it as a row-major copy
		c, err := values.Contiguous(d)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("rpn: %v: %s: %w", o, names[i], err)
		}
		ds[i] = c
	}
	return ds[0], ds[1], ds[2], nil
}

func (o objectnessOp) Do(vals ...G.Value) (G.Value, error) {
	s, l, w, err := o.values(vals)
	if err != nil {
		return nil, err
	}
	if s.Dtype() == tensor.Float32 {
		v, err := objectnessForward(o, floatData[float32](s), floatData[float32](l), floatData[float32](w))
		return G.NewF32(float32(v)), err
	}
	v, err := objectnessForward(o, floatData[float64](s), floatData[float64](l), floatData[float64](w))
	return G.NewF64(v), err
}

// floatData is d's elements, nil for an empty tensor (whose Data() panics). d is contiguous.
func floatData[T float](d *tensor.Dense) []T {
	if d.Shape().TotalSize() == 0 {
		return nil
	}
	return d.Data().([]T)[:d.Shape().TotalSize()]
}

type float interface{ float32 | float64 }

// ce is max(z, 0) - z*y + log1p(exp(-|z|)).
func ce(z, y float64) float64 {
	// float64(z*y): an explicit conversion rounds the product, so no build fuses it with the
	// subtraction into an FMA (Go spec, Floating-point operators): same bits on GOAMD64=v1 and v3.
	return math.Max(z, 0) - float64(z*y) + math.Log1p(math.Exp(-math.Abs(z)))
}

// sigmoid is 1/(1+exp(-z)) without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// segment is a run [lo, hi) of anchors of a (B, A, H, W) plane whose scores lie at a fixed
// offset: anchor i's foreground score is i + fg and, for Softmax2, its background score i + bg
// (class c of anchor r of image b is at (2b+c)*plane + r in the (B, 2A, H, W) scores; no
// division per anchor). Sigmoid has one run, offsets 0 and -1 (no background score).
type segment struct{ lo, hi, fg, bg int }

func (o objectnessOp) segments(n int) []segment {
	if o.kind == Sigmoid {
		return []segment{{0, n, 0, -1}}
	}
	plane := o.shape[1] / 2 * o.shape[2] * o.shape[3]
	var segs []segment
	for b, lo := 0, 0; lo < n; b, lo = b+1, lo+plane {
		// anchor i = b*plane + r: foreground (2b+1)*plane + r = i + (b+1)*plane, background i + b*plane
		segs = append(segs, segment{lo, min(lo+plane, n), (b + 1) * plane, b * plane})
	}
	return segs
}

// labelOf is label i as -1, 0 or 1, or an error naming it.
func labelOf[T float](o objectnessOp, i int, yl T) (float64, error) {
	switch yl {
	case -1, 0, 1:
		return float64(yl), nil
	}
	return 0, fmt.Errorf("rpn: %v: label %d is %v; labels must be -1, 0 or 1", o, i, yl)
}

func objectnessForward[T float](o objectnessOp, scores, labels, weights []T) (float64, error) {
	sum := 0.0
	for _, sg := range o.segments(len(labels)) {
		for i, yl := range labels[sg.lo:sg.hi] {
			if yl == -1 {
				continue
			}
			i += sg.lo
			y, err := labelOf(o, i, yl)
			if err != nil {
				return 0, err
			}
			z := float64(scores[i+sg.fg])
			if sg.bg >= 0 {
				z -= float64(scores[i+sg.bg])
			}
			sum += float64(float64(weights[i]) * ce(z, y)) // rounded: no FMA (see ce)
		}
	}
	return sum, nil
}

// objectnessGrad writes dst = upstream * dloss/dscores. dst must hold zeros (a new tensor): the
// scores of ignored anchors are not written.
func objectnessGrad[T float](o objectnessOp, scores, labels, weights []T, up float64, dst []T) error {
	for _, sg := range o.segments(len(labels)) {
		for i, yl := range labels[sg.lo:sg.hi] {
			if yl == -1 {
				continue
			}
			i += sg.lo
			y, err := labelOf(o, i, yl)
			if err != nil {
				return err
			}
			z := float64(scores[i+sg.fg])
			if sg.bg >= 0 {
				z -= float64(scores[i+sg.bg])
			}
			// d ce/dz = sigmoid(z) - y
			g := up * float64(weights[i]) * (sigmoid(z) - y)
			dst[i+sg.fg] = T(g)
			if sg.bg >= 0 {
				dst[i+sg.bg] = T(-g) // z = s_fg - s_bg
			}
		}
	}
	return nil
}

func (o objectnessOp) DiffWRT(n int) []bool {
	w := make([]bool, n)
	if n > 0 {
		w[0] = true
	}
	return w
}

func (o objectnessOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("rpn: %v.SymDiff: expected 3 inputs, got %d", o, len(inputs))
	}
	d, err := G.ApplyOp(objectnessDiffOp{o}, inputs[0], inputs[1], inputs[2], grad)
	if err != nil {
		return nil, fmt.Errorf("rpn: %v.SymDiff: %w", o, err)
	}
	return G.Nodes{d, nil, nil}, nil
}

// DoDiff adds the gradient into the scores' gradient buffer (LispMachine).
func (o objectnessOp) DoDiff(ctx G.ExecutionContext, inputs G.Nodes, output *G.Node) error {
	if len(inputs) != 3 {
		return fmt.Errorf("rpn: %v.DoDiff: expected 3 inputs, got %d", o, len(inputs))
	}
	up, err := output.Grad()
	if err != nil {
		return fmt.Errorf("rpn: %v.DoDiff: %w", o, err)
	}
	dv, err := objectnessDiffOp{o}.Do(inputs[0].Value(), inputs[1].Value(), inputs[2].Value(), up)
	if err != nil {
		return err
	}
	d := dv.(*tensor.Dense)
	gv, err := inputs[0].Grad()
	if err != nil {
		return fmt.Errorf("rpn: %v.DoDiff: scores' gradient: %w", o, err)
	}
	buf, ok := gv.(*tensor.Dense)
	if !ok || !buf.Shape().Eq(o.shape) || buf.Dtype() != d.Dtype() {
		return fmt.Errorf("rpn: %v.DoDiff: scores' gradient buffer is %T %v", o, gv, values.ShapeOf(gv))
	}
	if o.shape.TotalSize() == 0 {
		return nil
	}
	// the buffer is added to in place (never replaced). The LispMachine makes it like the
	// scores' value, so when the scores are a view it is a view too: tensor's Add with
	// UseUnsafe writes through the view's strides (checked by TestObjectnessViews).
	if _, err := buf.Add(d, tensor.UseUnsafe()); err != nil {
		return fmt.Errorf("rpn: %v.DoDiff: adding into the scores' gradient: %w", o, err)
	}
	return nil
}

type objectnessDiffOp struct{ fwd objectnessOp }

func (d objectnessDiffOp) Arity() int { return 4 }
func (d objectnessDiffOp) Type() hm.Type {
	t := G.TensorType{Dims: 4, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t, t, hm.TypeVariable('a'), t)
}
func (d objectnessDiffOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 4 {
		return nil, fmt.Errorf("rpn: %v expects 4 inputs, got %d", d, len(ds))
	}
	return d.fwd.shape.Clone(), nil
}
func (d objectnessDiffOp) ReturnsPtr() bool     { return false }
func (d objectnessDiffOp) CallsExtern() bool    { return false }
func (d objectnessDiffOp) OverwritesInput() int { return -1 }
func (d objectnessDiffOp) String() string {
	return "ObjectnessLossDiff" + d.fwd.String()[len("ObjectnessLoss"):]
}
func (d objectnessDiffOp) WriteHash(h hash.Hash) { fmt.Fprint(h, d.String()) }
func (d objectnessDiffOp) Hashcode() uint32      { return opkit.Hash(d) }

func (d objectnessDiffOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != 4 {
		return nil, fmt.Errorf("rpn: %v expects 4 inputs, got %d", d, len(vals))
	}
	s, l, w, err := d.fwd.values(vals)
	if err != nil {
		return nil, err
	}
	upstream := vals[3]
	if u, ok := upstream.(*tensor.Dense); ok && u != nil {
		// a one-element view of a larger tensor: read its element, not the span's first
		if upstream, err = values.Contiguous(u); err != nil {
			return nil, fmt.Errorf("rpn: %v: upstream: %w", d, err)
		}
	}
	up, err := values.Scalar(upstream)
	if err != nil {
		return nil, fmt.Errorf("rpn: %v: upstream: %w", d, err)
	}
	out := tensor.New(tensor.Of(s.Dtype()), tensor.WithShape(d.fwd.shape.Clone()...))
	if s.Dtype() == tensor.Float32 {
		err = objectnessGrad(d.fwd, floatData[float32](s), floatData[float32](l), floatData[float32](w), up, floatData[float32](out))
	} else {
		err = objectnessGrad(d.fwd, floatData[float64](s), floatData[float64](l), floatData[float64](w), up, floatData[float64](out))
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
