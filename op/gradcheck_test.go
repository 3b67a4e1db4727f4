package op

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

var gradShapes = [][]int{{6}, {3, 4}, {2, 3, 2}, {2, 2, 1, 3}}

type lossParam struct {
	name string
	opt  Option
	beta float64
}

var lossParams = []lossParam{
	{"sigma0.5", WithSigma(0.5), 4},
	{"sigma1", WithSigma(1), 1},
	{"sigma3", WithSigma(3), 1.0 / 9},
	{"beta0", WithBeta(0), 0},
}

type reductionCase struct {
	name string
	opts func(rank int) []Option
}

var reductionCases = []reductionCase{
	{"mean", func(int) []Option { return []Option{WithReduction(Mean)} }},
	{"sum", func(int) []Option { return []Option{WithReduction(Sum)} }},
	{"none", func(int) []Option { return []Option{WithReduction(None)} }},
	{"dimsLast", func(r int) []Option { return []Option{WithSumDims(r - 1)} }},
	{"dimsAll", func(r int) []Option {
		d := make([]int, r)
		for i := range d {
			d[i] = i
		}
		return []Option{WithSumDims(d...)}
	}},
}

// buildLossPartialWeights is buildLoss for inputs pred, target[, inside][, outside][, upstream]:
// only the weights in use are inputs (the LispMachine rejects unused input nodes as extra roots).
func buildLossPartialWeights(opts []Option, withIn, withOut, none bool) gradcheck.Build {
	return func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		var wi, wo *G.Node
		k := 2
		if withIn {
			wi, k = in[k], k+1
		}
		if withOut {
			wo = in[k]
		}
		// WithTargetGrad: the gradient checks cover the target's gradient too
		l, err := SmoothL1(in[0], in[1], append(append([]Option{WithTargetGrad()}, opts...), WithWeights(wi, wo))...)
		if err != nil || !none {
			return l, err
		}
		prod, err := G.HadamardProd(l, in[len(in)-1])
		if err != nil {
			return nil, err
		}
		return G.Sum(prod)
	}
}

// buildLoss returns a gradcheck.Build for SmoothL1 with inputs pred, target[, inside, outside,
// upstream]. A None reduction is turned into a scalar with Σ upstream ⊙ loss.
func buildLoss(opts []Option, weights, none bool) gradcheck.Build {
	return buildLossPartialWeights(opts, weights, weights, none)
}

// TestGradcheck checks both gradients of every configuration against central finite differences:
// sigma 0.5/1/3 and beta 0, all reductions, weights on and off, rank 1..4, float64 (tolerance
// 1e-6) and float32 (2e-3, step 1e-2), TapeMachine and LispMachine.
func TestGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	count := 0
	for pi, lp := range lossParams {
		for ri, rc := range reductionCases {
			for _, weights := range []bool{false, true} {
				for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
					for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
						shape := gradShapes[(pi+ri+count)%len(gradShapes)]
						count++
						name := fmt.Sprintf("%s/%s/w=%t/%v/%v/rank%d", lp.name, rc.name, weights, dt, machine, len(shape))
						t.Run(name, func(t *testing.T) {
							n := tensor.Shape(shape).TotalSize()
							// margin 0.05 > the float32 step (1e-2) times the largest inside weight (2)
							pred, target, inside := residualsAwayFromKinks(rng, n, lp.beta, 0.05, weights)
							inputs := []gradcheck.Input{
								{Name: "pred", Value: dense(dt, shape, pred), Wrt: true},
								{Name: "target", Value: dense(dt, shape, target), Wrt: true},
							}
							if weights {
								outside := make([]float64, n)
								for i := range outside {
									outside[i] = rng.Float64()
								}
								inputs = append(inputs,
									gradcheck.Input{Name: "inside", Value: dense(dt, shape, inside)},
									gradcheck.Input{Name: "outside", Value: dense(dt, shape, outside)})
							}
							none := rc.name == "none"
							if none {
								up := make([]float64, n)
								for i := range up {
									up[i] = rng.NormFloat64()
								}
								inputs = append(inputs, gradcheck.Input{Name: "upstream", Value: dense(dt, shape, up)})
							}
							opts := append([]Option{lp.opt}, rc.opts(len(shape))...)
							if err := gradcheck.Graph(buildLoss(opts, weights, none), inputs, gradcheck.Options{Machine: machine}); err != nil {
								t.Fatal(err)
							}
						})
					}
				}
			}
		}
	}
}

// TestGradcheckDetectsWrongGradient proves the checker can fail: the op's own gradient passes,
// the same gradient with a 1% error at one index is reported at that index.
func TestGradcheckDetectsWrongGradient(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	pred, target, _ := residualsAwayFromKinks(rng, 8, 1.0/9, 0.05, false)
	inputs := []gradcheck.Input{
		{Name: "pred", Value: dense(tensor.Float64, []int{8}, pred), Wrt: true},
		{Name: "target", Value: dense(tensor.Float64, []int{8}, target)},
	}
	build := buildLoss([]Option{WithSigma(3), WithReduction(Sum)}, false, false)
	f := func(p []float64) float64 {
		v, err := gradcheck.Forward(build, []string{"pred", "target"}, []*tensor.Dense{dense(tensor.Float64, []int{8}, p), inputs[1].Value})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	right, err := gradcheck.Analytic(build, inputs, gradcheck.Tape)
	if err != nil {
		t.Fatal(err)
	}
	tol := gradcheck.Tolerance{Abs: 1e-6, Rel: 1e-6}
	if m := gradcheck.Slices(f, pred, right[0], 1e-6, tol); m != nil {
		t.Fatalf("right gradient rejected: %v", m)
	}
	wrong := append([]float64(nil), right[0]...)
	wrong[3] *= 1.01
	m := gradcheck.Slices(f, pred, wrong, 1e-6, tol)
	if m == nil || m.Index != 3 {
		t.Fatalf("a 1%% error at index 3 was not reported: %v", m)
	}
}
