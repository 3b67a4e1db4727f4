package op

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	"gorgonia.org/tensor"
)

// TestPropertyGradcheck: 200 random configurations per dtype (rank 1-4, shapes of at most 12
// elements, sigma in [0.3, 4] or beta in {0} ∪ [0.05, 2], each weight on or off, reduction Mean,
// Sum, None or a random set of sum dims) pass the finite-difference check on both machines.
// The configuration is printed on failure; the seed makes every run the same.
func TestPropertyGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(2026))
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		for k := 0; k < 200; k++ {
			rank := 1 + rng.Intn(4)
			shape := make([]int, rank)
			n := 1
			for i := range shape {
				shape[i] = 1 + rng.Intn(3)
				if n*shape[i] > 12 {
					shape[i] = 1
				}
				n *= shape[i]
			}
			var opts []Option
			var beta float64
			var desc string
			switch rng.Intn(3) {
			case 0:
				sigma := 0.3 + rng.Float64()*3.7
				opts, beta, desc = append(opts, WithSigma(sigma)), 1/(sigma*sigma), fmt.Sprintf("sigma=%.3f", sigma)
			case 1:
				opts, beta, desc = append(opts, WithBeta(0)), 0, "beta=0"
			default:
				beta = 0.05 + rng.Float64()*1.95
				opts, desc = append(opts, WithBeta(beta)), fmt.Sprintf("beta=%.3f", beta)
			}
			none := false
			switch rng.Intn(4) {
			case 0:
				opts, desc = append(opts, WithReduction(Mean)), desc+" mean"
			case 1:
				opts, desc = append(opts, WithReduction(Sum)), desc+" sum"
			case 2:
				opts, desc, none = append(opts, WithReduction(None)), desc+" none", true
			default:
				var dims []int
				for ax := 0; ax < rank; ax++ {
					if rng.Intn(2) == 0 {
						dims = append(dims, ax)
					}
				}
				opts, desc = append(opts, WithSumDims(dims...)), desc+fmt.Sprintf(" dims=%v", dims)
			}
			withIn, withOut := rng.Intn(2) == 0, rng.Intn(2) == 0
			pred, target, inside := residualsAwayFromKinks(rng, n, beta, 0.05, withIn)
			outside := make([]float64, n)
			for i := range outside {
				outside[i] = rng.Float64()
				if !withOut {
					outside[i] = 1
				}
			}
			name := fmt.Sprintf("%v/%d/%s/in=%t/out=%t/shape%v", dt, k, desc, withIn, withOut, shape)
			inputs := []gradcheck.Input{
				{Name: "pred", Value: dense(dt, shape, pred), Wrt: true},
				{Name: "target", Value: dense(dt, shape, target), Wrt: true},
			}
			if withIn {
				inputs = append(inputs, gradcheck.Input{Name: "inside", Value: dense(dt, shape, inside)})
			}
			if withOut {
				inputs = append(inputs, gradcheck.Input{Name: "outside", Value: dense(dt, shape, outside)})
			}
			if none {
				up := make([]float64, n)
				for i := range up {
					up[i] = rng.NormFloat64()
				}
				inputs = append(inputs, gradcheck.Input{Name: "upstream", Value: dense(dt, shape, up)})
			}
			build := buildLossPartialWeights(opts, withIn, withOut, none)
			for _, m := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				if err := gradcheck.Graph(build, inputs, gradcheck.Options{Machine: m}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
	}
}
