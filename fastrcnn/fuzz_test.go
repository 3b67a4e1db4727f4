package fastrcnn

import (
	"math"
	"math/rand"
	"testing"
)

// FuzzTargetInvariants: for random images (gt count, proposal count, a coordinate scale up to
// 1e300, negative offsets), either preset, any budget, foreground fraction and background
// band, SampleTargets never fails on valid boxes and every row keeps the promises that
// checkInvariants verifies: each foreground RoI's recomputed best IoU is >= FgIoU with its
// gt's label, each background IoU in [BgIoULow, BgIoUHigh), targets and weights only in the
// label's slot, the encoded value there, rows in the preset's order, no candidate twice, and the
// counts within the budget (at most maxFg foreground and BatchSize rows per image).
func FuzzTargetInvariants(f *testing.F) {
	f.Add(int64(1), uint8(3), uint8(40), uint8(2), uint8(16), 0.25, 0.1, 0.5, 0.5, 1.0, false)
	f.Add(int64(2), uint8(0), uint8(5), uint8(1), uint8(4), 0.5, 0.0, 0.5, 0.5, 1e-9, true)
	f.Add(int64(3), uint8(6), uint8(200), uint8(3), uint8(200), 1.0, 0.2, 0.3, 0.7, 1e300, false)
	f.Fuzz(func(t *testing.T, seed int64, numGT, numProps, classes, batch uint8, frac, lo, hi, fg, scale float64, torchvision bool) {
		cfg := PyFasterRCNNConfig(1 + int(classes%4))
		if torchvision {
			cfg = TorchvisionConfig(cfg.NumClasses)
		}
		cfg.BatchSize, cfg.FgFraction = 1+int(batch), frac
		cfg.FgIoU, cfg.BgIoULow, cfg.BgIoUHigh = fg, lo, hi
		cfg.Seed = seed
		if cfg.Validate() != nil || !(scale > 0) || math.IsInf(scale, 0) {
			return // invalid configurations are errors, tested elsewhere
		}
		rng := rand.New(rand.NewSource(seed))
		var images []Image
		for b := 0; b < 2; b++ {
			im := randomImage(rng, int(numGT%8), cfg.NumClasses, int(numProps), 300)
			for _, boxes := range [][][4]float64{im.Proposals, im.Boxes} {
				for i := range boxes {
					for k := range boxes[i] {
						boxes[i][k] = (boxes[i][k] - 100) * scale
					}
				}
			}
			if len(im.Proposals)+len(im.Boxes) == 0 {
				im.Proposals = [][4]float64{{0, 0, scale, scale}}
			}
			images = append(images, im)
		}
		tg, err := SampleTargets(cfg, images)
		if err != nil {
			// only a gt that collapsed to zero width at a tiny scale may be refused
			if !torchvision {
				t.Fatalf("valid input refused: %v", err)
			}
			return
		}
		if msg := checkInvariants(cfg, images, tg); msg != "" {
			t.Fatalf("%s (config %+v)", msg, cfg)
		}
	})
}
