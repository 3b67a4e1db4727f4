package roi

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/gradcheck"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gradRoIs are rois for a (2, C, 6, 7) map at spatial scale 0.5 (image 12x14): ordinary, partly
// outside, degenerate (zero and negative size) and sub-pixel.
var gradRoIs = []float64{
	0, 1.3, 2.1, 9.7, 10.2,
	1, -3.1, -2.2, 6.4, 5.3,
	0, 8.2, 6.6, 17.9, 15.1,
	1, 5.5, 5.5, 5.5, 5.5,
	0, 7.1, 9.3, 3.2, 2.4,
	1, 2.2, 3.3, 2.9, 3.8,
}

// spacedFeatures are a random permutation of n values 0.05 apart: no two pixels of a bin are
// within a finite-difference step of each other (Pool's argmax stays put), and Align is linear
// in the features anyway.
func spacedFeatures(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i, p := range rng.Perm(n) {
		x[i] = float64(p-n/2) * 0.05
	}
	return x
}

type opCase struct {
	name  string
	build func(f, r *G.Node) (*G.Node, error)
}

func gradOpCases(outH, outW int) []opCase {
	var cases []opCase
	for _, aligned := range []bool{false, true} {
		for _, ratio := range []int{-1, 2} {
			cases = append(cases, opCase{fmt.Sprintf("align/aligned=%t/ratio=%d", aligned, ratio), func(f, r *G.Node) (*G.Node, error) {
				return Align(f, r, outH, outW, WithSpatialScale(0.5), WithSamplingRatio(ratio), WithAligned(aligned))
			}})
		}
	}
	return append(cases, opCase{"pool", func(f, r *G.Node) (*G.Node, error) {
		return Pool(f, r, outH, outW, WithSpatialScale(0.5))
	}})
}

// weightedSum is Σ upstream ⊙ op(features, rois): its gradient with respect to the features is
// the op's backward pass with that upstream.
func weightedSum(op opCase) gradcheck.Build {
	return func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
		out, err := op.build(in[0], in[1])
		if err != nil {
			return nil, err
		}
		prod, err := G.HadamardProd(out, in[2])
		if err != nil {
			return nil, err
		}
		return G.Sum(prod)
	}
}

// TestGradcheck checks the features' gradient of Align (aligned or not, adaptive or fixed
// sampling) and Pool against central finite differences on both machines, float64 (tolerance
// 1e-6) and float32 (2e-3, step 1e-2).
func TestGradcheck(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	shape := []int{2, 2, 6, 7}
	for _, op := range gradOpCases(3, 2) {
		for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
			for _, machine := range []gradcheck.Machine{gradcheck.Tape, gradcheck.Lisp} {
				t.Run(fmt.Sprintf("%s/%v/%v", op.name, dt, machine), func(t *testing.T) {
					up := make([]float64, 6*2*3*2)
					for i := range up {
						up[i] = rng.NormFloat64()
					}
					inputs := []gradcheck.Input{
						{Name: "features", Value: dense(dt, shape, spacedFeatures(rng, 2*2*6*7)), Wrt: true},
						{Name: "rois", Value: dense(dt, []int{6, 5}, gradRoIs)},
						{Name: "upstream", Value: dense(dt, []int{6, 2, 3, 2}, up)},
					}
					if err := gradcheck.Graph(weightedSum(op), inputs, gradcheck.Options{Machine: machine}); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// TestHessianVector takes G.Grad twice, through the diff ops' SymDiff. The cost is bilinear,
// c = Σ op(f) ⊙ op(w) (two feature maps, one set of rois), so dc/df = op^T(op(w)) and
// s = <v, dc/df> has ds/dw = op^T(op(v)) through the second derivatives (A^T A v for Align,
// scatter_w(gather_f(v)) for Pool), checked against finite differences of s in w. (A cost
// like Σ op(f)² would also go through gorgonia's own second derivative of Square or
// HadamardProd(x, x), which v0.9.18 gets wrong: for out = 2x it gives 8x, not 8v.)
func TestHessianVector(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	shape := []int{2, 2, 6, 7}
	for _, op := range gradOpCases(3, 2) {
		t.Run(op.name, func(t *testing.T) {
			build := func(g *G.ExprGraph, in []*G.Node) (*G.Node, error) {
				f, w, rois, v := in[0], in[1], in[2], in[3]
				of, err := op.build(f, rois)
				if err != nil {
					return nil, err
				}
				ow, err := op.build(w, rois)
				if err != nil {
					return nil, err
				}
				grads, err := G.Grad(G.Must(G.Sum(G.Must(G.HadamardProd(of, ow)))), f)
				if err != nil {
					return nil, err
				}
				return G.Sum(G.Must(G.HadamardProd(grads[0], v)))
			}
			v := make([]float64, 2*2*6*7)
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			inputs := []gradcheck.Input{
				{Name: "f", Value: dense(tensor.Float64, shape, spacedFeatures(rng, len(v)))},
				{Name: "w", Value: dense(tensor.Float64, shape, spacedFeatures(rng, len(v))), Wrt: true},
				{Name: "rois", Value: dense(tensor.Float64, []int{6, 5}, gradRoIs)},
				{Name: "v", Value: dense(tensor.Float64, shape, v)},
			}
			if err := gradcheck.Graph(build, inputs, gradcheck.Options{Machine: gradcheck.Tape}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNoGradientForRoIs: rois are data (DiffWRT false), so G.Grad with respect to them is
// gorgonia's error, not a silent zero.
func TestNoGradientForRoIs(t *testing.T) {
	for _, op := range gradOpCases(2, 2) {
		t.Run(op.name, func(t *testing.T) {
			g := G.NewGraph()
			f := node(g, "features", dense(tensor.Float64, []int{2, 2, 6, 7}, make([]float64, 168)))
			r := node(g, "rois", dense(tensor.Float64, []int{6, 5}, gradRoIs))
			out, err := op.build(f, r)
			if err != nil {
				t.Fatal(err)
			}
			cost := G.Must(G.Sum(out))
			if _, err := G.Grad(cost, r); err == nil {
				t.Fatal("G.Grad with respect to rois: no error")
			} else {
				t.Logf("gorgonia says: %v", err)
			}
			if _, err := G.Grad(cost, f, r); err == nil {
				t.Fatal("G.Grad with respect to features and rois: no error")
			}
		})
	}
}
