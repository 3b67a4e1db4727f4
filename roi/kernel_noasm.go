//go:build !amd64 || !gc || purego

package roi

// Without the AVX2 kernel (other architectures, or the purego build tag) every band goes
// through the Go loop.

func asmKernels() bool { return false }

func poolBand32(colMax []float32, colAt []int32, plane []float32, width int, rows span, start, end int, spans, at []int32, vals []float32, spansOK bool) {
	poolBandGo(colMax, colAt, plane, width, rows, start, end, spans, at, vals)
}

func alignRows32(w *alignWorker[float32], src []float32, width int) bool { return false }

func alignScatter32(w *alignWorker[float32], dst []float32, width int) bool { return false }

func alignCols32(w *alignWorker[float32], dst []float32, cnt float32, outW int) bool { return false }

func alignShares32(w *alignWorker[float32], src []float32, cnt float32, outW int) bool {
	return false
}
