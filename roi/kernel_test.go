package roi

import (
	"math"
	"math/rand"
	"testing"
	"unsafe"
)

// bandSpecials are the values that decide a band's argmaxes differently from an ordinary
// maximum: NaN (never kept), ±0 (equal: the first is kept), ±Inf, torchvision's start -FLT_MAX
// (never kept: not > itself) and its neighbours, and repeats (ties).
var bandSpecials = []float32{float32(math.NaN()), 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)),
	float32(math.Inf(-1)), -math.MaxFloat32, math.MaxFloat32, math.Nextafter32(-math.MaxFloat32, 0),
	1, -1, 1e-45, -1e-45}

// checkBand runs poolBand32 (the AVX2 kernel where the CPU has it) and poolBandGo on one band
// and fails unless the argmaxes, the bins' values and the columns' maxima (as bits) and their
// indices agree, and neither writes past what it may: colMax and colAt past n+7, at and vals
// past bins (guard values).
func checkBand(t *testing.T, rng *rand.Rand, height, width, rowStart, rows, start, n, bins int, special float64) {
	t.Helper()
	plane := make([]float32, height*width)
	for i := range plane {
		switch {
		case rng.Float64() < special:
			plane[i] = bandSpecials[rng.Intn(len(bandSpecials))]
		case rng.Intn(4) == 0:
			plane[i] = float32(rng.Intn(3)) // ties
		default:
			plane[i] = float32(rng.NormFloat64())
		}
	}
	spans := make([]int32, 2*bins)
	for b := 0; b < bins; b++ {
		first := rng.Intn(n + 1)
		last := first + rng.Intn(n+1-first)
		if rng.Intn(8) == 0 {
			last = first // an empty bin
		}
		spans[2*b], spans[2*b+1] = int32(first), int32(last)
	}
	const guard = 8
	mk := func() (colMax []float32, colAt, at []int32, vals []float32) {
		colMax, colAt, at, vals = make([]float32, n+7+guard), make([]int32, n+7+guard), make([]int32, bins+guard), make([]float32, bins+guard)
		for i := range colMax {
			colMax[i], colAt[i] = 12345, -12345
		}
		for i := range at {
			at[i], vals[i] = -12345, 12345
		}
		return colMax, colAt, at, vals
	}
	rs := span{rowStart, rowStart + rows}
	gotMax, gotAt, got, gotVals := mk()
	poolBand32(gotMax[:n+7], gotAt[:n+7], plane, width, rs, start, start+n, spans, got[:bins], gotVals[:bins], true)
	wantMax, wantAt, want, wantVals := mk()
	poolBandGo(wantMax[:n+7], wantAt[:n+7], plane, width, rs, start, start+n, spans, want[:bins], wantVals[:bins])
	for b := range got {
		if got[b] != want[b] || math.Float32bits(gotVals[b]) != math.Float32bits(wantVals[b]) {
			t.Fatalf("width %d rows %v columns [%d, %d) bin %d %v: argmax %d value %v, Go loop %d %v", width, rs, start, start+n, b, spans[2*b:2*b+2], got[b], gotVals[b], want[b], wantVals[b])
		}
	}
	for w := 0; w < n && rows > 0; w++ {
		if math.Float32bits(gotMax[w]) != math.Float32bits(wantMax[w]) || gotAt[w] != wantAt[w] {
			t.Fatalf("width %d rows %v columns [%d, %d) column %d: max %v at %d, Go loop %v at %d", width, rs, start, start+n, w, gotMax[w], gotAt[w], wantMax[w], wantAt[w])
		}
	}
	for i := n + 7; i < len(gotMax); i++ {
		if gotMax[i] != 12345 || gotAt[i] != -12345 {
			t.Fatalf("columns [%d, %d): the kernel wrote colMax/colAt[%d], past n+7", start, start+n, i)
		}
	}
	for i := bins; i < len(got); i++ {
		if got[i] != -12345 || gotVals[i] != 12345 {
			t.Fatalf("the kernel wrote at[%d] or vals[%d], past %d bins", i, i, bins)
		}
	}
}

