package op

import (
	"sync"
	"sync/atomic"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Saving for backward (PyTorch's ctx.save_for_backward, made explicit).
//
// Once a gradient has been asked of a loss node (SymDiff at graph-building time, or DoDiff on
// the LispMachine), its forward pass writes, in the same sweep that sums the loss, the factor
//
//	factor_i = T( norm * w_out_i * w_in_i * f'(x_i) )      (T: the dtype; norm 1 for None)
//
// into a buffer of pred's shape that the op owns. The diff op then only multiplies it by the
// upstream gradient, in place (nothing to do for an upstream of 1, the usual case), and returns
// the buffer as dL/dpred: one read of the four inputs per training step instead of two, and no
// gradient tensor allocated per step.
//
// The buffer is reused: the next run's forward rewrites it. That is safe for the machines,
// because the TapeMachine reruns only after Reset, which empties every register (so no register
// of a later step can hold it before the diff op hands it out again), and the LispMachine's
// DoDiff only reads it. It means, as with PyTorch's .grad, that the gradient value of one run is
// overwritten by the next: copy it to keep it.
//
// The save is owned by one entry, written in one place (the forward) and checked before use. The
// diff op takes it only when every check passes:
//   - the forward wrote it and nobody has taken it since (fresh);
//   - the forward read the very values the diff op is given (the same pred, target and weight
//     values, and the same forward output value: same run, same node);
//   - no forward or diff op is using it at that moment (busy).
//
// Otherwise, and always for second-order ops, it recomputes the factor from the inputs into a
// new tensor, with the same arithmetic (gradPred), so both paths give the same bits. A gradient
// asked twice, two losses on the same inputs, a changed value between runs or a forward that did
// not run all fall back to the recomputation, never to a stale save.
//
// Entries are keyed by the pred value, so an op value shared between graphs (Node.Op applied
// elsewhere) keeps one save per graph; at most maxSaves are kept. Two graphs run at once that
// share both the op value and the pred tensor share its buffer: give each graph its own op.
type saved struct {
	wanted atomic.Bool // a gradient was asked of this op: its forward saves the factor

	// taken and recomputed count the diff op's two paths (for tests and profiling).
	taken, recomputed atomic.Int64

	mu      sync.Mutex
	entries []*saveEntry // most recently used last
}

const maxSaves = 4

// neverSave turns saving off, so that tests can compare the recomputation with the save.
var neverSave = false

type saveEntry struct {
	key   G.Value       // pred's value as given to Do
	read  [4]G.Value    // the input values the forward read (nil past Arity)
	out   G.Value       // the value the forward returned
	buf   *tensor.Dense // the factor, pred's shape and dtype (also the gradient once handed out)
	fresh bool          // written by the last forward, not taken since
	busy  bool          // a forward is writing buf, or a diff op is reading it
}

// want records that a gradient was asked of the op: from now on its forward saves the factor.
func (s *saved) want() {
	if s != nil {
		s.wanted.Store(true)
	}
}

// beginForward returns the entry and buffer the forward should write the factor into, or nils
// when it should not save (no gradient asked, or the entry is in use). A non-nil entry must be
// ended with endForward; dt and shape are pred's.
func (s *saved) beginForward(vals []G.Value, dt tensor.Dtype, shape tensor.Shape) (*saveEntry, *tensor.Dense) {
	if s == nil || !s.wanted.Load() || neverSave {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(vals[0])
	if e == nil {
		e = &saveEntry{key: vals[0]}
		if len(s.entries) >= maxSaves {
			for i, old := range s.entries {
				if !old.busy {
					s.entries = append(s.entries[:i], s.entries[i+1:]...)
					break
				}
			}
		}
		if len(s.entries) >= maxSaves {
			return nil, nil
		}
		s.entries = append(s.entries, e)
	}
	if e.busy {
		return nil, nil
	}
	e.busy, e.fresh = true, false
	if e.buf == nil || e.buf.Dtype() != dt || !e.buf.Shape().Eq(shape) {
		e.buf = tensor.New(tensor.Of(dt), tensor.WithShape(shape.Clone()...))
	}
	return e, e.buf
}

// endForward records what the forward read and returned, making the save fresh; ok false (the
// forward failed) leaves it stale.
func (s *saved) endForward(e *saveEntry, vals []G.Value, out G.Value, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.busy = false
	if !ok {
		return
	}
	e.read = [4]G.Value{}
	copy(e.read[:], vals)
	e.out = out
	e.fresh = true
}

// take returns the fresh save matching the forward inputs vals and output out, or nil. With
// handOut the buffer becomes the caller's gradient value until the next forward; without, the
// caller reads it and must call release.
func (s *saved) take(vals []G.Value, out G.Value, handOut bool) (*saveEntry, *tensor.Dense) {
	if s == nil || len(vals) == 0 || len(vals) > 4 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(vals[0])
	if e == nil || !e.fresh || e.busy || e.buf == nil || !sameValue(e.out, out) {
		s.recomputed.Add(1)
		return nil, nil
	}
	for i, v := range vals {
		if !sameValue(e.read[i], v) {
			s.recomputed.Add(1)
			return nil, nil
		}
	}
	s.taken.Add(1)
	buf := e.buf
	e.fresh = false
	if handOut {
		return nil, buf
	}
	e.busy = true
	return e, buf
}

// release ends a read started by take without handOut.
func (s *saved) release(e *saveEntry) {
	if e == nil {
		return
	}
	s.mu.Lock()
	e.busy = false
	s.mu.Unlock()
}

// lookup finds key's entry and moves it to the end (most recently used). s.mu is held.
func (s *saved) lookup(key G.Value) *saveEntry {
	for i, e := range s.entries {
		if sameValue(e.key, key) {
			copy(s.entries[i:], s.entries[i+1:])
			s.entries[len(s.entries)-1] = e
			return e
		}
	}
	return nil
}

// sameValue reports whether a and b are the same value object (pointer identity; values of
// other kinds never match, so an unknown kind only costs the recomputation).
func sameValue(a, b G.Value) bool {
	switch x := a.(type) {
	case *tensor.Dense:
		y, ok := b.(*tensor.Dense)
		return ok && x == y
	case *G.F64:
		y, ok := b.(*G.F64)
		return ok && x == y
	case *G.F32:
		y, ok := b.(*G.F32)
		return ok && x == y
	}
	return false
}
