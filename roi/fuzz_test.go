package roi

import (
	"math"
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	"gorgonia.org/tensor"
)

// refBilinear is torchvision's bilinear_interpolate, one sample at a time, written out plainly:
// the four pixel indices and weights, ok false for a sample outside [-1, H] x [-1, W].
func refBilinear[T float](height, width int, y, x T) (pos [4]int, w [4]T, ok bool) {
	if y < -1 || y > T(height) || x < -1 || x > T(width) || height == 0 || width == 0 {
		return pos, w, false
	}
	if y <= 0 {
		y = 0
	}
	if x <= 0 {
		x = 0
	}
	yLow, xLow := int(y), int(x)
	yHigh, xHigh := yLow+1, xLow+1
	if yLow >= height-1 {
		yLow, yHigh = height-1, height-1
		y = T(yLow)
	}
	if xLow >= width-1 {
		xLow, xHigh = width-1, width-1
		x = T(xLow)
	}
	ly, lx := y-T(yLow), x-T(xLow)
	hy, hx := 1-ly, 1-lx
	pos = [4]int{yLow*width + xLow, yLow*width + xHigh, yHigh*width + xLow, yHigh*width + xHigh}
	w = [4]T{T(hy * hx), T(hy * lx), T(ly * hx), T(ly * lx)}
	return pos, w, true
}

// refAlign is roi_align's forward and backward as torchvision's CPU kernels compute them, one
// sample at a time; it also returns, per bin, the number of samples inside the map over count
// (the sum of the bin's weights).
func refAlign[T float](g geometry, ratio int, aligned bool, features, rois, up []T) (out, grad []T, weightSum []float64) {
	out = make([]T, g.rois*g.channels*g.binCount())
	grad = make([]T, g.batch*g.channels*g.height*g.width)
	weightSum = make([]float64, g.rois*g.binCount())
	scale := T(g.scale)
	var offset T
	if aligned {
		offset = 0.5
	}
	plane := g.height * g.width
	for k := 0; k < g.rois; k++ {
		r := rois[5*k : 5*k+5]
		n := int(r[0])
		startW, startH := T(r[1]*scale)-offset, T(r[2]*scale)-offset
		width, height := T(r[3]*scale)-offset-startW, T(r[4]*scale)-offset-startH
		if !aligned {
			width, height = max(width, 1), max(height, 1)
		}
		binH, binW := height/T(g.outH), width/T(g.outW)
		gridH, gridW := ratio, ratio
		if ratio <= 0 {
			gridH, gridW = int(math.Ceil(float64(height/T(g.outH)))), int(math.Ceil(float64(width/T(g.outW))))
		}
		count := T(max(gridH*gridW, 1))
		for c := 0; c < g.channels; c++ {
			f := features[(n*g.channels+c)*plane:]
			dst := grad[(n*g.channels+c)*plane:]
			for ph := 0; ph < g.outH; ph++ {
				for pw := 0; pw < g.outW; pw++ {
					i := ((k*g.channels+c)*g.outH+ph)*g.outW + pw
					var sum T
					for iy := 0; iy < gridH; iy++ {
						y := startH + T(T(ph)*binH) + T(T(T(iy)+0.5)*binH)/T(gridH)
						for ix := 0; ix < gridW; ix++ {
							x := startW + T(T(pw)*binW) + T(T(T(ix)+0.5)*binW)/T(gridW)
							pos, w, ok := refBilinear(g.height, g.width, y, x)
							if !ok {
								continue
							}
							if c == 0 {
								weightSum[k*g.binCount()+ph*g.outW+pw] += 1 / float64(count)
							}
							sum += T(w[0]*f[pos[0]]) + T(w[1]*f[pos[1]]) + T(w[2]*f[pos[2]]) + T(w[3]*f[pos[3]])
							for j := range pos {
								dst[pos[j]] += T(up[i]*w[j]) / count
							}
						}
					}
					out[i] = sum / count
				}
			}
		}
	}
	return out, grad, weightSum
}

