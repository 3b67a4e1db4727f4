// Package opkit holds what every gorgonia op of this library needs, once: the hash gorgonia
// merges nodes by, the graph check that admits constants, reading a run-time input (shape,
// dtype, views), and adding a gradient into a machine's buffer. op, rpn, roi and fastrcnn use
// it, as gorgonia keeps checkArity and simpleHash in its utils.go.
package opkit

import (
	"fmt"
	"hash"
	"hash/fnv"
	"strings"

	"github.com/detlab/smoothl1/internal/values"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Hash is the FNV-32a of the op's WriteHash, the Hashcode gorgonia merges nodes by. WriteHash must
// cover every field that changes the result.
func Hash(o interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// OneGraph reports nodes of different graphs, naming them: "target belongs to a different graph
// than pred". Constants (G.NewConstant) belong to no graph and join any, as with gorgonia's own
// ops; at least one node must belong to a graph. nil nodes are skipped (optional inputs).
func OneGraph(names []string, nodes ...*G.Node) error {
	var g *G.ExprGraph
	first := ""
	var present []string
	for i, n := range nodes {
		if n == nil {
			continue
		}
		present = append(present, names[i])
		switch ng := n.Graph(); {
		case ng == nil:
		case g == nil:
			g, first = ng, names[i]
		case ng != g:
			return fmt.Errorf("%s belongs to a different graph than %s", names[i], first)
		}
	}
	if g == nil {
		return fmt.Errorf("%s are all constants (G.NewConstant), so they belong to no graph; make one of them a graph node", strings.Join(present, ", "))
	}
	return nil
}

// DenseInput reads the run-time value of the named input of op: a float tensor of the given shape
// and dtype (the zero Dtype accepts float32 and float64), returned contiguous (a view is read
// through a row-major copy, values.Contiguous). Errors name op, the input and the values.
func DenseInput(op fmt.Stringer, name string, v G.Value, shape tensor.Shape, dt tensor.Dtype) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok || d == nil {
		return nil, fmt.Errorf("%v: %s is %T with shape %v, want a *tensor.Dense of shape %v", op, name, v, values.ShapeOf(v), shape)
	}
	if !d.Shape().Eq(shape) {
		return nil, fmt.Errorf("%v: %s has shape %v, want %v", op, name, d.Shape(), shape)
	}
	if d.Dtype() != tensor.Float64 && d.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("%v: %s has dtype %v, want float32 or float64", op, name, d.Dtype())
	}
	if dt != (tensor.Dtype{}) && d.Dtype() != dt {
		return nil, fmt.Errorf("%v: %s has dtype %v, want %v", op, name, d.Dtype(), dt)
	}
	c, err := values.Contiguous(d)
	if err != nil {
		return nil, fmt.Errorf("%v: %s: %w", op, name, err)
	}
	return c, nil
}

// Accumulate adds d (row-major, buf's element count) into the gradient buffer buf, or subtracts it,
// element by element: buf may be a view when its node's value is one (the LispMachine makes
// gradient buffers like the values).
func Accumulate[T float32 | float64](buf *tensor.Dense, d []T, subtract bool) error {
	if buf.Shape().TotalSize() != len(d) {
		return fmt.Errorf("gradient buffer of shape %v for %d values", buf.Shape(), len(d))
	}
	if len(d) == 0 {
		return nil
	}
	offsets, err := values.Offsets(buf)
	if err != nil {
		return err
	}
	dst, ok := buf.Data().([]T)
	if !ok {
		return fmt.Errorf("gradient buffer has dtype %v", buf.Dtype())
	}
	sign := T(1)
	if subtract {
		sign = -1
	}
	if offsets == nil {
		dst = dst[:len(d)]
		for i, v := range d {
			dst[i] += sign * v
		}
		return nil
	}
	for i, off := range offsets {
		dst[off] += sign * d[i]
	}
	return nil
}
