//go:build amd64 && !purego

package op

import "unsafe"

// kconst is the constant block the assembly kernels broadcast into registers; the field
// offsets are fixed in kernel_amd64.s.
type kconst struct {
	beta, quad, offset, slope, scale float64
	absMask, signMask                uint64
	one                              float64
}

func newKconst(p *params, scale float64) kconst {
	return kconst{beta: p.beta, quad: p.quad, offset: p.offset, slope: p.slope, scale: scale,
		absMask: ^uint64(0) >> 1, signMask: 1 << 63, one: 1}
}

//go:noescape
func sum4F64(pred, target, win, wout *float64, n int, c *kconst, lanes *[4]float64)

//go:noescape
func sum4F32(pred, target, win, wout *float32, n int, c *kconst, lanes *[4]float64)

//go:noescape
func grad4F64(pred, target, win, wout, up, dst *float64, n int, c *kconst)

//go:noescape
func grad4F32(pred, target, win, wout, up, dst *float32, n int, c *kconst)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv0() (eax uint32)

// hasAVX2 reports whether the CPU has AVX2 and the OS saves the YMM registers.
func hasAVX2() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const osxsave, avx = 1 << 27, 1 << 28
	if ecx1&osxsave == 0 || ecx1&avx == 0 {
		return false
	}
	if xgetbv0()&6 != 6 { // XMM and YMM state enabled by the OS
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}

// useAsm selects the AVX2 kernels; tests switch it off to compare with the Go loops.
var useAsm = hasAVX2()

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