// TestPoolBandAsm: the AVX2 band kernel gives the Go loop's argmaxes and column maxima, bit for
// bit, on bands of 1 to 40 columns (around the vector width of 8, odd lengths), 1 to 5 rows,
// bins of 0 to 40 columns (past one and two vectors), planes full of specials and ties, and
// bands that end at the plane's last pixel. Expected values are the Go loop's (poolBandGo),
// which the fuzz test and the torchvision fixtures check in turn.
func TestPoolBandAsm(t *testing.T) {
	if !asmKernels() {
		t.Skip("no AVX2 kernel on this build or CPU: the Go loop is the only path")
	}
	rng := rand.New(rand.NewSource(14))
	for trial := 0; trial < 3000; trial++ {
		n := 1 + trial%40
		width := n + rng.Intn(5)
		height := 1 + rng.Intn(6)
		rows := 1 + rng.Intn(height)
		rowStart := rng.Intn(height - rows + 1)
		start := rng.Intn(width - n + 1)
		if trial%5 == 0 { // the band ends at the plane's last pixel
			rowStart, start = height-rows, width-n
		}
		special := []float64{0, 0.1, 0.5, 1}[trial%4]
		checkBand(t, rng, height, width, rowStart, rows, start, n, 1+rng.Intn(9), special)
	}
}

// FuzzPoolBand is TestPoolBandAsm on fuzzer-chosen shapes and seeds.
func FuzzPoolBand(f *testing.F) {
	f.Add(int64(1), uint8(9), uint8(3), uint8(7), uint8(2))
	f.Add(int64(2), uint8(1), uint8(1), uint8(1), uint8(0))
	f.Add(int64(3), uint8(40), uint8(5), uint8(16), uint8(3))
	f.Fuzz(func(t *testing.T, seed int64, n, rows, bins, special uint8) {
		if !asmKernels() {
			t.Skip("no AVX2 kernel on this build or CPU")
		}
		rng := rand.New(rand.NewSource(seed))
		nn, rr := 1+int(n)%64, 1+int(rows)%8
		width, height := nn+rng.Intn(4), rr+rng.Intn(3)
		checkBand(t, rng, height, width, rng.Intn(height-rr+1), rr, rng.Intn(width-nn+1), nn, 1+int(bins)%16, float64(special%5)/4)
	})
}

