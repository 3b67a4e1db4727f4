package rpn

import (
	"fmt"
	"math"
)

// Objectness is the classification head's form.
type Objectness int

const (
	// Softmax2 is py-faster-rcnn's 2-class softmax: scores (B, 2A, H, W), background of anchor a in
	// channel a, foreground in channel A + a.
	Softmax2 Objectness = iota
	// Sigmoid is torchvision's single logit per anchor: scores (B, A, H, W), binary
	// cross-entropy with logits.
	Sigmoid
)

func (o Objectness) String() string {
	switch o {
	case Softmax2:
		return "softmax2"
	case Sigmoid:
		return "sigmoid"
	}
	return fmt.Sprintf("Objectness(%d)", int(o))
}

// Normalisation says how the loss terms are averaged.
type Normalisation int

const (
	// PerImage is py-faster-rcnn's: each image's terms divided by its number of valid (sampled)
	// anchors N_v, then the mean over the images. Unlike faster-rcnn.pytorch it uses each image's
	// own N_v, not the last image's for the whole batch (jwyang/faster-rcnn.pytorch#256).
	PerImage Normalisation = iota
	// PerBatch is torchvision's: every term divided by S, the number of sampled anchors in the
	// whole batch.
	PerBatch
	// PerAnchorBudget is detectron2's: every term divided by AnchorsPerImage x B, the sampling
	// budget of the batch, however many anchors were actually sampled.
	PerAnchorBudget
)

func (n Normalisation) String() string {
	switch n {
	case PerImage:
		return "per-image"
	case PerBatch:
		return "per-batch"
	case PerAnchorBudget:
		return "per-anchor-budget"
	}
	return fmt.Sprintf("Normalisation(%d)", int(n))
}

// Config is the RPN objective's configuration. Use DefaultConfig or TorchvisionConfig and adjust.
type Config struct {
	// PositiveIoU: an anchor whose best IoU with a gt is >= PositiveIoU is positive (0.7).
	PositiveIoU float64
	// NegativeIoU: an anchor whose best IoU is < NegativeIoU is negative (0.3).
	NegativeIoU float64
	// AnchorsPerImage is the number of anchors sampled per image (256): py-faster-rcnn's
	// RPN_BATCHSIZE, torchvision's batch_size_per_image.
	AnchorsPerImage int
	// FgFraction is the largest fraction of positives in a sample (0.5).
	FgFraction float64
	// FilterBorder ignores anchors not inside the image, up to AllowedBorder pixels (py-faster-rcnn:
	// true, 0; torchvision keeps every anchor).
	FilterBorder  bool
	AllowedBorder float64
	// ClobberPositives applies the negative rule last, so an anchor that is a gt's best match
	// but below NegativeIoU ends negative (py-faster-rcnn's RPN_CLOBBER_POSITIVES).
	ClobberPositives bool
	// Coder encodes regression targets. Its PlusOne is the pixel convention of the whole
	// assignment (IoU and box coding): w = x2 - x1 + 1 (py-faster-rcnn), or x2 - x1.
	Coder BoxCoder
	// Sigma is the box loss's sigma (py-faster-rcnn: 3). When 0, Beta is used instead.
	Sigma float64
	// Beta is the box loss's beta when Sigma is 0 (torchvision: 1/9).
	Beta float64
	// Objectness and Normalisation choose the classification head and the averaging.
	Objectness    Objectness
	Normalisation Normalisation
	// Lambda weighs the box term: total = cls + Lambda*reg (1).
	Lambda float64
	// PositiveWeight is py-faster-rcnn's RPN_POSITIVE_WEIGHT: with p in (0, 1), PerImage outside
	// weights are p/#positives on positives and (1-p)/#negatives on negatives instead of 1/N_v.
	// 0 (the default, py-faster-rcnn's -1) keeps the uniform 1/N_v. Classification is unchanged.
	PositiveWeight float64
	// Seed makes sampling reproducible: image b of a batch samples with seed Seed + b.
	Seed int64
	// EncodeAllKept writes the regression target of every kept anchor (its best gt, encoded), as
	// py-faster-rcnn's bbox_targets (DefaultConfig). False (TorchvisionConfig) encodes only the
	// sampled positives, the only targets the loss reads (inside weight 1); the other anchors'
	// targets are 0 with inside weight 0, and the loss is the same.
	EncodeAllKept bool
}

// DefaultConfig is py-faster-rcnn's RPN: positive IoU >= 0.7, negative < 0.3, 256 samples with
// at most half positive, allowed border 0, +1 pixel convention, sigma 3, 2-class softmax
// objectness, per-image normalisation.
func DefaultConfig() Config {
	return Config{
		PositiveIoU: 0.7, NegativeIoU: 0.3, AnchorsPerImage: 256, FgFraction: 0.5,
		FilterBorder: true, AllowedBorder: 0,
		Coder: PyFasterRCNNCoder(), Sigma: 3,
		Objectness: Softmax2, Normalisation: PerImage, Lambda: 1, EncodeAllKept: true,
	}
}

