package op

import (
	"math"
	"math/rand"
	"testing"
)

// TestAsmKernelsBitIdentical: the AVX2 kernels (kernel_amd64.s) must give the same bits as the
// Go loops they replace, for both dtypes, with and without weights and upstream gradient, on
// lengths around the vector width and the chunk size, and on residuals that hit every branch:
// both zones, the threshold itself, ±0, denormals, 1e300, ±Inf and NaN. Expected values are the
// Go loops' own results (sumLossGo, gradPredGo); NaN matches NaN whatever its payload.
func TestAsmKernelsBitIdentical(t *testing.T) {
	if !asmKernels() {
		t.Skip("no AVX2 kernels on this build or CPU: the Go loops are the only path")
	}
	testAsmKernels[float64](t)
	testAsmKernels[float32](t)
}

func testAsmKernels[T float](t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	var ps []params
	for _, sigma := range []float64{0.5, 1, 3} {
		p, _ := paramsFromSigma(sigma)
		ps = append(ps, p)
	}
	for _, beta := range []float64{0, 1.0 / 9, 1} {
		p, _ := paramsFromBeta(beta)
		ps = append(ps, p)
	}
	special := []float64{0, math.Copysign(0, -1), 5e-324, -5e-324, 1e-310, 1.0 / 9, -1.0 / 9, 1, -1, 4, -4,
		1e300, -1e300, math.Inf(1), math.Inf(-1), math.NaN()}
	draw := func() T {
		if rng.Intn(6) == 0 {
			return T(special[rng.Intn(len(special))])
		}
		return T(rng.NormFloat64() * math.Pow(10, float64(rng.Intn(5)-2)))
	}
	lengths := []int{0, 1, 3, 4, 5, 7, 8, 9, 31, 64, 67, chunkSize - 1, chunkSize}
	for trial := 0; trial < 300; trial++ {
		n := lengths[trial%len(lengths)]
		p := &ps[trial%len(ps)]
		mk := func() []T {
			s := make([]T, n)
			for i := range s {
				s[i] = draw()
			}
			return s
		}
		pred, target, win, wout, g := mk(), mk(), mk(), mk(), mk()
		if trial%3 == 0 { // absent weights are read as ones
			win, wout = onesOf[T](n), onesOf[T](n)
		}
		if trial%2 == 0 {
			g = nil
		}
		scale := []float64{1, 1.0 / 256, 3e-5}[trial%3]

		var lanes [4]float64
		done := sumLanes(p, pred, target, win, wout, &lanes)
		if done != n&^3 {
			t.Fatalf("sumLanes did %d of %d elements, want %d", done, n, n&^3)
		}
		got := sumLossGo(p, pred[done:], target[done:], win[done:], wout[done:], lanes)
		want := sumLossGo(p, pred, target, win, wout, [4]float64{})
		if !sameBits(got, want) {
			t.Fatalf("%T n=%d beta=%v: sum: asm %v (%#x), Go %v (%#x)", pred, n, p.beta, got, math.Float64bits(got), want, math.Float64bits(want))
		}

		gotG, wantG := make([]T, n), make([]T, n)
		up := g
		if up == nil {
			up = onesOf[T](n)
		}
		done = gradLanes(p, pred, target, win, wout, up, gotG, scale)
		gradPredGo(p, pred[done:], target[done:], win[done:], wout[done:], up[done:], gotG[done:], scale)
		gradPredGo(p, pred, target, win, wout, up, wantG, scale)
		checkSaveKernels(t, p, pred, target, win, wout, scale)
		for i := range gotG {
			if !sameBits(float64(gotG[i]), float64(wantG[i])) {
				t.Fatalf("%T n=%d beta=%v scale=%v upstream=%v: grad[%d] (x from pred %v target %v win %v wout %v): asm %v, Go %v",
					pred, n, p.beta, scale, g != nil, i, pred[i], target[i], win[i], wout[i], gotG[i], wantG[i])
			}
		}
	}
}

// checkSaveKernels: the fused forward (sum and saved factor) of the asm path (lanes, then the Go
// loop on the tail) equals the Go loop alone, bit for bit.
func checkSaveKernels[T float](t *testing.T, p *params, pred, target, win, wout []T, norm float64) {
	t.Helper()
	n := len(pred)
	gotF, wantF := make([]T, n), make([]T, n)
	var lanes [4]float64
	done := sumSaveLanes(p, pred, target, win, wout, gotF, norm, &lanes)
	if asmKernels() && done != n&^3 {
		t.Fatalf("sumSaveLanes did %d of %d elements, want %d", done, n, n&^3)
	}
	got := sumLossSaveGo(p, pred[done:], target[done:], win[done:], wout[done:], gotF[done:], norm, lanes)
	want := sumLossSaveGo(p, pred, target, win, wout, wantF, norm, [4]float64{})
	if !sameBits(got, want) {
		t.Fatalf("%T n=%d beta=%v: fused sum: asm %v, Go %v", pred, n, p.beta, got, want)
	}
	for i := range gotF {
		if !sameBits(float64(gotF[i]), float64(wantF[i])) {
			t.Fatalf("%T n=%d beta=%v norm=%v: factor[%d]: asm %v, Go %v", pred, n, p.beta, norm, i, gotF[i], wantF[i])
		}
	}
}

