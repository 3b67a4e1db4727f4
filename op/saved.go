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
// The buffer is reused: the next run's forward rewrites it, so the gradient value of one run
// changes in place at the next (copy it to keep it). That is safe for the machines because only
// the loss node the op was built for writes it (below), once per run, and the TapeMachine reruns
// only after Reset, which empties every register: no register of the new run can hold the
// buffer before the diff op hands it out again. The LispMachine's DoDiff only reads it.
//
// The owner: SmoothL1 records the input nodes it built the loss from. A forward saves only when
// the values it is given are those nodes' current values, that is, when it runs as that node.
// The same op value applied to other inputs (Node.Op reused with G.ApplyOp) computes its loss
// and recomputes its gradient, and never touches the buffer.
//
// The save is written in one place (the owner's forward) and checked before use. The diff op
// takes it only when every check passes:
//   - the forward wrote it and nobody has taken it since (fresh);
//   - the forward read the very values the diff op is given (the same pred, target and weight
//     values, and the same forward output value: same run, same node);
//   - no forward or diff op is using it at that moment (busy).
//
// Otherwise, and always for second-order ops, it recomputes the factor from the inputs into a
// new tensor, with the same arithmetic (gradPred), so both paths give the same bits. A gradient
// asked twice, two losses on the same inputs, a changed value between runs or a forward that did
// not run all fall back to the recomputation, never to a stale save. Once taken, the save drops
// its references to the values it was made from.
type saved struct {
	wanted atomic.Bool // a gradient was asked of this op: its forward saves the factor

	// taken and recomputed count the diff op's two paths (for tests and profiling).
	taken, recomputed atomic.Int64

	mu    sync.Mutex
	owner []*G.Node // the input nodes of the loss node the op was built for
	read  []G.Value // the input values the last saving forward read (nil once taken)
	out   G.Value   // the value it returned
	buf   *tensor.Dense
	fresh bool // written by the last forward, not taken since
	busy  bool // a forward is writing buf, or a diff op is reading it
}

// neverSave turns saving off, so that tests can compare the recomputation with the save.
var neverSave = false

// want records that a gradient was asked of the op: from now on its forward saves the factor.
func (s *saved) want() {
	if s != nil {
		s.wanted.Store(true)
	}
}

// setOwner records the input nodes of the loss node the op was built for.
func (s *saved) setOwner(nodes []*G.Node) {
	s.mu.Lock()
	s.owner = append([]*G.Node(nil), nodes...)
	s.mu.Unlock()
}

// beginForward returns the buffer the forward should write the factor into, or nil when it
// should not save: no gradient asked, not the owner's inputs, or the buffer in use. A non-nil
// buffer must be released with endForward; dt and shape are pred's.
func (s *saved) beginForward(vals []G.Value, dt tensor.Dtype, shape tensor.Shape) *tensor.Dense {
	if s == nil || !s.wanted.Load() || neverSave {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy || len(s.owner) != len(vals) {
		return nil
	}
	for i, n := range s.owner {
		if !sameValue(n.Value(), vals[i]) {
			return nil
		}
	}
	s.busy, s.fresh = true, false
	s.read, s.out = nil, nil
	if s.buf == nil || s.buf.Dtype() != dt || !s.buf.Shape().Eq(shape) {
		s.buf = tensor.New(tensor.Of(dt), tensor.WithShape(shape.Clone()...))
	}
	return s.buf
}

// endForward records what the forward read and returned, making the save fresh.
func (s *saved) endForward(vals []G.Value, out G.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy = false
	s.read = append([]G.Value(nil), vals...)
	s.out = out
	s.fresh = true
}

// take returns the fresh save matching the forward inputs vals and output out, or nil. With
// handOut the buffer becomes the caller's gradient value until the next run's forward; without,
// the caller reads it and must call release.
func (s *saved) take(vals []G.Value, out G.Value, handOut bool) *tensor.Dense {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.fresh && !s.busy && s.buf != nil && sameValue(s.out, out) && len(s.read) == len(vals)
	for i := 0; ok && i < len(vals); i++ {
		ok = sameValue(s.read[i], vals[i])
	}
	if !ok {
		s.recomputed.Add(1)
		return nil
	}
	s.taken.Add(1)
	s.fresh = false
	s.read, s.out = nil, nil
	s.busy = !handOut
	return s.buf
}

// release ends a read started by take without handOut.
func (s *saved) release() {
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
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
