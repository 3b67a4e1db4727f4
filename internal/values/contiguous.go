package values

import (
	"fmt"

	"gorgonia.org/tensor"
)

// Contiguous returns d when its elements lie in row-major order at the start of its data (any
// freshly made tensor, and a view of whole leading rows), else a new row-major tensor holding a
// copy of the same values. Views (a column Slice, a .T(), a column-major tensor) keep
// the whole backing span in Data(), laid out by their strides: reading that span as if it
// were contiguous is wrong, and may read past the view's elements. The contiguous case costs
// nothing, so ops call it on every input. Empty and scalar tensors are returned as they are.
func Contiguous(d *tensor.Dense) (*tensor.Dense, error) {
	if d == nil || d.IsScalar() {
		return d, nil
	}
	shape := d.Shape()
	size := shape.TotalSize()
	if size == 0 {
		return d, nil
	}
	strides := d.Strides()
	if len(strides) != len(shape) {
		return nil, fmt.Errorf("values: tensor of shape %v has strides %v", shape, strides)
	}
	if rowMajor(shape, strides) && !d.DataOrder().IsColMajor() {
		if dataLen(d) >= size {
			return d, nil
		}
	}
	switch src := d.Data().(type) {
	case []float64:
		return gather(d, src, tensor.Float64)
	case []float32:
		return gather(d, src, tensor.Float32)
	case []int:
		return gather(d, src, tensor.Int)
	case []int64:
		return gather(d, src, tensor.Int64)
	case []int32:
		return gather(d, src, tensor.Int32)
	case []bool:
		return gather(d, src, tensor.Bool)
	}
	return nil, fmt.Errorf("values: cannot read a non-contiguous %v tensor of shape %v", d.Dtype(), shape)
}

// rowMajor reports whether strides are the packed row-major strides of shape (axes of size 1
// may have any stride).
func rowMajor(shape tensor.Shape, strides []int) bool {
	want := 1
	for k := len(shape) - 1; k >= 0; k-- {
		if shape[k] != 1 && strides[k] != want {
			return false
		}
		want *= shape[k]
	}
	return true
}

func dataLen(d *tensor.Dense) int {
	switch s := d.Data().(type) {
	case []float64:
		return len(s)
	case []float32:
		return len(s)
	case []int:
		return len(s)
	case []int64:
		return len(s)
	case []int32:
		return len(s)
	case []bool:
		return len(s)
	}
	return -1
}

// Offsets returns, for each element of d in row-major order, its index in d.Data(): the layout
// of a view, to read it (Contiguous) or to write into it (a gradient buffer a machine made in the
// shape of a view). It returns nil for a contiguous tensor, whose element i is Data()[i].
func Offsets(d *tensor.Dense) ([]int, error) {
	if d == nil || d.IsScalar() || d.Shape().TotalSize() == 0 {
		return nil, nil
	}
	shape, strides := d.Shape(), d.Strides()
	if len(strides) != len(shape) {
		return nil, fmt.Errorf("values: tensor of shape %v has strides %v", shape, strides)
	}
	if rowMajor(shape, strides) && !d.DataOrder().IsColMajor() && dataLen(d) >= shape.TotalSize() {
		return nil, nil
	}
	last := 0
	for k, n := range shape {
		if strides[k] < 0 {
			return nil, fmt.Errorf("values: tensor of shape %v has negative strides %v", shape, strides)
		}
		last += (n - 1) * strides[k]
	}
	if n := dataLen(d); last >= n {
		return nil, fmt.Errorf("values: tensor of shape %v and strides %v needs %d elements, its data has %d", shape, strides, last+1, n)
	}
	out := make([]int, shape.TotalSize())
	idx := make([]int, len(shape))
	off := 0
	for i := range out {
		out[i] = off
		// advance the row-major index, carrying into the earlier axes
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			off += strides[k]
			if idx[k] < shape[k] {
				break
			}
			off -= idx[k] * strides[k]
			idx[k] = 0
		}
	}
	return out, nil
}

// gather copies the elements of d, whose data (starting at the view's first element) is src,
// into a new row-major tensor: element (i_0, ..., i_k) is src[Σ i_j * stride_j].
func gather[T any](d *tensor.Dense, src []T, dt tensor.Dtype) (*tensor.Dense, error) {
	offsets, err := Offsets(d)
	if err != nil {
		return nil, err
	}
	out := make([]T, d.Shape().TotalSize())
	for i, off := range offsets {
		out[i] = src[off]
	}
	return tensor.New(tensor.Of(dt), tensor.WithShape(d.Shape().Clone()...), tensor.WithBacking(out)), nil
}
