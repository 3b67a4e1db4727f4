//go:build amd64 && gc && !purego

package roi

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// poolBandF32 is poolBandGo[float32] in AVX2 (kernel_amd64.s), for a band of rows >= 1 rows
// and n >= 1 columns starting at plane (the band's first pixel, index base in its plane; rows
// are width elements apart). colMax and colAt are scratch of n+7 elements; spans holds bins
// pairs (first, end) of columns in [0, n]; it writes the bins' argmaxes into at[0:bins]:
//
//	for w := 0; w < n; w++ {
//		colMax[w], colAt[w] = -math.MaxFloat32, noPixel
//		for h := 0; h < rows; h++ {
//			if v := plane[h*width+w]; v > colMax[w] {
//				colMax[w], colAt[w] = v, int32(base+h*width+w)
//			}
//		}
//	}
//	for b := 0; b < bins; b++ {
//		at[b] = noPixel
//		if first, end := spans[2*b], spans[2*b+1]; end > first {
//			at[b] = binArgmax(colMax[first:end], colAt[first:end])
//		}
//	}
//
//go:noescape
func poolBandF32(plane *float32, width, rows, n, base int, colMax *float32, colAt *int32, spans *int32, bins int, at *int32)

// useAsm selects the AVX2 kernel; tests switch it off to compare with the Go loop. x/sys/cpu
// also checks that the OS saves the YMM registers (XGETBV).
var useAsm = cpu.X86.HasAVX2

// asmKernels reports whether the AVX2 kernel is compiled in and used on this CPU.
func asmKernels() bool { return useAsm }

// poolBand32 is poolBandGo[float32], through the AVX2 kernel when the CPU has it. spansOK says
// that the caller checked spans (spansWithin: every column in [0, end - start]), once for all
// the bands and channels of a roi.
func poolBand32(colMax []float32, colAt []int32, plane []float32, width int, rows span, start, end int, spans, at []int32, spansOK bool) {
	n := end - start
	// the bounds the kernel relies on, checked here (the Go loop's indexing would panic)
	base := rows.start*width + start
	if !useAsm || !spansOK || n <= 0 || rows.end <= rows.start || start < 0 || base < 0 ||
		(rows.end-1)*width+end > len(plane) || len(spans) < 2*len(at) || len(colMax) < n+7 ||
		len(colAt) < n+7 || len(at) == 0 {
		poolBandGo(colMax, colAt, plane, width, rows, start, end, spans, at)
		return
	}
	poolBandF32(&plane[base], width, rows.end-rows.start, n, base, unsafe.SliceData(colMax),
		unsafe.SliceData(colAt), unsafe.SliceData(spans), len(at), unsafe.SliceData(at))
}