// refPool is roi_pool's forward and backward as torchvision's CPU kernels compute them.
func refPool[T float](g geometry, features, rois, up []T) (out, grad []T, argmaxes []int) {
	out = make([]T, g.rois*g.channels*g.binCount())
	grad = make([]T, g.batch*g.channels*g.height*g.width)
	argmaxes = make([]int, len(out))
	scale := T(g.scale)
	plane := g.height * g.width
	for k := 0; k < g.rois; k++ {
		r := rois[5*k : 5*k+5]
		n := int(r[0])
		startW, startH := int(math.Round(float64(T(r[1]*scale)))), int(math.Round(float64(T(r[2]*scale))))
		endW, endH := int(math.Round(float64(T(r[3]*scale)))), int(math.Round(float64(T(r[4]*scale))))
		binH := T(max(endH-startH+1, 1)) / T(g.outH)
		binW := T(max(endW-startW+1, 1)) / T(g.outW)
		for ph := 0; ph < g.outH; ph++ {
			for pw := 0; pw < g.outW; pw++ {
				hStart := min(max(int(math.Floor(float64(T(T(ph)*binH))))+startH, 0), g.height)
				hEnd := min(max(int(math.Ceil(float64(T(T(ph+1)*binH))))+startH, 0), g.height)
				wStart := min(max(int(math.Floor(float64(T(T(pw)*binW))))+startW, 0), g.width)
				wEnd := min(max(int(math.Ceil(float64(T(T(pw+1)*binW))))+startW, 0), g.width)
				empty := hEnd <= hStart || wEnd <= wStart
				for c := 0; c < g.channels; c++ {
					f := features[(n*g.channels+c)*plane:]
					best, at := T(-math.MaxFloat32), -1
					if empty {
						best = 0
					}
					for h := hStart; h < hEnd; h++ {
						for w := wStart; w < wEnd; w++ {
							if f[h*g.width+w] > best {
								best, at = f[h*g.width+w], h*g.width+w
							}
						}
					}
					i := ((k*g.channels+c)*g.outH+ph)*g.outW + pw
					out[i], argmaxes[i] = best, at
					if at >= 0 {
						grad[(n*g.channels+c)*plane+at] += up[i]
					}
				}
			}
		}
	}
	return out, grad, argmaxes
}

// fuzzRoIs draws k rois for an (N, ., H, W) map at the given scale: corners over the image and
// a margin around it, with zero-size, negative-size, tiny and huge ones mixed in.
func fuzzRoIs(rng *rand.Rand, k, batch, height, width int, scale float64) []float64 {
	imgW, imgH := float64(width)/scale, float64(height)/scale
	rois := make([]float64, 0, 5*k)
	for i := 0; i < k; i++ {
		x1, y1 := (rng.Float64()*1.6-0.3)*imgW, (rng.Float64()*1.6-0.3)*imgH
		x2, y2 := x1+rng.Float64()*imgW, y1+rng.Float64()*imgH
		switch rng.Intn(8) {
		case 0:
			x2, y2 = x1, y1 // zero size
		case 1:
			x2 = x1 - rng.Float64()*imgW // negative width
		case 2:
			x2, y2 = x1-rng.Float64()*imgW, y1-rng.Float64()*imgH // negative both
		case 3:
			x2, y2 = x1+0.3/scale*rng.Float64(), y1+0.3/scale*rng.Float64() // sub-pixel
		case 4:
			x1, y1, x2, y2 = -imgW, -imgH, 2*imgW, 2*imgH // covering
		}
		rois = append(rois, float64(rng.Intn(batch)), x1, y1, x2, y2)
	}
	return rois
}

