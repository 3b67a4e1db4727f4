// Package values reads gorgonia values: scalars in their several forms, shapes of possibly nil
// values, and float data as float64. Shared by op, rpn and gradcheck.
package values

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Scalar reads a scalar value: *G.F64, *G.F32 or a one-element float tensor.
func Scalar(v G.Value) (float64, error) {
	switch s := v.(type) {
	case *G.F64:
		return float64(*s), nil
	case *G.F32:
		return float64(*s), nil
	case *tensor.Dense:
		if s.Shape().TotalSize() == 1 {
			switch d := s.Data().(type) {
			case []float64:
				return d[0], nil
			case []float32:
				return float64(d[0]), nil
			case float64:
				return d, nil
			case float32:
				return float64(d), nil
			}
		}
	}
	return 0, fmt.Errorf("value is %T with shape %v, want a float scalar", v, ShapeOf(v))
}

// ShapeOf is v's shape, nil for a nil value.
func ShapeOf(v G.Value) tensor.Shape {
	if v == nil {
		return nil
	}
	return v.Shape()
}

// Float64s copies a float value's elements as float64s in row-major order, views included (nil
// for other data; an empty tensor gives an empty slice, since tensor's Data panics on empty
// tensors).
func Float64s(v G.Value) []float64 {
	if v == nil {
		return nil
	}
	if d, ok := v.(*tensor.Dense); ok {
		if d.Shape().TotalSize() == 0 {
			return []float64{}
		}
		c, err := Contiguous(d)
		if err != nil {
			return nil
		}
		v = c
	}
	switch d := v.Data().(type) {
	case []float64:
		return append([]float64(nil), d...)
	case []float32:
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x)
		}
		return out
	case float64:
		return []float64{d}
	case float32:
		return []float64{float64(d)}
	}
	return nil
}

// Dense makes a float32 or float64 tensor of the given shape from float64 data (copied).
func Dense(dt tensor.Dtype, shape tensor.Shape, data []float64) *tensor.Dense {
	if dt == tensor.Float32 {
		d := make([]float32, len(data))
		for i, v := range data {
			d[i] = float32(v)
		}
		return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(d))
	}
	return tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(append([]float64(nil), data...)))
}
