package op

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"github.com/detlab/smoothl1/internal/opkit"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Softmax cross-entropy over K classes, fused: PyTorch's F.cross_entropy(logits, labels,
// ignore_index, reduction) for logits (N, K) and labels (N). With z a row of logits, y its label,
//
//	lse(z)     = m + log Σ_k exp(z_k - m),   m = max_k z_k        (stable for any finite z)
//	loss_i     = lse(z_i) - z_{i, y_i}        (0, and excluded, where y_i is the ignore index)
//	Sum        = Σ_i loss_i,   Mean = Sum / (rows not ignored)  (NaN when every row is ignored)
//	dL/dz_ik   = g_i * norm * (softmax(z_i)_k - [k == y_i])   (0 on ignored rows)
//
// and, for second order with u the upstream gradient of dL/dz,
//
//	d<u, dL/dz>/dz_ij = g_i * norm * s_ij * (u_ij - Σ_k s_ik u_ik)
//	d<u, dL/dz>/dg_i  = norm * Σ_k u_ik (s_ik - [k == y_i])    (summed over i for a scalar g)
//
// Labels are data: they get no gradient. They are given in the logits' dtype (gorgonia's type
// system wants one dtype per op) and must hold whole numbers in [0, K) or the ignore index,
// checked when the op runs. float32 logits are computed in float64.

// DefaultIgnoreIndex is PyTorch's default ignore_index.
const DefaultIgnoreIndex = -100

// XentOption configures SoftmaxCrossEntropy.
type XentOption func(*xentConfig)

type xentConfig struct {
	reduction     Reduction
	haveReduction bool
	ignore        int
}

// XentReduction chooses None (per row, shape (N)), Sum or Mean (the default): PyTorch's
// reduction argument.
func XentReduction(r Reduction) XentOption {
	return func(c *xentConfig) { c.reduction, c.haveReduction = r, true }
}

// XentIgnoreIndex sets the label that marks a row to ignore (PyTorch's ignore_index, default
// -100): the row contributes no loss, no gradient and is not counted by Mean.
func XentIgnoreIndex(label int) XentOption {
	return func(c *xentConfig) { c.ignore = label }
}

var (
	_ G.SDOp = xentOp{}
	_ G.ADOp = xentOp{}
)

// SoftmaxCrossEntropy returns the softmax cross-entropy of logits (N, K) against labels (N),
// reduced as PyTorch's F.cross_entropy (Mean by default, over the rows not ignored). It returns
// an error naming the argument on nil nodes, nodes of different graphs, dtypes other than
// float32/float64 or mixed, shapes other than (N, K) and (N), K < 1, or an unknown reduction.
func SoftmaxCrossEntropy(logits, labels *G.Node, opts ...XentOption) (*G.Node, error) {
	c := xentConfig{ignore: DefaultIgnoreIndex}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if logits == nil {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: logits is nil")
	}
	if labels == nil {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: labels is nil")
	}
	dt := logits.Dtype()
	if dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: logits have dtype %v; only float32 and float64 are supported", dt)
	}
	if labels.Dtype() != dt {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: labels have dtype %v but logits have %v (give labels in the logits' dtype)", labels.Dtype(), dt)
	}
	ls := logits.Shape()
	if len(ls) != 2 || logits.IsScalar() || ls[1] < 1 {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: logits have shape %v; want (N, K) with K >= 1", ls)
	}
	if s := labels.Shape(); len(s) != 1 || labels.IsScalar() || s[0] != ls[0] {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: labels have shape %v; logits of shape %v need (%d)", s, ls, ls[0])
	}
	if err := opkit.OneGraph([]string{"logits", "labels"}, logits, labels); err != nil {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: %w", err)
	}
	if c.haveReduction && c.reduction != None && c.reduction != Sum && c.reduction != Mean {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: reduction %v is not one of None, Sum, Mean", c.reduction)
	}
	o := xentOp{n: ls[0], k: ls[1], reduction: Mean, ignore: c.ignore}
	if c.haveReduction {
		o.reduction = c.reduction
	}
	n, err := G.ApplyOp(o, logits, labels)
	if err != nil {
		return nil, fmt.Errorf("op: SoftmaxCrossEntropy: %w", err)
	}
	return n, nil
}

// xentOp is the fused forward pass: an immutable value.
type xentOp struct {
	n, k      int
	reduction Reduction
	ignore    int
}

func (o xentOp) Arity() int { return 2 }

func (o xentOp) logitsType() hm.Type { return G.TensorType{Dims: 2, Of: hm.TypeVariable('a')} }
func (o xentOp) labelsType() hm.Type { return G.TensorType{Dims: 1, Of: hm.TypeVariable('a')} }

// outType: a vector (N) for None, else a scalar of the dtype.
func (o xentOp) outType() hm.Type {
	if o.reduction == None {
		return o.labelsType()
	}
	return hm.TypeVariable('a')
}

func (o xentOp) Type() hm.Type { return hm.NewFnType(o.logitsType(), o.labelsType(), o.outType()) }