// TorchvisionConfig is torchvision 0.14's RegionProposalNetwork: no border filter, no +1, box
// coder weights (1, 1, 1, 1), beta 1/9, sigmoid objectness, averaging over the batch's samples.
func TorchvisionConfig() Config {
	return Config{
		PositiveIoU: 0.7, NegativeIoU: 0.3, AnchorsPerImage: 256, FgFraction: 0.5,
		Coder: TorchvisionCoder(), Beta: 1.0 / 9,
		Objectness: Sigmoid, Normalisation: PerBatch, Lambda: 1,
	}
}

// Detectron2Config is detectron2's RPN (StandardRPNHead, rpn.py): torchvision's matching and
// sampling (IoU 0.7/0.3 with low-quality matches, 256 anchors per image, half positive, no border
// filter, no +1, box coder weights (1, 1, 1, 1) with the ln(1000/16) clamp), sigmoid objectness,
// an L1 box loss (smooth L1 with beta 0; gradient 0 at a zero residual), and both terms summed
// and divided by AnchorsPerImage x images (PerAnchorBudget), not by the number sampled.
func Detectron2Config() Config {
	return Config{
		PositiveIoU: 0.7, NegativeIoU: 0.3, AnchorsPerImage: 256, FgFraction: 0.5,
		Coder: TorchvisionCoder(), Beta: 0,
		Objectness: Sigmoid, Normalisation: PerAnchorBudget, Lambda: 1,
	}
}

// normalisation is what of a Config scales the weights that AssignTargets bakes in and the
// reduction that Loss chooses: the two calls must agree on it.
type normalisation struct {
	kind            Normalisation
	positiveWeight  float64
	anchorsPerImage int // used by PerAnchorBudget only
}

func (c Config) normalisation() normalisation {
	n := normalisation{kind: c.Normalisation, positiveWeight: c.PositiveWeight}
	if c.Normalisation == PerAnchorBudget {
		n.anchorsPerImage = c.AnchorsPerImage
	}
	return n
}

func (n normalisation) String() string {
	s := fmt.Sprintf("Normalisation %v", n.kind)
	if n.positiveWeight != 0 {
		s += fmt.Sprintf(", PositiveWeight %v", n.positiveWeight)
	}
	if n.kind == PerAnchorBudget {
		s += fmt.Sprintf(", AnchorsPerImage %d", n.anchorsPerImage)
	}
	return s
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("rpn: Config.%s is %v, want %s", name, v, want)
	}
	switch {
	case !(c.PositiveIoU >= 0 && c.PositiveIoU <= 1):
		return bad("PositiveIoU", c.PositiveIoU, "in [0, 1]")
	case !(c.NegativeIoU >= 0 && c.NegativeIoU <= c.PositiveIoU):
		return bad("NegativeIoU", c.NegativeIoU, fmt.Sprintf("in [0, PositiveIoU=%v]", c.PositiveIoU))
	case c.AnchorsPerImage <= 0:
		return bad("AnchorsPerImage", c.AnchorsPerImage, "> 0")
	case !(c.FgFraction >= 0 && c.FgFraction <= 1):
		return bad("FgFraction", c.FgFraction, "in [0, 1]")
	case math.IsNaN(c.AllowedBorder) || math.IsInf(c.AllowedBorder, 0):
		return bad("AllowedBorder", c.AllowedBorder, "finite")
	case math.IsNaN(c.Sigma) || math.IsInf(c.Sigma, 0) || c.Sigma < 0:
		return bad("Sigma", c.Sigma, "finite and > 0, or 0 to use Beta")
	case c.Sigma == 0 && (math.IsNaN(c.Beta) || math.IsInf(c.Beta, 0) || c.Beta < 0):
		return bad("Beta", c.Beta, "finite and >= 0")
	case c.Sigma != 0 && c.Beta != 0:
		return fmt.Errorf("rpn: Config.Sigma (%v) and Config.Beta (%v) both set; set one (beta = 1/sigma^2)", c.Sigma, c.Beta)
	case c.Objectness != Softmax2 && c.Objectness != Sigmoid:
		return bad("Objectness", c.Objectness, "Softmax2 or Sigmoid")
	case c.Normalisation != PerImage && c.Normalisation != PerBatch && c.Normalisation != PerAnchorBudget:
		return bad("Normalisation", c.Normalisation, "PerImage, PerBatch or PerAnchorBudget")
	case math.IsNaN(c.Lambda) || math.IsInf(c.Lambda, 0) || c.Lambda < 0:
		return bad("Lambda", c.Lambda, "finite and >= 0")
	case !(c.PositiveWeight >= 0 && c.PositiveWeight < 1):
		return bad("PositiveWeight", c.PositiveWeight, "in (0, 1), or 0 for uniform weights")
	case c.PositiveWeight != 0 && c.Normalisation != PerImage:
		return fmt.Errorf("rpn: Config.PositiveWeight (%v) applies to PerImage normalisation only, not %v", c.PositiveWeight, c.Normalisation)
	}
	return c.Coder.Validate()
}
