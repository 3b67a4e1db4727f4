//go:build amd64 && gc && !purego

package roi

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// poolBandF32 is poolBandGo[float32] in AVX2 (kernel_amd64.s), for a band of rows >= 1 rows
// and n >= 1 columns starting at plane (the band's first pixel, index base in its plane; rows
// are width elements apart). colMax and colAt are scratch of n+7 elements; spans holds bins
// pairs (first, end) of columns in [0, n]; it writes the bins' argmaxes into at[0:bins] and
// their values (Pool's output) into vals[0:bins]:
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
//		at[b], vals[b] = noPixel, 0
//		if first, end := spans[2*b], spans[2*b+1]; end > first {
//			at[b], vals[b] = binArgmax(colMax[first:end], colAt[first:end]), -math.MaxFloat32
//			if at[b] != noPixel {
//				vals[b] = plane[int(at[b])-base]
//			}
//		}
//	}
//
//go:noescape
func poolBandF32(plane *float32, width, rows, n, base int, colMax *float32, colAt *int32, spans *int32, bins int, at *int32, vals *float32)

// useAsm selects the AVX2 kernel; tests switch it off to compare with the Go loop. x/sys/cpu
// also checks that the OS saves the YMM registers (XGETBV).
var useAsm = cpu.X86.HasAVX2

// asmKernels reports whether the AVX2 kernel is compiled in and used on this CPU.
func asmKernels() bool { return useAsm }

// poolBand32 is poolBandGo[float32], through the AVX2 kernel when the CPU has it. spansOK says
// that the caller checked spans (spansWithin: every column in [0, end - start]), once for all
// the bands and channels of a roi.
func poolBand32(colMax []float32, colAt []int32, plane []float32, width int, rows span, start, end int, spans, at []int32, vals []float32, spansOK bool) {
	n := end - start
	// the bounds the kernel relies on, checked here (the Go loop's indexing would panic)
	base := rows.start*width + start
	if !useAsm || !spansOK || n <= 0 || rows.end <= rows.start || start < 0 || base < 0 ||
		(rows.end-1)*width+end > len(plane) || len(spans) < 2*len(at) || len(colMax) < n+7 ||
		len(colAt) < n+7 || len(at) == 0 || len(vals) < len(at) {
		poolBandGo(colMax, colAt, plane, width, rows, start, end, spans, at, vals)
		return
	}
	poolBandF32(&plane[base], width, rows.end-rows.start, n, base, unsafe.SliceData(colMax),
		unsafe.SliceData(colAt), unsafe.SliceData(spans), len(at), unsafe.SliceData(at), unsafe.SliceData(vals))
}

// alignRowsF32 is alignRowsGo[float32] in AVX2 (kernel_amd64.s) for the group of 8 bins whose
// table is tab (rowTable: n columns of 8 weights and 8 masks), on the nlines lines of the plane
// whose column lo is src (rows width elements apart), writing 8 sums per line into h, lines
// stride elements apart:
//
//	for r := 0; r < nlines; r++ {
//		for lane := 0; lane < 8; lane++ {
//			var sum float32
//			for x := 0; x < n; x++ {
//				if mask(tab[16*x+8+lane]) {
//					sum += float32(tab[16*x+lane] * src[int(lines[r])*width+x])
//				}
//			}
//			h[r*stride+lane] = sum
//		}
//	}
//
// which is alignRowsGo's sum: a bin's taps are its table columns, in ascending order.
//
//go:noescape
func alignRowsF32(src *float32, width int, lines *int32, nlines, n int, tab *float32, h *float32, stride int)

// alignRows32 writes the row sums of alignPlane (alignRowsGo) for the plane src through the
// AVX2 kernel, and reports false (writing nothing) when it cannot: no AVX2, or no table built
// for the worker's roi (rowTable.build checked that the table's lines and columns are in the
// plane; here the plane's own size, and the scratch's, are checked).
func alignRows32(w *alignWorker[float32], src []float32, width int) bool {
	t := &w.table
	stride := rowStride(len(w.xs.tapFirst) - 1)
	if !useAsm || !t.ok || len(src) < t.rowsEnd || t.lo+t.n > width ||
		len(w.rows) < len(w.ys.lines)*stride || t.groups*8 > stride || len(t.tab) < t.groups*t.n*16 {
		return false
	}
	for g := 0; g < t.groups; g++ {
		alignRowsF32(&src[t.lo], width, unsafe.SliceData(w.ys.lines), len(w.ys.lines), t.n,
			&t.tab[g*t.n*16], &w.rows[g*8], stride)
	}
	return true
}

// alignScatterF32 is alignScatterGo[float32] in AVX2 (kernel_amd64.s), for the nlines lines of
// the plane whose column slo is dst (rows width elements apart), over vecs vectors of 8
// columns, the shares of each line (outW bins, lines stride elements apart), and the
// scatter table tab (rowTable: per vector and bin, 8 weights and 8 masks):
//
//	for r := 0; r < nlines; r++ {
//		for x := 0; x < 8*vecs; x++ {
//			for pw := 0; pw < outW; pw++ {
//				if e := 16*((x/8)*outW+pw) + x%8; mask(tab[e+8]) {
//					dst[int(lines[r])*width+x] += float32(tab[e] * shares[r*stride+pw])
//				}
//			}
//		}
//	}
//
// which is alignScatterGo's order for every pixel: its bins in order.
//
//go:noescape
func alignScatterF32(dst *float32, width int, lines *int32, nlines, vecs, outW int, tab *float32, shares *float32, stride int)

