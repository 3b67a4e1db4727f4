//go:build amd64 && gc && !purego

package roi

import (
	"math"
	"math/rand"
	"testing"

	"github.com/detlab/smoothl1/internal/values"
	"gorgonia.org/tensor"
)

// TestPoolAgainstScan (written in review): Pool's forward through the AVX2 kernel and through
// its Go twin, the scatter with the saved argmaxes and recomputed, against refPool (torchvision's
// scan as written: rows then columns from -FLT_MAX, strict >, an empty bin 0 without argmax),
// bits compared, on planes up to 30x40 with ties, ±0, -FLT_MAX, ±MaxFloat32, NaN, ±Inf, bins
// wider than 8 columns and outW up to 20, in float32 and float64.
func TestPoolAgainstScan(t *testing.T) {
	specials := []float64{math.NaN(), 0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), -math.MaxFloat32, math.MaxFloat32, 1, -1, 2}
	rng := rand.New(rand.NewSource(99))
	for trial := 0; trial < 1000; trial++ {
		g := geometry{batch: 1 + rng.Intn(2), channels: 1 + rng.Intn(3), height: 1 + rng.Intn(30), width: 1 + rng.Intn(40),
			rois: 1 + rng.Intn(4), outH: 1 + rng.Intn(5), outW: 1 + rng.Intn(20), scale: []float64{1, 0.5, 2}[rng.Intn(3)]}
		feat := make([]float64, g.batch*g.channels*g.height*g.width)
		for i := range feat {
			switch rng.Intn(3) {
			case 0:
				feat[i] = specials[rng.Intn(len(specials))]
			default:
				feat[i] = float64(rng.Intn(3)) - 1
			}
			if trial%7 == 0 {
				feat[i] = math.Copysign(0, float64(rng.Intn(2))-0.5)
			}
		}
		rois := fuzzRoIs(rng, g.rois, g.batch, g.height, g.width, g.scale)
		up := make([]float64, g.rois*g.channels*g.binCount())
		for i := range up {
			up[i] = float64(1 + rng.Intn(1000))
		}
		for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
			for _, asm := range []bool{true, false} {
				old := useAsm
				useAsm = asm && old
				features, roisT, upT := dense(dt, g.featuresShape(), feat), dense(dt, g.roisShape(), rois), dense(dt, g.outShape(), up)
				pool := poolOp{geo: g, save: new(poolSave)}
				pool.save.want()
				out, err := pool.Do(features, roisT)
				if err != nil {
					t.Fatal(err)
				}
				grad, err := poolGradOp{fwd: pool}.Do(features, roisT, out, upT)
				if err != nil {
					t.Fatal(err)
				}
				grad2, err := poolGradOp{fwd: pool}.Do(features, roisT, out, upT) // recomputed
				if err != nil {
					t.Fatal(err)
				}
				useAsm = old
				var wantOut, wantGrad []float64
				if dt == tensor.Float32 {
					o, gr, _ := refPool(g, f32(feat), f32(rois), f32(up))
					wantOut, wantGrad = f64(o), f64(gr)
				} else {
					wantOut, wantGrad, _ = refPool(g, feat, rois, up)
				}
				gotOut := values.Float64s(out)
				for i := range wantOut {
					if math.Float64bits(gotOut[i]) != math.Float64bits(wantOut[i]) {
						t.Fatalf("trial %d %v asm %v geo %+v rois %v: out[%d] = %v, torchvision scan %v", trial, dt, asm, g, rois, i, gotOut[i], wantOut[i])
					}
				}
				for name, gr := range map[string][]float64{"saved": values.Float64s(grad), "recomputed": values.Float64s(grad2)} {
					for i := range wantGrad {
						if gr[i] != wantGrad[i] {
							t.Fatalf("trial %d %v asm %v %s: grad[%d] = %v, want %v", trial, dt, asm, name, i, gr[i], wantGrad[i])
						}
					}
				}
				if pool.save.taken.Load() != 1 || pool.save.recomputed.Load() != 1 {
					t.Fatalf("taken %d recomputed %d", pool.save.taken.Load(), pool.save.recomputed.Load())
				}
			}
		}
	}
}