func (o xentOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	if len(ds) != 2 {
		return nil, fmt.Errorf("op: %v expects 2 inputs, got %d", o, len(ds))
	}
	if o.reduction == None {
		return tensor.Shape{o.n}, nil
	}
	return tensor.ScalarShape(), nil
}

func (o xentOp) ReturnsPtr() bool     { return false }
func (o xentOp) CallsExtern() bool    { return false }
func (o xentOp) OverwritesInput() int { return -1 }
func (o xentOp) describe() string {
	return fmt.Sprintf("N=%d, K=%d, reduction=%v, ignore=%d", o.n, o.k, o.reduction, o.ignore)
}
func (o xentOp) String() string        { return "SoftmaxCrossEntropy{" + o.describe() + "}" }
func (o xentOp) WriteHash(h hash.Hash) { fmt.Fprint(h, o.String()) }
func (o xentOp) Hashcode() uint32      { return opkit.Hash(o) }

func (o xentOp) Do(vals ...G.Value) (G.Value, error) {
	in, err := o.read(vals)
	if err != nil {
		return nil, err
	}
	if in.dt == tensor.Float32 {
		return xentForward[float32](o, in)
	}
	return xentForward[float64](o, in)
}

// xentInputs are the checked run-time inputs: contiguous logits and labels, the labels as class
// indices (-1 for ignored rows), and the count of rows not ignored.
type xentInputs struct {
	dt      tensor.Dtype
	logits  *tensor.Dense
	classes []int
	counted int
}

// read checks and reads the logits and labels values: float tensors of the op's shapes and one
// dtype (views read through a contiguous copy); every label a whole number in [0, K) or the
// ignore index, else an error naming the row and the value.
func (o xentOp) read(vals []G.Value) (xentInputs, error) {
	var in xentInputs
	if len(vals) < 2 {
		return in, fmt.Errorf("op: %v expects 2 inputs, got %d", o, len(vals))
	}
	logits, err := contiguousFloat(vals[0], tensor.Shape{o.n, o.k}, tensor.Dtype{}, o, "logits")
	if err != nil {
		return in, err
	}
	labels, err := contiguousFloat(vals[1], tensor.Shape{o.n}, logits.Dtype(), o, "labels")
	if err != nil {
		return in, err
	}
	in.dt, in.logits = logits.Dtype(), logits
	in.classes = make([]int, o.n)
	if o.n == 0 {
		return in, nil
	}
	var ys []float64
	switch l := labels.Data().(type) {
	case []float64:
		ys = l
	case []float32:
		ys = make([]float64, len(l))
		for i, v := range l {
			ys[i] = float64(v)
		}
	}
	for i, y := range ys[:o.n] {
		switch {
		case y == float64(o.ignore):
			in.classes[i] = -1
		case y != math.Trunc(y) || y < 0 || y >= float64(o.k):
			return in, fmt.Errorf("op: %v: label %v of row %d is not a class in [0, %d) nor the ignore index %d", o, y, i, o.k, o.ignore)
		default:
			in.classes[i] = int(y)
			in.counted++
		}
	}
	return in, nil
}

// contiguousFloat checks that v is a float tensor of the given shape (and dtype, unless zero) and
// returns it contiguous.
func contiguousFloat(v G.Value, shape tensor.Shape, dt tensor.Dtype, who fmt.Stringer, name string) (*tensor.Dense, error) {
	d, err := opkit.DenseInput(who, name, v, shape, dt)
	if err != nil {
		return nil, fmt.Errorf("op: %w", err)
	}
	return d, nil
}

// norm is 1/(rows counted) for Mean (NaN-producing 1/0 when none is), else 1.
func (o xentOp) norm(counted int) float64 {
	if o.reduction == Mean {
		return 1 / float64(counted)
	}
	return 1
}

// rowLoss returns lse(z) - z_y for one row, and writes softmax(z) into s when s is not nil.
func rowLoss[T float](z []T, y int, s []float64) float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	sum := 0.0
	for _, v := range z {
		sum += math.Exp(float64(v) - m)
	}
	if s != nil {
		for k, v := range z {
			s[k] = math.Exp(float64(v)-m) / sum
		}
	}
	if y < 0 {
		return 0
	}
	return m + math.Log(sum) - float64(z[y])
}

func xentForward[T float](o xentOp, in xentInputs) (G.Value, error) {
	if o.reduction == None {
		out := make([]T, o.n)
		if o.n > 0 {
			z := in.logits.Data().([]T)
			for i, y := range in.classes {
				out[i] = T(rowLoss(z[i*o.k:(i+1)*o.k], y, nil))
			}
		}
		return tensor.New(tensor.WithShape(o.n), tensor.WithBacking(out)), nil
	}
	total := 0.0
	if o.n > 0 {
		z := in.logits.Data().([]T)
		for i, y := range in.classes {
			if y >= 0 {
				total += rowLoss(z[i*o.k:(i+1)*o.k], y, nil)
			}
		}
	}
	return scalarValue[T](total*o.norm(in.counted), nil), nil
}
