package fastrcnn

import (
	"fmt"
	"math"

	"github.com/detlab/smoothl1/box"
)

// Order is the row order of a sampled image's RoIs.
type Order int

const (
	// ProposalOrder keeps the sampled rows in the order of the proposals (gt boxes appended):
	// torchvision's torch.where(pos | neg).
	ProposalOrder Order = iota
	// FgFirst puts the foreground rows first, then the background rows, each in proposal order:
	// py-faster-rcnn's fg-then-bg layout, with its random order within each part replaced by the
	// proposal order (the set drawn is random and seeded; the order is not).
	FgFirst
)

func (o Order) String() string {
	switch o {
	case ProposalOrder:
		return "proposal-order"
	case FgFirst:
		return "fg-first"
	}
	return fmt.Sprintf("Order(%d)", int(o))
}

// Config is the second stage's sampling, target encoding and loss. Use TorchvisionConfig or
// PyFasterRCNNConfig and adjust.
type Config struct {
	// NumClasses is K, the number of object classes; gt labels are 1..K, 0 is background, and
	// the box deltas have 4(K+1) columns (slot c in columns 4c..4c+3).
	NumClasses int
	// FgIoU: a RoI whose best IoU with a gt is >= FgIoU is foreground with that gt's label (0.5).
	FgIoU float64
	// BgIoULow and BgIoUHigh: a RoI whose best IoU is in [BgIoULow, BgIoUHigh) is background
	// (torchvision: [0, 0.5); py-faster-rcnn: [0.1, 0.5); faster-rcnn.pytorch: [0, 0.5)). RoIs in
	// neither range are never sampled.
	BgIoULow, BgIoUHigh float64
	// BatchSize is the largest number of RoIs sampled per image (torchvision 512, py-faster-rcnn 128).
	BatchSize int
	// FgFraction bounds the foreground RoIs per image (0.25): at most int(FgFraction*BatchSize)
	// (torchvision) or, with RoundFg, round-half-to-even(FgFraction*BatchSize) (py-faster-rcnn's
	// np.round). The rest of the budget goes to background, as far as there is some.
	FgFraction float64
	RoundFg    bool
	// Order is the row order of each image's sample.
	Order Order
	// Coder encodes the regression targets; Coder.PlusOne is also the IoU's pixel convention
	// (torchvision: weights (10, 10, 5, 5), no +1; py-faster-rcnn: weights 1, +1).
	Coder box.Coder
	// Means and Stds normalise the encoded targets: (t - Means) / Stds (py-faster-rcnn: 0 and
	// (0.1, 0.1, 0.2, 0.2); torchvision: 0 and 1).
	Means, Stds [4]float64
	// Beta is the smooth L1 beta of the box loss (torchvision 1/9; faster-rcnn.pytorch's sigma 1
	// is beta 1 = 1/sigma^2).
	Beta float64
	// Seed makes sampling reproducible: image b of a batch samples with seed Seed + b.
	Seed int64
}

// TorchvisionConfig is torchvision 0.14's RoIHeads (select_training_samples and fastrcnn_loss)
// for numClasses object classes: Matcher(0.5, 0.5) (background is every IoU < 0.5),
// BalancedPositiveNegativeSampler(512, 0.25), BoxCoder((10, 10, 5, 5)) without +1, beta 1/9,
// rows in proposal order.
func TorchvisionConfig(numClasses int) Config {
	return Config{
		NumClasses: numClasses, FgIoU: 0.5, BgIoULow: 0, BgIoUHigh: 0.5,
		BatchSize: 512, FgFraction: 0.25, Order: ProposalOrder,
		Coder: box.Coder{Weights: [4]float64{10, 10, 5, 5}},
		Stds:  [4]float64{1, 1, 1, 1}, Beta: 1.0 / 9,
	}
}

// PyFasterRCNNConfig is py-faster-rcnn's proposal_target_layer with faster-rcnn.pytorch's head
// loss (the seed's setting) for numClasses object classes: FG_THRESH 0.5, background IoU in
// [BG_THRESH_LO, BG_THRESH_HI) = [0.1, 0.5) (set BgIoULow to 0 for faster-rcnn.pytorch), 128
// RoIs per image with FG_FRACTION 0.25 (np.round: 32), +1 pixels, targets normalised by means 0
// and stds (0.1, 0.1, 0.2, 0.2), smooth L1 with sigma 1 (beta 1), foreground rows first.
func PyFasterRCNNConfig(numClasses int) Config {
	return Config{
		NumClasses: numClasses, FgIoU: 0.5, BgIoULow: 0.1, BgIoUHigh: 0.5,
		BatchSize: 128, FgFraction: 0.25, RoundFg: true, Order: FgFirst,
		Coder: box.PyFasterRCNNCoder(),
		Stds:  [4]float64{0.1, 0.1, 0.2, 0.2}, Beta: 1,
	}
}

// Validate reports the first field out of range, naming it and its value.
func (c Config) Validate() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("fastrcnn: Config.%s is %v, want %s", name, v, want)
	}
	switch {
	case c.NumClasses < 1:
		return bad("NumClasses", c.NumClasses, ">= 1 (object classes, background excluded)")
	case !(c.FgIoU >= 0 && c.FgIoU <= 1):
		return bad("FgIoU", c.FgIoU, "in [0, 1]")
	case !(c.BgIoULow >= 0 && c.BgIoULow <= 1):
		return bad("BgIoULow", c.BgIoULow, "in [0, 1]")
	case !(c.BgIoUHigh >= c.BgIoULow && c.BgIoUHigh <= c.FgIoU):
		return bad("BgIoUHigh", c.BgIoUHigh, fmt.Sprintf("in [BgIoULow=%v, FgIoU=%v] (a RoI cannot be both)", c.BgIoULow, c.FgIoU))
	case c.BatchSize <= 0:
		return bad("BatchSize", c.BatchSize, "> 0")
	case !(c.FgFraction >= 0 && c.FgFraction <= 1):
		return bad("FgFraction", c.FgFraction, "in [0, 1]")
	case c.Order != ProposalOrder && c.Order != FgFirst:
		return bad("Order", c.Order, "ProposalOrder or FgFirst")
	case !(c.Beta >= 0) || math.IsInf(c.Beta, 0):
		return bad("Beta", c.Beta, "finite and >= 0")
	}
	for k := 0; k < 4; k++ {
		if math.IsNaN(c.Means[k]) || math.IsInf(c.Means[k], 0) {
			return bad(fmt.Sprintf("Means[%d]", k), c.Means[k], "finite")
		}
		if !(c.Stds[k] > 0) || math.IsInf(c.Stds[k], 0) {
			return bad(fmt.Sprintf("Stds[%d]", k), c.Stds[k], "finite and > 0")
		}
	}
	if err := c.Coder.Validate(); err != nil {
		return fmt.Errorf("fastrcnn: Config.Coder: %w", err)
	}
	return nil
}

// maxFg is the foreground budget of one image.
func (c Config) maxFg() int {
	v := c.FgFraction * float64(c.BatchSize)
	if c.RoundFg {
		return int(math.RoundToEven(v))
	}
	return int(v)
}

// Columns is the width of the class-specific box deltas and targets: 4(K+1).
func (c Config) Columns() int { return 4 * (c.NumClasses + 1) }