// TestAlignAsm: the AVX2 kernels of Align give the Go loops' bits (a NaN matches any NaN: when
// two NaNs meet in an addition x86 keeps the first operand's, and which one the Go compiler
// puts first changes with the build, -race for one): the
// row sums (alignRows32 against alignRowsGo) and the row scatter (alignScatter32 against
// alignScatterGo, into a gradient plane that already holds values, -0 among them, which the
// scatter must leave as they are outside its taps). Rois of every size around the map (partly
// outside, degenerate, one pixel), 1 to 20 bins per row (one to three groups of 8), sampling
// ratios -1 to 3, aligned or not, planes 1 to 40 pixels wide (narrower and wider than a
// vector), with NaN, ±Inf, ±0, denormals and large values. Expected values are the Go loops',
// which the fixtures and the fuzz test check against torchvision and a scalar reference. The y
// steps (alignCols32 against alignPlane, alignShares32 against alignShares) run for 4 to 8
// bins per row; the bins must not be written past their end.
func TestAlignAsm(t *testing.T) {
	if !asmKernels() {
		t.Skip("no AVX2 kernel on this build or CPU: the Go loop is the only path")
	}
	rng := rand.New(rand.NewSource(15))
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0,
		float32(math.Copysign(0, -1)), 1e-45, -1e-40, 3e38, -3e38}
	fill := func(s []float32, special bool) {
		for i := range s {
			if special && rng.Intn(5) == 0 {
				s[i] = specials[rng.Intn(len(specials))]
			} else {
				s[i] = float32(rng.NormFloat64())
			}
		}
	}
	same := func(what string, r []float32, got, want []float32, skip func(i int) bool) {
		t.Helper()
		for i, v := range want {
			if !skip(i) && math.Float32bits(got[i]) != math.Float32bits(v) && !(v != v && got[i] != got[i]) {
				t.Fatalf("%s, roi %v: element %d: kernel %v (%#x), Go loop %v (%#x)", what, r, i, got[i], math.Float32bits(got[i]), v, math.Float32bits(v))
			}
		}
	}
	for trial := 0; trial < 2000; trial++ {
		height, width := 1+rng.Intn(12), 1+rng.Intn(40)
		outH, outW := 1+rng.Intn(4), 1+trial%20
		o := alignOp{geo: geometry{batch: 1, channels: 1, height: height, width: width, rois: 1, outH: outH, outW: outW, scale: []float64{1, 0.5, 0.25}[trial%3]},
			samplingRatio: []int{-1, 1, 2, 3}[trial%4], aligned: trial%2 == 0}
		x1, y1 := float32(rng.Float64()*float64(width+4)*2-4), float32(rng.Float64()*float64(height+4)*2-4)
		r := []float32{0, x1, y1, x1 + float32(rng.Float64()*float64(width)*3), y1 + float32(rng.Float64()*float64(height)*3)}
		if trial%5 == 0 { // samples on whole pixels: taps of weight 0, so 0 * Inf = NaN meets NaN
			o.geo.scale, o.samplingRatio, o.aligned = 1, 1, false
			x1, y1 = float32(rng.Intn(width)), float32(rng.Intn(height))
			r = []float32{0, x1, y1, x1 + float32(2*outW*(1+rng.Intn(2))), y1 + float32(2*outH)}
		}
		p := newAlignParams[float32](o)
		w := getAlignWorker[float32]()
		if err := alignGrids(&w.ys, &w.xs, r, o, &p); err != nil {
			t.Fatal(err)
		}
		w.table.build(&w.ys, &w.xs, height, width)
		rows, _ := w.scratch(outW)
		stride := rowStride(outW)
		tapped := len(w.xs.taps) > 0 && len(w.ys.lines) > 0

		plane := make([]float32, height*width)
		fill(plane, trial%3 != 0)
		ran := w.rowSums(w, plane, width)
		got := append([]float32(nil), rows...)
		alignRowsGo(rows, plane, width, &w.ys, &w.xs)
		if ran != tapped {
			t.Fatalf("roi %v, %dx%d plane: row sums ran %t, taps %t", r, height, width, ran, tapped)
		}
		if ran {
			same("row sums", r, got, rows, func(i int) bool { return i%stride >= outW })
		}

		fill(rows, trial%2 == 0)
		fill(plane, trial%3 != 1)
		want := append([]float32(nil), plane...)
		ran = w.rowScatter(w, plane, width)
		if ran != (tapped && width >= 8*((int(w.table.n)+7)/8)) {
			t.Fatalf("roi %v, %dx%d plane: row scatter ran %t", r, height, width, ran)
		}
		if ran {
			alignScatterGo(want, rows, width, &w.ys, &w.xs)
			same("row scatter", r, plane, want, func(int) bool { return false })
		}

		// the y steps: bins (with a guard block after them) from row sums, and row sums
		// from an upstream
		fits := outW >= 4 && outW <= 8
		fill(rows, trial%2 == 1)
		cnt := float32(count(&w.ys, &w.xs))
		bins := make([]float32, 2*outH*outW)
		for i := range bins {
			bins[i] = 12345
		}
		wantBins := append([]float32(nil), bins...)
		clear(bins[:outH*outW])
		clear(wantBins[:outH*outW])
		if ran := w.cols(w, bins[:outH*outW], cnt, outW); ran != fits {
			t.Fatalf("roi %v, %d bins: y sums ran %t", r, outW, ran)
		}
		alignPlane(wantBins[:outH*outW], &w.ys, cnt, rows, outW)
		if fits {
			same("y sums", r, bins, wantBins, func(int) bool { return false })
		}
		upstream := make([]float32, outH*outW)
		fill(upstream, trial%3 == 2)
		if ran := w.shares(w, upstream, cnt, outW); ran != fits {
			t.Fatalf("roi %v, %d bins: shares ran %t", r, outW, ran)
		}
		got = append(got[:0], rows...)
		alignShares(upstream, &w.ys, cnt, rows, make([]float32, outW))
		if fits {
			same("shares", r, got, rows, func(i int) bool { return i%stride >= outW })
		}
		w.release()
	}
}

// TestTapLayout pins the layout of tap[float32] that kernel_amd64.s reads (pixel at 0, slot at
// 4, weight at 8, 12 bytes apart): reordering the struct must fail here, not in the kernels.
func TestTapLayout(t *testing.T) {
	var tp tap[float32]
	if unsafe.Offsetof(tp.pixel) != 0 || unsafe.Offsetof(tp.slot) != 4 || unsafe.Offsetof(tp.weight) != 8 || unsafe.Sizeof(tp) != 12 {
		t.Fatalf("tap[float32]: pixel at %d, slot at %d, weight at %d, size %d; the kernels read 0, 4, 8, 12",
			unsafe.Offsetof(tp.pixel), unsafe.Offsetof(tp.slot), unsafe.Offsetof(tp.weight), unsafe.Sizeof(tp))
	}
}
