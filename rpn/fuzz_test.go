package rpn

import (
	"math"
	"math/rand"
	"testing"
)

// FuzzBoxCoding: Decode(Encode(g)) round-trips for anchors and gts of positive size: exactly g
// (to 1e-9 of the box scale) for torchvision's coder (with weights, while |dw|, |dh| stay under
// the clamp), g + (0, 0, 1, 1) for py-faster-rcnn's (its bbox_transform_inv does not subtract 1).
func FuzzBoxCoding(f *testing.F) {
	f.Add(0.0, 0.0, 15.0, 15.0, 10.0, 20.0, 110.0, 80.0, 1.0, 1.0)
	f.Add(-84.0, -40.0, 99.0, 55.0, 3.0, 3.0, 4.0, 9.0, 10.0, 5.0)
	f.Add(100.5, 7.25, 300.0, 50.0, 0.0, 0.0, 1000.0, 1000.0, 0.5, 2.0)
	f.Fuzz(func(t *testing.T, ax1, ay1, ax2, ay2, gx1, gy1, gx2, gy2, wxy, wwh float64) {
		a := [4]float64{ax1, ay1, ax2, ay2}
		g := [4]float64{gx1, gy1, gx2, gy2}
		for _, v := range append(a[:], append(g[:], wxy, wwh)...) {
			if math.IsNaN(v) || math.Abs(v) > 1e6 {
				return
			}
		}
		if !(wxy > 0.01 && wwh > 0.01 && wxy < 100 && wwh < 100) {
			return
		}
		scale := 1.0
		for _, v := range append(a[:], g[:]...) {
			scale = math.Max(scale, math.Abs(v))
		}
		tv := TorchvisionCoder()
		tv.Weights = [4]float64{wxy, wxy, wwh, wwh}
		if a[2]-a[0] > 1e-3 && a[3]-a[1] > 1e-3 && g[2]-g[0] > 1e-3 && g[3]-g[1] > 1e-3 {
			d := tv.Encode(a, g)
			if math.Abs(d[2]/wwh) < tv.ClampLog && math.Abs(d[3]/wwh) < tv.ClampLog {
				back := tv.Decode(a, d)
				for k := range back {
					if math.Abs(back[k]-g[k]) > 1e-9*scale {
						t.Fatalf("torchvision: Decode(Encode(%v)) = %v relative to %v (weights %v)", g, back, a, tv.Weights)
					}
				}
			}
		}
		py := PyFasterRCNNCoder()
		if a[2]-a[0]+1 > 1e-3 && a[3]-a[1]+1 > 1e-3 && g[2]-g[0]+1 > 1e-3 && g[3]-g[1]+1 > 1e-3 {
			back := py.Decode(a, py.Encode(a, g))
			want := [4]float64{g[0], g[1], g[2] + 1, g[3] + 1}
			for k := range back {
				if math.Abs(back[k]-want[k]) > 1e-9*scale {
					t.Fatalf("py-faster-rcnn: Decode(Encode(%v)) = %v, want %v", g, back, want)
				}
			}
		}
	})
}

// FuzzAssignInvariants: random scenes (feature maps up to 8x8, 0-12 gt boxes, some invalid) either
// fail with an error naming the bad box, or satisfy the invariants: labels in {-1, 0, 1}, at most
// 128 positives, at most 256 sampled, every positive with IoU >= 0.7 or a gt's best with IoU > 0,
// every negative below 0.3, weights consistent with the labels.
func FuzzAssignInvariants(f *testing.F) {
	f.Add(int64(1), uint8(5), uint8(3), false)
	f.Add(int64(2), uint8(0), uint8(12), true)
	f.Add(int64(3), uint8(200), uint8(1), true)
	f.Fuzz(func(t *testing.T, seed int64, mapSize, nGT uint8, torchvision bool) {
		rng := rand.New(rand.NewSource(seed))
		h, w := int(mapSize%8)+1, int(mapSize/8%8)+1
		cfg := DefaultConfig()
		if torchvision {
			cfg = TorchvisionConfig()
		}
		cfg.Seed = seed
		cfg.AnchorsPerImage = 1 + rng.Intn(300)
		an, err := NewAnchors(GenerateAnchors(8, []float64{0.5, 1, 2}, []float64{1, 2, 4}), h, w, 8)
		if err != nil {
			t.Fatal(err)
		}
		size := float64(8 * max(h, w))
		im := Image{Height: size, Width: size}
		bad := false
		for j := 0; j < int(nGT%13); j++ {
			x, y := rng.Float64()*size, rng.Float64()*size
			bw, bh := rng.Float64()*size/2, rng.Float64()*size/2
			box := [4]float64{math.Round(x), math.Round(y), math.Round(x + bw), math.Round(y + bh)}
			if rng.Intn(20) == 0 {
				box[2] = box[0] - 1 // invalid
				bad = true
			}
			if !cfg.Coder.PlusOne && (box[2] == box[0] || box[3] == box[1]) {
				bad = true
			}
			im.Boxes = append(im.Boxes, box)
		}
		tg, err := AssignTargets(cfg, an, []Image{im})
		if bad {
			if err == nil {
				t.Fatalf("invalid gt accepted: %v", im.Boxes)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, cfg, an, []Image{im}, tg, false)
	})
}
