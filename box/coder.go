package box

import (
	"fmt"
	"math"
)

// Coder encodes ground-truth boxes relative to reference boxes (anchors, proposals) and decodes
// deltas back to boxes: py-faster-rcnn's bbox_transform / bbox_transform_inv, torchvision's
// BoxCoder.
type Coder struct {
	// PlusOne uses py-faster-rcnn's pixel convention: w = x2 - x1 + 1.
	PlusOne bool
	// Weights multiply (dx, dy, dw, dh) when encoding and divide them when decoding
	// (torchvision's BoxCoder weights; the RPN uses 1, 1, 1, 1, the box head 10, 10, 5, 5).
	Weights [4]float64
	// ClampLog caps dw and dh before exp when decoding (torchvision: ln(1000/16)); 0 means none.
	ClampLog float64
}

// PyFasterRCNNCoder is py-faster-rcnn's bbox_transform / bbox_transform_inv.
func PyFasterRCNNCoder() Coder { return Coder{PlusOne: true, Weights: [4]float64{1, 1, 1, 1}} }

// TorchvisionCoder is torchvision's BoxCoder((1, 1, 1, 1)) with its default clamp ln(1000/16).
func TorchvisionCoder() Coder {
	return Coder{Weights: [4]float64{1, 1, 1, 1}, ClampLog: math.Log(1000.0 / 16)}
}

// Validate reports a weight that is not finite and > 0, or a negative or NaN ClampLog.
func (c Coder) Validate() error {
	for k, w := range c.Weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("box: Coder weight %d is %v, want finite and > 0", k, w)
		}
	}
	if c.ClampLog < 0 || math.IsNaN(c.ClampLog) {
		return fmt.Errorf("box: Coder ClampLog is %v, want >= 0 (0: no clamp)", c.ClampLog)
	}
	return nil
}

// Encode returns the regression target (dx, dy, dw, dh) of gt relative to ref:
//
//	dx = wx (gcx - rcx)/rw, dy = wy (gcy - rcy)/rh, dw = ww ln(gw/rw), dh = wh ln(gh/rh)
//
// with w = x2 - x1 (+1) and cx = x1 + w/2. Encode and Decode do not validate (they are pure
// arithmetic on hot paths): boxes of zero width or height give ±Inf or NaN, NaN propagates, and a
// coder with a zero weight divides by zero. Call Validate on a hand-made coder.
func (c Coder) Encode(ref, gt [4]float64) [4]float64 { return c.EncodeMemo(ref, gt, nil) }

// Decode applies deltas d to ref: cx = dx*rw + rcx, w = exp(dw)*rw (dw clamped at ClampLog),
// box [cx - w/2, cy - h/2, cx + w/2, cy + h/2]. With PlusOne this is py-faster-rcnn's
// bbox_transform_inv, which does not subtract 1 from x2: Decode(a, Encode(a, g)) = g + (0, 0, 1, 1).
func (c Coder) Decode(ref, d [4]float64) [4]float64 {
	o := one(c.PlusOne)
	rw, rh := ref[2]-ref[0]+o, ref[3]-ref[1]+o
	rcx, rcy := ref[0]+float64(0.5*rw), ref[1]+float64(0.5*rh)
	dx, dy := d[0]/c.Weights[0], d[1]/c.Weights[1]
	dw, dh := d[2]/c.Weights[2], d[3]/c.Weights[3]
	if c.ClampLog > 0 {
		dw, dh = math.Min(dw, c.ClampLog), math.Min(dh, c.ClampLog)
	}
	cx, cy := float64(dx*rw)+rcx, float64(dy*rh)+rcy
	w, h := float64(math.Exp(dw)*rw), float64(math.Exp(dh)*rh)
	hw, hh := float64(0.5*w), float64(0.5*h)
	return [4]float64{cx - hw, cy - hh, cx + hw, cy + hh}
}

// LogMemo remembers ln(q) for recent ratios q, so EncodeMemo need not take the logarithm of a
// ratio gw/rw it has seen: the anchors matched to one gt share a few widths and heights. It
// is direct-mapped (a miss overwrites one entry) and caches math.Log's own results, so the
// bits never depend on its state. The zero value is ready; it is not safe for concurrent use.
type LogMemo struct {
	keys, logs []float64
}

const logMemoBits = 11

func (m *LogMemo) log(q float64) float64 {
	if m == nil {
		return math.Log(q)
	}
	if m.keys == nil {
		m.keys, m.logs = make([]float64, 1<<logMemoBits), make([]float64, 1<<logMemoBits)
		for i := range m.keys {
			m.keys[i] = math.NaN() // matches no q
		}
	}
	bits := math.Float64bits(q)
	i := (bits * 0x9E3779B97F4A7C15) >> (64 - logMemoBits)
	if m.keys[i] == q {
		return m.logs[i]
	}
	l := math.Log(q)
	m.keys[i], m.logs[i] = q, l
	return l
}

// EncodeMemo is Encode, bit for bit, with the logarithms looked up in m first (nil: none).
func (c Coder) EncodeMemo(ref, gt [4]float64, m *LogMemo) [4]float64 {
	o := one(c.PlusOne)
	// products rounded on their own (float64(...)): no FMA, same bits on GOAMD64=v1 and v3
	rw, rh := ref[2]-ref[0]+o, ref[3]-ref[1]+o
	rcx, rcy := ref[0]+float64(0.5*rw), ref[1]+float64(0.5*rh)
	gw, gh := gt[2]-gt[0]+o, gt[3]-gt[1]+o
	gcx, gcy := gt[0]+float64(0.5*gw), gt[1]+float64(0.5*gh)
	return [4]float64{
		c.Weights[0] * (gcx - rcx) / rw,
		c.Weights[1] * (gcy - rcy) / rh,
		c.Weights[2] * m.log(gw/rw),
		c.Weights[3] * m.log(gh/rh),
	}
}
