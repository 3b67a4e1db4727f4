package roi

import (
	"fmt"
	"math"
)

// Option configures Align and Pool.
type Option func(*config)

type config struct {
	spatialScale     float64
	haveScale        bool
	samplingRatio    int
	haveRatio        bool
	aligned          bool
	haveAligned      bool
	outputH, outputW int
}

// WithSpatialScale sets the factor from image coordinates (the rois') to feature-map
// coordinates: 1/stride, e.g. 1/16 for a stride-16 backbone. Default 1, as in torchvision.
// It must be finite and > 0 (and not underflow to 0 in float32 for float32 inputs).
func WithSpatialScale(scale float64) Option {
	return func(c *config) { c.spatialScale, c.haveScale = scale, true }
}

// WithSamplingRatio sets the number of sampling points per bin along each axis (Align only).
// n > 0 is fixed; -1 (the default, as torchvision's) and 0 mean adaptive: ceil(roi size /
// output size) per axis and per roi.
func WithSamplingRatio(n int) Option {
	return func(c *config) { c.samplingRatio, c.haveRatio = n, true }
}

// WithAligned shifts the roi by -0.5 pixel after scaling (Align only), so that a roi's pixel
// corners map to pixel centres: torchvision's aligned=True, Detectron2's ROIAlignV2. Default
// false, as in torchvision.
func WithAligned(aligned bool) Option {
	return func(c *config) { c.aligned, c.haveAligned = aligned, true }
}

func collect(outputH, outputW int, opts []Option) config {
	c := config{spatialScale: 1, samplingRatio: -1, outputH: outputH, outputW: outputW}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// checkParams validates what Align and Pool share: the output size and the spatial scale.
// float32 says the scale is used in float32 (as torchvision casts it to the kernel's dtype).
func (c *config) checkParams(float32Inputs bool) error {
	if c.outputH <= 0 || c.outputW <= 0 {
		return fmt.Errorf("roi: output size %dx%d; both must be > 0", c.outputH, c.outputW)
	}
	if c.outputH > maxOutputSide || c.outputW > maxOutputSide {
		return fmt.Errorf("roi: output size %dx%d; each side must be <= %d", c.outputH, c.outputW, maxOutputSide)
	}
	s := c.spatialScale
	if math.IsNaN(s) || math.IsInf(s, 0) || s <= 0 {
		return fmt.Errorf("roi: spatial scale must be finite and > 0, got %v", s)
	}
	if float32Inputs {
		if f := float32(s); f == 0 || math.IsInf(float64(f), 0) {
			return fmt.Errorf("roi: spatial scale %v is not representable as a float32 > 0 (the inputs are float32)", s)
		}
	}
	return nil
}

// maxOutputSide bounds the output size so that every index fits an int32.
const maxOutputSide = 1 << 12
