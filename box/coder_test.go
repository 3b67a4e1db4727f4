package box

import (
	"math"
	"math/rand"
	"testing"
)

// EncodeMemo must give Encode's bits whatever the memo holds: many boxes with few distinct
// widths (hits) and many distinct ones (misses and overwritten entries), both conventions.
func TestEncodeMemoSameBits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		coder Coder
		sizes int // distinct widths/heights drawn from
	}{
		{"torchvision few sizes", TorchvisionCoder(), 7},
		{"torchvision many sizes", TorchvisionCoder(), 1 << 20},
		{"py-faster-rcnn few sizes", PyFasterRCNNCoder(), 5},
		{"weights many sizes", Coder{Weights: [4]float64{10, 10, 5, 5}}, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(5))
			var m LogMemo
			size := func() float64 { return 1 + float64(rng.Intn(tc.sizes))*0.37 }
			for i := 0; i < 20000; i++ {
				x, y := rng.Float64()*500, rng.Float64()*500
				ref := [4]float64{x, y, x + size(), y + size()}
				x, y = rng.Float64()*500, rng.Float64()*500
				gt := [4]float64{x, y, x + size(), y + size()}
				want, got := tc.coder.Encode(ref, gt), tc.coder.EncodeMemo(ref, gt, &m)
				for k := range want {
					if math.Float64bits(want[k]) != math.Float64bits(got[k]) {
						t.Fatalf("box %d delta %d: EncodeMemo %v, Encode %v", i, k, got[k], want[k])
					}
				}
			}
		})
	}
}