// FuzzRoIOps checks Align and Pool (forward through Do, backward through the diff ops) against
// the scalar references above for random maps, rois (degenerate ones included), output sizes,
// scales, sampling ratios, aligned, dtypes, and for Pool NaN and ±Inf features; and the
// invariant Σ grad = Σ_bins up * (sum of the bin's weights): for Align the bin's samples
// inside the map over count, for Pool 1 where the bin has an argmax.
func FuzzRoIOps(f *testing.F) {
	f.Add(int64(1), uint8(0), uint8(0))
	f.Add(int64(2), uint8(0xff), uint8(3))
	f.Add(int64(3), uint8(0x5a), uint8(7))
	f.Fuzz(func(t *testing.T, seed int64, flags, sizes uint8) {
		rng := rand.New(rand.NewSource(seed))
		g := geometry{
			batch: 1 + rng.Intn(2), channels: 1 + rng.Intn(3), height: 1 + rng.Intn(9), width: 1 + rng.Intn(9),
			rois: rng.Intn(7), outH: 1 + int(sizes%4), outW: 1 + int(sizes/4%4),
			scale: []float64{1, 0.5, 1.0 / 16, 0.25, 2}[rng.Intn(5)],
		}
		ratio := []int{-1, 0, 1, 2, 3}[int(flags)%5]
		aligned := flags&0x08 != 0
		// float64 to 1e-12; float32 to its rounding; the sums over all pixels to 1e-9 and 1e-3
		dt, tol, sumTol := tensor.Float64, 1e-12, 1e-9
		if flags&0x10 != 0 {
			dt, tol, sumTol = tensor.Float32, 1e-4, 1e-3
		}
		special := flags&0x20 != 0
		feat := make([]float64, g.batch*g.channels*g.height*g.width)
		for i := range feat {
			feat[i] = rng.NormFloat64()
		}
		rois := fuzzRoIs(rng, g.rois, g.batch, g.height, g.width, g.scale)
		up := make([]float64, g.rois*g.channels*g.binCount())
		for i := range up {
			up[i] = rng.NormFloat64()
		}
		features := dense(dt, g.featuresShape(), feat)
		roisT := dense(dt, g.roisShape(), rois)
		upT := dense(dt, g.outShape(), up)

		align := alignOp{geo: g, samplingRatio: ratio, aligned: aligned}
		out, err := align.Do(features, roisT)
		if err != nil {
			t.Fatal(err)
		}
		grad, err := alignDiffOp{align}.Do(roisT, upT)
		if err != nil {
			t.Fatal(err)
		}
		var wantOut, wantGrad []float64
		var weights []float64
		if dt == tensor.Float32 {
			o, gr, w := refAlign(g, ratio, aligned, f32(feat), f32(rois), f32(up))
			wantOut, wantGrad, weights = f64(o), f64(gr), w
		} else {
			wantOut, wantGrad, weights = refAlign(g, ratio, aligned, feat, rois, up)
		}
		assertClose(t, "align output", values.Float64s(out), wantOut, tol, tol)
		gotGrad := values.Float64s(grad)
		assertClose(t, "align grad", gotGrad, wantGrad, tol, tol)
		var sumGrad, sumUp float64
		for _, v := range gotGrad {
			sumGrad += v
		}
		for i, u := range up {
			sumUp += u * weights[i/(g.channels*g.binCount())*g.binCount()+i%g.binCount()]
		}
		if !closeTo(sumGrad, sumUp, sumTol, sumTol) {
			t.Fatalf("align: Σ grad = %v, Σ up * weights = %v", sumGrad, sumUp)
		}

		if special {
			for i := range feat {
				switch rng.Intn(6) {
				case 0:
					feat[i] = math.NaN()
				case 1:
					feat[i] = math.Inf(1 - 2*rng.Intn(2))
				}
			}
			features = dense(dt, g.featuresShape(), feat)
		}
		pool := poolOp{geo: g}
		out, err = pool.Do(features, roisT)
		if err != nil {
			t.Fatal(err)
		}
		grad, err = poolGradOp{fwd: pool}.Do(features, roisT, out, upT)
		if err != nil {
			t.Fatal(err)
		}
		gathered, err := poolGradOp{fwd: pool, gather: true}.Do(features, roisT, out, grad)
		if err != nil {
			t.Fatal(err)
		}
		var argmaxes []int
		if dt == tensor.Float32 {
			o, gr, a := refPool(g, f32(feat), f32(rois), f32(up))
			wantOut, wantGrad, argmaxes = f64(o), f64(gr), a
		} else {
			wantOut, wantGrad, argmaxes = refPool(g, feat, rois, up)
		}
		assertClose(t, "pool output", values.Float64s(out), wantOut, 0, 0)
		gotGrad = values.Float64s(grad)
		assertClose(t, "pool grad", gotGrad, wantGrad, tol, tol)
		sumGrad, sumUp = 0, 0
		for _, v := range gotGrad {
			sumGrad += v
		}
		for i, u := range up {
			if argmaxes[i] >= 0 {
				sumUp += u
			}
		}
		if !closeTo(sumGrad, sumUp, sumTol, sumTol) {
			t.Fatalf("pool: Σ grad = %v, Σ up at argmaxes = %v", sumGrad, sumUp)
		}
		// the gather reads the gradient back at each argmax
		gv := values.Float64s(gathered)
		for i, a := range argmaxes {
			want := 0.0
			if a >= 0 {
				n := int(rois[5*(i/(g.channels*g.binCount()))])
				c := i / g.binCount() % g.channels
				want = gotGrad[(n*g.channels+c)*g.height*g.width+a]
			}
			if gv[i] != want {
				t.Fatalf("gather[%d] = %v, want %v", i, gv[i], want)
			}
		}
	})
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
