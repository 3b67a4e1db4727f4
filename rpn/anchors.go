package rpn

import (
	"fmt"
	"math"

	"github.com/detlab/smoothl1/box"
)

// GenerateAnchors reproduces py-faster-rcnn's generate_anchors exactly: the reference window
// [0, 0, baseSize-1, baseSize-1]; for each ratio r (ratio-major order) ws = round(sqrt(size/r)),
// hs = round(ws*r) with round half to even (numpy's np.round); for each scale s (scale-minor)
// a box of ws*s by hs*s centred on the reference window's centre, corners c ∓ (w-1)/2.
// With baseSize 16, ratios {0.5, 1, 2} and scales {8, 16, 32} it returns the nine anchors of the
// paper (first row [-84, -40, 99, 55]). It returns nil when baseSize, a ratio or a scale is not
// finite and > 0 (NewAnchors then reports "no cell anchors"); GenerateAnchorsChecked says why.
func GenerateAnchors(baseSize float64, ratios, scales []float64) [][4]float64 {
	out, _ := GenerateAnchorsChecked(baseSize, ratios, scales)
	return out
}

// GenerateAnchorsChecked is GenerateAnchors with an error naming the bad parameter: baseSize,
// a ratio or a scale that is not finite and > 0, or no ratios or scales.
func GenerateAnchorsChecked(baseSize float64, ratios, scales []float64) ([][4]float64, error) {
	if err := checkPositive("GenerateAnchorsChecked", "baseSize", []float64{baseSize}); err != nil {
		return nil, err
	}
	if err := checkPositive("GenerateAnchorsChecked", "ratio", ratios); err != nil {
		return nil, err
	}
	if err := checkPositive("GenerateAnchorsChecked", "scale", scales); err != nil {
		return nil, err
	}
	w, h := baseSize, baseSize
	cx, cy := float64(0.5*(w-1)), float64(0.5*(h-1))
	size := w * h
	out := make([][4]float64, 0, len(ratios)*len(scales))
	for _, r := range ratios {
		ws := math.RoundToEven(math.Sqrt(size / r))
		hs := math.RoundToEven(ws * r)
		for _, s := range scales {
			aw, ah := ws*s, hs*s
			hw, hh := float64(0.5*(aw-1)), float64(0.5*(ah-1)) // rounded: no FMA (see box.Area)
			out = append(out, [4]float64{cx - hw, cy - hh, cx + hw, cy + hh})
		}
	}
	return out, nil
}

// TorchvisionCellAnchors reproduces torchvision's AnchorGenerator.generate_anchors for one
// feature map: h_r = sqrt(r), w_r = 1/h_r, anchors [-w_r s, -h_r s, w_r s, h_r s]/2 rounded half to
// even, ratio-major, size-minor (torchvision's order). It returns nil when a size or ratio is not
// finite and > 0; TorchvisionCellAnchorsChecked says why.
func TorchvisionCellAnchors(sizes, ratios []float64) [][4]float64 {
	out, _ := TorchvisionCellAnchorsChecked(sizes, ratios)
	return out
}

// TorchvisionCellAnchorsChecked is TorchvisionCellAnchors with an error naming the bad
// parameter: a size or ratio that is not finite and > 0, or no sizes or ratios.
func TorchvisionCellAnchorsChecked(sizes, ratios []float64) ([][4]float64, error) {
	if err := checkPositive("TorchvisionCellAnchors", "size", sizes); err != nil {
		return nil, err
	}
	if err := checkPositive("TorchvisionCellAnchors", "ratio", ratios); err != nil {
		return nil, err
	}
	out := make([][4]float64, 0, len(ratios)*len(sizes))
	for _, r := range ratios {
		hr := math.Sqrt(r)
		wr := 1 / hr
		for _, s := range sizes {
			ws, hs := wr*s, hr*s
			out = append(out, [4]float64{math.RoundToEven(-ws / 2), math.RoundToEven(-hs / 2), math.RoundToEven(ws / 2), math.RoundToEven(hs / 2)})
		}
	}
	return out, nil
}

