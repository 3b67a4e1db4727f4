package op

import (
	"fmt"
	"math"
	"strings"

	G "gorgonia.org/gorgonia"
)

// Reduction says how the elementwise losses are combined, with PyTorch's meanings.
type Reduction int

const (
	// Mean divides the sum by the number of elements (PyTorch "mean", the default).
	// The mean of an empty tensor is NaN, as in PyTorch.
	Mean Reduction = iota
	// Sum adds every element (PyTorch "sum"). The sum of an empty tensor is 0.
	Sum
	// None keeps the elementwise losses: the output has the shape of pred (PyTorch "none").
	None
	// sumDims sums over the dims given to WithSumDims, then takes the mean over the
	// remaining elements (the seed's _smooth_l1_loss). Set by WithSumDims only.
	sumDims
)

func (r Reduction) String() string {
	switch r {
	case Mean:
		return "mean"
	case Sum:
		return "sum"
	case None:
		return "none"
	case sumDims:
		return "sumdims"
	}
	return fmt.Sprintf("Reduction(%d)", int(r))
}

// Option configures SmoothL1.
type Option func(*config)

type config struct {
	beta, sigma         float64
	haveBeta, haveSigma bool
	insideW, outsideW   *G.Node
	reduction           Reduction
	haveReduction       bool
	dims                []int
	haveDims            bool
	targetGrad          bool
}

// WithBeta sets PyTorch's beta: the loss is quadratic for |x| < beta and linear beyond.
// beta = 0 is plain L1. Default 1. beta must be finite and >= 0.
func WithBeta(beta float64) Option {
	return func(c *config) { c.beta, c.haveBeta = beta, true }
}

// WithSigma sets Caffe's sigma (the seed's convention): beta = 1/sigma^2.
// sigma must be finite and > 0. Faster R-CNN's RPN uses sigma = 3.
func WithSigma(sigma float64) Option {
	return func(c *config) { c.sigma, c.haveSigma = sigma, true }
}

// WithWeights sets the inside weights (multiplying the residual before f) and the outside
// weights (multiplying f). Either may be nil, meaning all ones. Both must have pred's shape
// and dtype. Weights are constants: no gradient flows to them.
func WithWeights(insideW, outsideW *G.Node) Option {
	return func(c *config) { c.insideW, c.outsideW = insideW, outsideW }
}

// WithReduction chooses None, Sum or Mean. It cannot be combined with WithSumDims.
func WithReduction(r Reduction) Option {
	return func(c *config) { c.reduction, c.haveReduction = r, true }
}

// WithSumDims sums over the given axes, then takes the mean over all remaining elements,
// exactly as the seed's `for i in sorted(dim, reverse=True): loss = loss.sum(i); loss.mean()`.
// Negative axes count from the end, as in PyTorch. With every axis listed the result is the
// total sum; with none it is the mean.
func WithSumDims(dims ...int) Option {
	return func(c *config) { c.dims, c.haveDims = append([]int(nil), dims...), true }
}

// WithTargetGrad makes the target differentiable: G.Grad(loss, target) then gives
// dL/dtarget = -dL/dpred (the seed's autograd does the same when bbox_targets requires grad).
// Without it the target is data, as in Faster R-CNN, where targets come from the assignment and
// never need a gradient: the op reports none, so the TapeMachine computes no extra tensor, and
// G.Grad(loss, target) fails with gorgonia's "Non Differentiable WRTs" error rather than giving a
// silent zero.
func WithTargetGrad() Option {
	return func(c *config) { c.targetGrad = true }
}

// WithoutTargetGrad is the default since targets became data by default; it remains so that
// existing calls compile, and it overrides an earlier WithTargetGrad.
//
// Deprecated: targets get no gradient unless WithTargetGrad is given.
func WithoutTargetGrad() Option {
	return func(c *config) { c.targetGrad = false }
}

// params are the validated, precomputed constants of one smooth L1 op.
//
//	f(x)   = quad*x^2       if |x| < beta,   |x| - offset   otherwise
//	f'(x)  = slope*x        if |x| < beta,   sign(x)        otherwise (0 at x = 0)
//	f''(x) = slope          if |x| < beta,   0              otherwise
//
// With sigma: beta = 1/sigma^2, quad = sigma^2/2, slope = sigma^2, offset = 0.5/sigma^2
// (the seed's arithmetic). With beta: quad = 0.5/beta, slope = 1/beta, offset = 0.5*beta.
type params struct {
	beta, quad, slope, offset float64
	// label is the user's parameter as given, for String and error messages.
	label string
}

func paramsFromSigma(sigma float64) (params, error) {
	if math.IsNaN(sigma) || math.IsInf(sigma, 0) || sigma <= 0 {
		return params{}, fmt.Errorf("op: sigma must be finite and > 0, got %v", sigma)
	}
	s2 := sigma * sigma
	if s2 == 0 || math.IsInf(s2, 0) || math.IsInf(1/s2, 0) {
		return params{}, fmt.Errorf("op: sigma = %v makes sigma^2 = %v, outside float64 range", sigma, s2)
	}
	return params{beta: 1 / s2, quad: s2 / 2, slope: s2, offset: 0.5 / s2, label: fmt.Sprintf("sigma=%v", sigma)}, nil
}

func paramsFromBeta(beta float64) (params, error) {
	if math.IsNaN(beta) || math.IsInf(beta, 0) || beta < 0 {
		return params{}, fmt.Errorf("op: beta must be finite and >= 0, got %v", beta)
	}
	if beta == 0 {
		// Plain L1. The threshold is the smallest denormal rather than 0 so that x = 0 (and only
		// x = 0) takes the "quadratic" branch, whose value quad*x^2 and slope*x are 0: f(0) = 0,
		// f'(0) = 0, f'(x) = sign(x) elsewhere.
		return params{beta: math.SmallestNonzeroFloat64, quad: 0, slope: 0, offset: 0, label: "beta=0"}, nil
	}
	if math.IsInf(1/beta, 0) {
		return params{}, fmt.Errorf("op: beta = %v is too small (1/beta overflows)", beta)
	}
	return params{beta: beta, quad: 0.5 / beta, slope: 1 / beta, offset: 0.5 * beta, label: fmt.Sprintf("beta=%v", beta)}, nil
}

// normaliseDims turns dims into sorted, non-negative, distinct axes of a rank-`rank` tensor.
func normaliseDims(dims []int, rank int, shape any) ([]int, error) {
	seen := make(map[int]bool, len(dims))
	out := make([]int, 0, len(dims))
	for _, d := range dims {
		a := d
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank {
			return nil, fmt.Errorf("op: dims %v: axis %d is out of range for pred of shape %v (rank %d)", dims, d, shape, rank)
		}
		if seen[a] {
			return nil, fmt.Errorf("op: dims %v: axis %d is repeated", dims, d)
		}
		seen[a] = true
		out = append(out, a)
	}
	// insertion sort: a handful of axes
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

func dimsString(dims []int) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(s, " ") + "]"
}
