package roi

import (
	"math"
	"sync"
	"sync/atomic"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Saving Pool's argmaxes for the backward pass (op/saved.go's pattern, for an index buffer).
//
// Once a gradient has been asked of a Pool node (SymDiff when the graph is built, or DoDiff on
// the LispMachine), its forward pass writes every bin's argmax (a pixel index in its plane,
// noPixel for none) into a buffer of the output's size that the op owns and reuses, in the
// same pass that finds the maxima. The scatter then only adds each upstream element at its
// saved argmax, instead of finding the argmaxes again from the features.
//
// The save is checked before use. The scatter takes it only when:
//   - the forward wrote it and nobody has taken it since (fresh);
//   - the scatter is given the very values the forward read and returned: the same features,
//     rois and output objects (pointer identity; the save holds references to them until it
//     is taken, so no other value can take their addresses);
//   - the features and rois still hold the values the forward read, bit for bit (the forward
//     keeps a copy of their bits and the scatter compares them: a tensor changed in place
//     between the two, which gorgonia's machines never do but a caller of Do can, recomputes);
//   - no forward or scatter is using it at that moment (busy).
//
// Otherwise it finds the argmaxes from the features, as the forward does (poolPass), so both
// paths give the same bits. A gradient asked twice, an op value shared by nodes or graphs, an
// output that Pool did not return, or a forward that failed or did not run all fall back to
// the recomputation, never to a stale save. The gather (second order) always recomputes.
type poolSave struct {
	wanted atomic.Bool // a gradient was asked of the op: its forward saves the argmaxes

	// taken and recomputed count the scatter's two paths (for tests and profiling).
	taken, recomputed atomic.Int64

	mu                  sync.Mutex
	features, rois, out G.Value // what the last saving forward read and returned (nil once taken)
	at                  []int32
	fresh, busy         bool
	// the bits of the features' and rois' elements (row-major) when the forward read them
	featureBits, roiBits []uint64
}

// neverSave turns saving off, so that tests can compare the recomputation with the save.
var neverSave = false

// want records that a gradient was asked of the op.
func (s *poolSave) want() {
	if s != nil {
		s.wanted.Store(true)
	}
}

// begin returns the buffer (n elements) the forward should write the argmaxes into, or nil when
// it should not save: no gradient asked, or the buffer in use. A non-nil buffer must be
// released with end.
func (s *poolSave) begin(n int) []int32 {
	if s == nil || !s.wanted.Load() || neverSave || n == 0 {
		return nil // n = 0: nothing to save
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return nil
	}
	s.busy, s.fresh = true, false
	s.features, s.rois, s.out = nil, nil, nil
	if len(s.at) != n {
		s.at = make([]int32, n)
	}
	return s.at
}

// end releases the buffer taken by begin or take; with ok (after begin), it records what the
// forward read (the values, and fd and rd: their contiguous elements, whose bits it copies) and
// returned, making the save fresh.
func (s *poolSave) end(features, rois, out G.Value, fd, rd *tensor.Dense, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy = false
	if ok {
		s.features, s.rois, s.out, s.fresh = features, rois, out, true
		s.featureBits, s.roiBits = appendBits(s.featureBits[:0], fd), appendBits(s.roiBits[:0], rd)
	}
}

// take returns the fresh save made from features and rois that returned out, or nil; fd and rd
// are their contiguous elements now. A non-nil buffer must be released with end (not ok).
func (s *poolSave) take(features, rois, out G.Value, fd, rd *tensor.Dense) []int32 {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fresh || s.busy || !sameDense(s.features, features) || !sameDense(s.rois, rois) || !sameDense(s.out, out) ||
		!sameBits(s.roiBits, rd) || !sameBits(s.featureBits, fd) {
		s.recomputed.Add(1)
		return nil
	}
	s.taken.Add(1)
	s.fresh, s.busy = false, true
	s.features, s.rois, s.out = nil, nil, nil
	return s.at
}

// sameDense reports whether a and b are the same *tensor.Dense (other kinds never match, so they
// only cost the recomputation).
func sameDense(a, b G.Value) bool {
	x, ok := a.(*tensor.Dense)
	y, ok2 := b.(*tensor.Dense)
	return ok && ok2 && x == y
}

// appendBits appends the bits of d's elements (float32 or float64, contiguous) to dst.
func appendBits(dst []uint64, d *tensor.Dense) []uint64 {
	switch v := d.Data().(type) {
	case []float32:
		for _, x := range v[:d.Shape().TotalSize()] {
			dst = append(dst, uint64(math.Float32bits(x)))
		}
	case []float64:
		for _, x := range v[:d.Shape().TotalSize()] {
			dst = append(dst, math.Float64bits(x))
		}
	}
	return dst
}

// sameBits reports whether d's elements have the bits in bits.
func sameBits(bits []uint64, d *tensor.Dense) bool {
	n := d.Shape().TotalSize()
	if len(bits) != n {
		return false
	}
	switch v := d.Data().(type) {
	case []float32:
		for i, x := range v[:n] {
			if uint64(math.Float32bits(x)) != bits[i] {
				return false
			}
		}
	case []float64:
		for i, x := range v[:n] {
			if math.Float64bits(x) != bits[i] {
				return false
			}
		}
	default:
		return false
	}
	return true
}