// ShiftAnchors lays the cell anchors over an H x W feature map with the given stride: anchor n =
// (y*W + x)*A + a is cell anchor a shifted by (x*stride, y*stride). Both py-faster-rcnn and
// torchvision use this order.
func ShiftAnchors(cell [][4]float64, height, width int, stride float64) ([][4]float64, error) {
	return shiftAnchors("ShiftAnchors", cell, height, width, stride, stride)
}

func shiftAnchors(fn string, cell [][4]float64, height, width int, strideY, strideX float64) ([][4]float64, error) {
	if len(cell) == 0 {
		return nil, fmt.Errorf("rpn: %s: no cell anchors", fn)
	}
	if height <= 0 || width <= 0 {
		return nil, fmt.Errorf("rpn: %s: feature map %dx%d must be at least 1x1", fn, height, width)
	}
	for _, s := range []float64{strideY, strideX} {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("rpn: %s: stride must be finite and > 0, got %v", fn, s)
		}
	}
	for a, b := range cell {
		if err := box.Check(b); err != nil {
			return nil, fmt.Errorf("rpn: %s: cell anchor %d: %w", fn, a, err)
		}
	}
	A := len(cell)
	out := make([][4]float64, height*width*A)
	for y := 0; y < height; y++ {
		for x := 0; x < width; x++ {
			sx, sy := float64(float64(x)*strideX), float64(float64(y)*strideY) // no FMA (see box.Area)
			for a, c := range cell {
				out[(y*width+x)*A+a] = [4]float64{c[0] + sx, c[1] + sy, c[2] + sx, c[3] + sy}
			}
		}
	}
	return out, nil
}

// TorchvisionLevels makes the anchors of torchvision's AnchorGenerator for an FPN: level l has
// cell anchors TorchvisionCellAnchorsChecked([]float64{sizes[l]}, ratios) on the feature map
// maps[l] = {H, W}, with torchvision's strides imageH / H and imageW / W in integer division
// (they differ where the division is uneven: 800x1216 with a 13x19 map gives 61 by 64). imageH
// and imageW are the padded batch's size. Errors name the level.
func TorchvisionLevels(imageH, imageW int, maps [][2]int, sizes, ratios []float64) ([]*Anchors, error) {
	if len(maps) == 0 || len(maps) != len(sizes) {
		return nil, fmt.Errorf("rpn: TorchvisionLevels: %d feature maps and %d sizes; want one size per map", len(maps), len(sizes))
	}
	if imageH <= 0 || imageW <= 0 {
		return nil, fmt.Errorf("rpn: TorchvisionLevels: image %dx%d must be at least 1x1", imageH, imageW)
	}
	levels := make([]*Anchors, len(maps))
	for l, hw := range maps {
		cell, err := TorchvisionCellAnchorsChecked([]float64{sizes[l]}, ratios)
		if err != nil {
			return nil, fmt.Errorf("rpn: TorchvisionLevels: level %d: %w", l, err)
		}
		if hw[0] <= 0 || hw[1] <= 0 || hw[0] > imageH || hw[1] > imageW {
			return nil, fmt.Errorf("rpn: TorchvisionLevels: level %d: feature map %dx%d must be at least 1x1 and at most the image %dx%d", l, hw[0], hw[1], imageH, imageW)
		}
		if levels[l], err = NewAnchorsStrides(cell, hw[0], hw[1], float64(imageH/hw[0]), float64(imageW/hw[1])); err != nil {
			return nil, fmt.Errorf("rpn: TorchvisionLevels: level %d: %w", l, err)
		}
	}
	return levels, nil
}

// checkPositive reports an empty list or a value that is not finite and > 0.
func checkPositive(fn, name string, vs []float64) error {
	if len(vs) == 0 {
		return fmt.Errorf("rpn: %s: no %ss", fn, name)
	}
	for i, v := range vs {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("rpn: %s: %s %d is %v, want finite and > 0", fn, name, i, v)
		}
	}
	return nil
}