// alignScatter32 adds the row scatter of alignScatterGo into the plane dst through the AVX2
// kernel, and reports false (adding nothing) when it cannot: no AVX2, or no scatter table for
// the worker's roi (rowTable.build checked its lines and columns against the plane's shape;
// here the plane's own size, and the scratch's, are checked).
func alignScatter32(w *alignWorker[float32], dst []float32, width int) bool {
	t := &w.table
	outW := len(w.xs.tapFirst) - 1
	stride := rowStride(outW)
	if !useAsm || !t.ok || !t.scatterOK || len(dst) < t.rowsEnd || t.slo < 0 || t.slo+8*t.vecs > width ||
		len(w.rows) < len(w.ys.lines)*stride || len(t.scatter) < t.vecs*outW*16 || t.vecs < 1 || outW < 1 {
		return false
	}
	alignScatterF32(&dst[t.slo], width, unsafe.SliceData(w.ys.lines), len(w.ys.lines), t.vecs, outW,
		unsafe.SliceData(t.scatter), unsafe.SliceData(w.rows), stride)
	return true
}

// alignColsF32 is alignPlane[float32] in AVX2 (kernel_amd64.s) for 4 <= outW <= 8: rows holds the
// row sums (8 floats per line), taps and tapFirst are the y axis' (ys.taps, ys.tapFirst, outH
// bins), and it writes rows 0 to outH-2 of the bins into dst (outW apart, each row's 8 lanes
// whole, the lanes past outW overwritten by the next row) and the last row's 8 lanes into last:
//
//	for ph := 0; ph < outH; ph++ {
//		var acc [8]float32
//		for _, t := range taps[tapFirst[ph]:tapFirst[ph+1]] {
//			for lane := range acc {
//				acc[lane] += float32(t.weight * rows[8*int(t.slot)+lane])
//			}
//		}
//		for lane := range acc {
//			acc[lane] /= cnt
//		}
//		copy(dst[ph*outW:], acc[:]) // last, for ph == outH-1
//	}
//
//go:noescape
func alignColsF32(dst *float32, outH, outW int, tapFirst *int32, taps *tap[float32], rows *float32, cnt float32, last *float32)

// alignSharesF32 is alignShares[float32] in AVX2 (kernel_amd64.s) for outW <= 8, adding into
// rows (8 floats per line, zero) from the upstream src (outH rows of outW):
//
//	for ph := 0; ph < outH; ph++ {
//		var share [8]float32 // 0 past outW
//		for pw := 0; pw < outW; pw++ {
//			share[pw] = src[ph*outW+pw] / cnt
//		}
//		for _, t := range taps[tapFirst[ph]:tapFirst[ph+1]] {
//			for lane := range share {
//				rows[8*int(t.slot)+lane] += float32(t.weight * share[lane])
//			}
//		}
//	}
//
//go:noescape
func alignSharesF32(src *float32, outH, outW int, tapFirst *int32, taps *tap[float32], rows *float32, cnt float32)

// yFits reports whether the y kernels can run for the worker's roi: AVX2, 4 to 8 bins per row
// (one vector, and a row's 8 lanes stored whole never pass the end of the bins: the row after
// it holds at least 4 of them), and the y taps' slots inside the row sums (rowTable.build).
func (w *alignWorker[T]) yFits(outH, outW int) bool {
	return useAsm && w.table.yOK && outW >= 4 && outW <= 8 && outH >= 1 &&
		len(w.ys.tapFirst) == outH+1 && len(w.rows) >= 8*len(w.ys.lines)
}

// alignCols32 is alignPlane[float32] through the AVX2 kernel, reporting false (writing nothing)
// when it cannot run.
func alignCols32(w *alignWorker[float32], dst []float32, cnt float32, outW int) bool {
	outH := len(w.ys.tapFirst) - 1
	if !w.yFits(outH, outW) || len(dst) != outH*outW {
		return false
	}
	var last [8]float32
	alignColsF32(unsafe.SliceData(dst), outH, outW, unsafe.SliceData(w.ys.tapFirst), unsafe.SliceData(w.ys.taps),
		unsafe.SliceData(w.rows), cnt, &last[0])
	copy(dst[(outH-1)*outW:], last[:outW])
	return true
}

// alignShares32 is alignShares[float32] through the AVX2 kernel (clearing the row sums first),
// reporting false (writing nothing) when it cannot run.
func alignShares32(w *alignWorker[float32], src []float32, cnt float32, outW int) bool {
	outH := len(w.ys.tapFirst) - 1
	if !w.yFits(outH, outW) || len(src) != outH*outW {
		return false
	}
	clear(w.rows[:8*len(w.ys.lines)])
	alignSharesF32(unsafe.SliceData(src), outH, outW, unsafe.SliceData(w.ys.tapFirst), unsafe.SliceData(w.ys.taps),
		unsafe.SliceData(w.rows), cnt)
	return true
}