func sameBits(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

// TestAsmKernelsRefuseShortSlices: the assembly reads n elements of every slice, so the wrappers
// hand a slice shorter than the output to the bounds-checked Go loop instead (0 done).
func TestAsmKernelsRefuseShortSlices(t *testing.T) {
	if !asmKernels() {
		t.Skip("no AVX2 kernels on this build or CPU")
	}
	p, _ := paramsFromSigma(3)
	long, short := make([]float64, 8), make([]float64, 4)
	var lanes [4]float64
	if done := sumLanes(&p, long, short, long, long, &lanes); done != 0 {
		t.Errorf("sumLanes with a 4-element target for 8 predictions did %d elements, want 0", done)
	}
	if done := gradLanes(&p, long, long, long, long, short, long, 1); done != 0 {
		t.Errorf("gradLanes with a 4-element upstream for 8 outputs did %d elements, want 0", done)
	}
	if done := gradLanes(&p, long, long, long, long, long, long, 1); done != 8 {
		t.Errorf("gradLanes with full slices did %d elements, want 8", done)
	}
}

// TestSaveTwinMatches: the fused forward's Go loop (sumLossSaveGo) gives the bits of the two loops
// it fuses: its sum is sumLossGo's and its factor is gradPredGo's with scale = norm and upstream
// 1, so the saved factor and its recomputation agree (on every build; the asm is checked against
// this loop in TestAsmKernelsBitIdentical). Residuals hit every branch and special value.
func TestSaveTwinMatches(t *testing.T) {
	testSaveTwin[float64](t)
	testSaveTwin[float32](t)
}

func testSaveTwin[T float](t *testing.T) {
	rng := rand.New(rand.NewSource(12))
	special := []float64{0, math.Copysign(0, -1), 5e-324, 1.0 / 9, -1.0 / 9, 1, -4, 1e300, math.Inf(1), math.Inf(-1), math.NaN()}
	for trial := 0; trial < 200; trial++ {
		n := []int{0, 1, 3, 4, 7, 64, 1001}[trial%7]
		var p params
		if trial%2 == 0 {
			p, _ = paramsFromSigma([]float64{0.5, 1, 3}[trial%3])
		} else {
			p, _ = paramsFromBeta([]float64{0, 1.0 / 9, 1}[trial%3])
		}
		mk := func() []T {
			s := make([]T, n)
			for i := range s {
				if rng.Intn(5) == 0 {
					s[i] = T(special[rng.Intn(len(special))])
				} else {
					s[i] = T(rng.NormFloat64())
				}
			}
			return s
		}
		pred, target, win, wout := mk(), mk(), mk(), mk()
		norm := []float64{1, 1.0 / 256, 3e-5}[trial%3]
		factor := make([]T, n)
		sum := sumLossSaveGo(&p, pred, target, win, wout, factor, norm, [4]float64{})
		if want := sumLossGo(&p, pred, target, win, wout, [4]float64{}); !sameBits(sum, want) {
			t.Fatalf("%T n=%d: fused sum %v, sumLossGo %v", pred, n, sum, want)
		}
		grad := make([]T, n)
		gradPredGo(&p, pred, target, win, wout, onesOf[T](n), grad, norm)
		for i := range grad {
			if !sameBits(float64(factor[i]), float64(grad[i])) {
				t.Fatalf("%T n=%d: factor[%d] %v, gradPredGo %v", pred, n, i, factor[i], grad[i])
			}
		}
	}
}

// TestAsmGuardVectors: the kernels write only inside their output slice. Each output is the
// middle of a larger slice whose guard elements hold a NaN with a marked payload; after every
// call the guards are unchanged (gonum's internal/asm guard-vector check).
func TestAsmGuardVectors(t *testing.T) {
	if !asmKernels() {
		t.Skip("no AVX2 kernels on this build or CPU: nothing to guard")
	}
	testGuards[float64](t)
	testGuards[float32](t)
}

func testGuards[T float](t *testing.T) {
	const guard = 8
	marker := T(math.Float64frombits(0x7ff8dead0000beef))
	p, _ := paramsFromSigma(3)
	rng := rand.New(rand.NewSource(13))
	for _, n := range []int{4, 8, 12, 64, 68, 1000} {
		in := func() []T {
			s := make([]T, n)
			for i := range s {
				s[i] = T(rng.NormFloat64())
			}
			return s
		}
		pred, target, win, wout, up := in(), in(), in(), in(), in()
		for _, kernel := range []string{"grad", "save"} {
			full := make([]T, n+2*guard)
			for i := range full {
				full[i] = marker
			}
			dst := full[guard : guard+n : guard+n]
			var lanes [4]float64
			switch kernel {
			case "grad":
				gradLanes(&p, pred, target, win, wout, up, dst, 0.5)
			case "save":
				sumSaveLanes(&p, pred, target, win, wout, dst, 0.5, &lanes)
			}
			for i := 0; i < guard; i++ {
				for _, v := range []T{full[i], full[len(full)-1-i]} {
					if math.Float64bits(float64(v)) != math.Float64bits(float64(marker)) {
						t.Fatalf("%s kernel, %T n=%d: guard element %d overwritten with %v", kernel, dst, n, i, v)
					}
				}
			}
		}
	}
}
