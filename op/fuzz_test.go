package op

import (
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// refLoss and refGrad are the scalar float64 reference: the definition, one element at a time,
// written as plainly as possible (branches, no chunking, no selects).
func refF(x, beta float64) float64 {
	ax := math.Abs(x)
	if beta == 0 {
		return ax
	}
	if ax < beta || x != x {
		return 0.5 * x * x / beta
	}
	return ax - 0.5*beta
}

func refDF(x, beta float64) float64 {
	switch {
	case x != x:
		return x
	case beta > 0 && math.Abs(x) < beta:
		return x / beta
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// FuzzKernels checks the forward and backward kernels (through the op's Do) against the scalar
// reference for random sizes (crossing the parallel threshold), betas, weights, reductions and
// dtypes, and residual scales from 1e-30 to 1e30; NaN and Inf included via the special flag.
func FuzzKernels(f *testing.F) {
	f.Add(int64(1), uint32(7), 1.0, uint8(0), int8(0))
	f.Add(int64(2), uint32(100), 1.0/9, uint8(0xff), int8(3))
	f.Add(int64(3), uint32(70000), 0.0, uint8(0x5a), int8(-5))
	f.Add(int64(4), uint32(1), 4.0, uint8(0x21), int8(30))
	f.Fuzz(func(t *testing.T, seed int64, size uint32, beta float64, flags uint8, exp int8) {
		n := int(size%200_000) + 1
		e := int(exp) % 31
		rng := rand.New(rand.NewSource(seed))
		dt := tensor.Float64
		if flags&1 != 0 {
			dt = tensor.Float32
		}
		withIn, withOut := flags&2 != 0, flags&4 != 0
		red := []Reduction{Mean, Sum, None}[int(flags>>3)%3]
		special := flags&0x40 != 0
		mkData := func(s float64) []float64 {
			x := make([]float64, n)
			for i := range x {
				x[i] = rng.NormFloat64() * s
				if special && rng.Intn(50) == 0 {
					x[i] = []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0}[rng.Intn(4)]
				}
			}
			return x
		}
		scale := math.Pow(10, float64(e))
		pred, target := mkData(scale), mkData(scale)
		win, wout := make([]float64, n), make([]float64, n)
		for i := range win {
			win[i], wout[i] = float64(rng.Intn(3))/2, rng.Float64()
		}
		g := G.NewGraph()
		p, q := node(g, "p", dense(dt, []int{n}, pred)), node(g, "q", dense(dt, []int{n}, target))
		var inN, outN *G.Node
		if withIn {
			inN = node(g, "in", dense(dt, []int{n}, win))
		}
		if withOut {
			outN = node(g, "out", dense(dt, []int{n}, wout))
		}
		l, err := SmoothL1(p, q, WithBeta(beta), WithWeights(inN, outN), WithReduction(red))
		if err != nil {
			if beta >= 0 && !math.IsInf(beta, 0) && !math.IsNaN(beta) && !math.IsInf(1/beta, 0) {
				t.Fatalf("valid beta %v rejected: %v", beta, err)
			}
			return
		}
		o := l.Op().(smoothL1Op)
		vals := []G.Value{p.Value(), q.Value()}
		if withIn {
			vals = append(vals, inN.Value())
		}
		if withOut {
			vals = append(vals, outN.Value())
		}
		out, err := o.Do(vals...)
		if err != nil {
			t.Fatal(err)
		}
		var up G.Value = G.NewF64(1)
		if dt == tensor.Float32 {
			up = G.NewF32(1)
		}
		upv := make([]float64, n)
		for i := range upv {
			upv[i] = 1
		}
		if red == None {
			for i := range upv {
				upv[i] = rng.NormFloat64()
			}
			up = dense(dt, []int{n}, upv)
		}
		grad, err := smoothL1DiffOp{o}.Do(append(vals, out, up)...)
		if err != nil {
			t.Fatal(err)
		}
		// the reference on the values the op saw (float32-rounded for float32)
		rp, rq := float64s(p.Value()), float64s(q.Value())
		ri, ro := win, wout
		if withIn {
			ri = float64s(inN.Value())
		} else {
			ri = upv[:0]
		}
		if withOut {
			ro = float64s(outN.Value())
		} else {
			ro = upv[:0]
		}
		w := func(s []float64, i int) float64 {
			if len(s) == 0 {
				return 1
			}
			return s[i]
		}
		norm := 1.0
		if red == Mean {
			norm = 1 / float64(n)
		}
		sum, abs := 0.0, 0.0
		gotOut, gotGrad := float64s(out), float64s(grad)
		tolF, tolAbs := 1e-12, 1e-300
		round := func(v float64) float64 { return v }
		if dt == tensor.Float32 {
			// float32 results: the reference rounded to float32; below the smallest denormal
			// (1.4e-45) values flush to 0
			tolF, tolAbs = 1e-6, 1e-45
			round = func(v float64) float64 { return float64(float32(v)) }
		}
		for i := 0; i < n; i++ {
			x := w(ri, i) * (rp[i] - rq[i])
			term := w(ro, i) * refF(x, beta)
			sum += term
			abs += math.Abs(term)
			if red == None && !closeTo(gotOut[i], round(term), tolAbs, tolF) {
				t.Fatalf("loss[%d] = %v, reference %v (x = %v, beta %v)", i, gotOut[i], term, x, beta)
			}
			gi := upv[i] * norm * w(ro, i) * w(ri, i) * refDF(x, beta)
			if !closeTo(gotGrad[i], round(gi), tolAbs, tolF) {
				t.Fatalf("grad[%d] = %v, reference %v (x = %v, beta %v)", i, gotGrad[i], gi, x, beta)
			}
		}
		if red != None {
			want, got := round(sum*norm), gotOut[0]
			if !closeTo(got, want, tolAbs+2*tolF*abs*norm, 0) {
				t.Fatalf("%v = %v, reference %v (Σ|terms| %v)", red, got, want, abs*norm)
			}
		}
	})
}
