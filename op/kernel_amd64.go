//go:build amd64 && gc && !purego

package op

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// kconst is the constant block the assembly kernels broadcast into registers. The assembly reads
// its fields at fixed offsets (kernel_amd64.s); TestKconstOffsets pins them.
type kconst struct {
	beta, quad, offset, slope, scale float64
	absMask, signMask                uint64
	one                              float64
}

func newKconst(p *params, scale float64) kconst {
	return kconst{beta: p.beta, quad: p.quad, offset: p.offset, slope: p.slope, scale: scale,
		absMask: ^uint64(0) >> 1, signMask: 1 << 63, one: 1}
}

// The stubs below are AVX2 versions of Go loops; each must give the same bits as the loop its
// comment names, for every input (TestAsmKernelsBitIdentical). n is a multiple of 4 and no slice
// is shorter than n (the Go wrappers check). Lane k of lanes accumulates elements k, k+4, ... as
// accumulator s_k of the Go loop does.

// sum4F64 is sumLossGo over n float64 elements, adding into lanes:
//
//	for i := 0; i < n; i++ {
//		x := win[i] * (pred[i] - target[i])
//		lanes[i%4] += float64(wout[i] * fAt(x, c.beta, c.quad, c.offset))
//	}
//
//go:noescape
func sum4F64(pred, target, win, wout *float64, n int, c *kconst, lanes *[4]float64)

// sum4F32 is sum4F64 on float32 inputs, each converted to float64 first (sumLossGo[float32]).
//
//go:noescape
func sum4F32(pred, target, win, wout *float32, n int, c *kconst, lanes *[4]float64)

// sumSave4F64 is sum4F64 that also writes the factor of sumLossSaveGo (c.scale holds norm):
//
//	for i := 0; i < n; i++ {
//		x := win[i] * (pred[i] - target[i])
//		lanes[i%4] += float64(wout[i] * fAt(x, c.beta, c.quad, c.offset))
//		dst[i] = c.scale * wout[i] * win[i] * dfAt(x, c.beta, c.slope)
//	}
//
//go:noescape
func sumSave4F64(pred, target, win, wout, dst *float64, n int, c *kconst, lanes *[4]float64)

// sumSave4F32 is sumSave4F64 on float32 inputs (sumLossSaveGo[float32]); dst[i] is rounded to
// float32 once, at the end.
//
//go:noescape
func sumSave4F32(pred, target, win, wout, dst *float32, n int, c *kconst, lanes *[4]float64)

// grad4F64 is gradPredGo over n float64 elements:
//
//	for i := 0; i < n; i++ {
//		x := win[i] * (pred[i] - target[i])
//		dst[i] = c.scale * up[i] * wout[i] * win[i] * dfAt(x, c.beta, c.slope)
//	}
//
//go:noescape
func grad4F64(pred, target, win, wout, up, dst *float64, n int, c *kconst)

// grad4F32 is grad4F64 on float32 inputs (gradPredGo[float32]); dst[i] is rounded once.
//
//go:noescape
func grad4F32(pred, target, win, wout, up, dst *float32, n int, c *kconst)

// useAsm selects the AVX2 kernels; tests switch it off to compare with the Go loops. x/sys/cpu
// also checks that the OS saves the YMM registers (XGETBV).
var useAsm = cpu.X86.HasAVX2

// asmKernels reports whether the AVX2 kernels are compiled in and used on this CPU.
func asmKernels() bool { return useAsm }

func ptr[T float](s []T) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(s)) }

// sumLanes adds the loss of the first len(pred)&^3 elements into lanes, lane k taking elements
// k, k+4, ..., and returns how many elements it did (0 without AVX2).
func sumLanes[T float](p *params, pred, target, win, wout []T, lanes *[4]float64) int {
	n := len(pred) &^ 3
	// the assembly reads n elements of each slice: a short one goes to the Go loop, whose
	// indexing is bounds-checked
	if !useAsm || n == 0 || len(target) < n || len(win) < n || len(wout) < n {
		return 0
	}
	c := newKconst(p, 1)
	var z T
	if unsafe.Sizeof(z) == 4 {
		sum4F32((*float32)(ptr(pred)), (*float32)(ptr(target)), (*float32)(ptr(win)), (*float32)(ptr(wout)), n, &c, lanes)
	} else {
		sum4F64((*float64)(ptr(pred)), (*float64)(ptr(target)), (*float64)(ptr(win)), (*float64)(ptr(wout)), n, &c, lanes)
	}
	return n
}

// sumSaveLanes is sumLanes that also writes the factor (sumLossSave) of the same elements.
func sumSaveLanes[T float](p *params, pred, target, win, wout, dst []T, norm float64, lanes *[4]float64) int {
	n := len(pred) &^ 3
	if !useAsm || n == 0 || len(target) < n || len(win) < n || len(wout) < n || len(dst) < n {
		return 0
	}
	c := newKconst(p, norm)
	var z T
	if unsafe.Sizeof(z) == 4 {
		sumSave4F32((*float32)(ptr(pred)), (*float32)(ptr(target)), (*float32)(ptr(win)), (*float32)(ptr(wout)),
			(*float32)(ptr(dst)), n, &c, lanes)
	} else {
		sumSave4F64((*float64)(ptr(pred)), (*float64)(ptr(target)), (*float64)(ptr(win)), (*float64)(ptr(wout)),
			(*float64)(ptr(dst)), n, &c, lanes)
	}
	return n
}

// gradLanes writes the gradient of the first len(dst)&^3 elements (see gradPred; up holds the
// upstream gradient, ones for a scalar reduction) and returns how many it did (0 without AVX2).
func gradLanes[T float](p *params, pred, target, win, wout, up, dst []T, scale float64) int {
	n := len(dst) &^ 3
	if !useAsm || n == 0 || len(pred) < n || len(target) < n || len(win) < n || len(wout) < n || len(up) < n {
		return 0
	}
	c := newKconst(p, scale)
	var z T
	if unsafe.Sizeof(z) == 4 {
		grad4F32((*float32)(ptr(pred)), (*float32)(ptr(target)), (*float32)(ptr(win)), (*float32)(ptr(wout)),
			(*float32)(ptr(up)), (*float32)(ptr(dst)), n, &c)
	} else {
		grad4F64((*float64)(ptr(pred)), (*float64)(ptr(target)), (*float64)(ptr(win)), (*float64)(ptr(wout)),
			(*float64)(ptr(up)), (*float64)(ptr(dst)), n, &c)
	}
	return n
}
