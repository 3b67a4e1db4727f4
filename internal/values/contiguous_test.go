package values

import (
	"testing"

	"gorgonia.org/tensor"
)

// iota64 is a tensor of the given shape holding 0, 1, 2, ... (row-major).
func iota64(shape ...int) *tensor.Dense {
	n := tensor.Shape(shape).TotalSize()
	data := make([]float64, n)
	for i := range data {
		data[i] = float64(i)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}

// atAll reads every element of d through tensor's own indexing (At), in row-major order: the
// reference each view case is checked against.
func atAll(t *testing.T, d *tensor.Dense) []float64 {
	t.Helper()
	shape := d.Shape()
	idx := make([]int, len(shape))
	var out []float64
	for i := 0; i < shape.TotalSize(); i++ {
		v, err := d.At(idx...)
		if err != nil {
			t.Fatalf("At(%v): %v", idx, err)
		}
		out = append(out, v.(float64))
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out
}

func TestContiguousViews(t *testing.T) {
	slice := func(d *tensor.Dense, s ...tensor.Slice) *tensor.Dense {
		v, err := d.Slice(s...)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*tensor.Dense)
	}
	transposed := func(d *tensor.Dense) *tensor.Dense {
		c := d.Clone().(*tensor.Dense)
		if err := c.T(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	fortran := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(iota64(12).Data()), tensor.AsFortran(nil))
	for _, c := range []struct {
		name   string
		d      *tensor.Dense
		copies bool // a copy is needed (the values are not contiguous from the start of Data)
	}{
		{"fresh", iota64(3, 4), false},
		{"leading rows", slice(iota64(4, 4), tensor.S(1, 3)), false},
		{"columns", slice(iota64(4, 4), nil, tensor.S(0, 2)), true},
		{"one column", slice(iota64(4, 4), nil, tensor.S(2)), true},
		{"inner columns 3-D", slice(iota64(2, 3, 5), nil, nil, tensor.S(1, 4)), true},
		{"middle axis 3-D", slice(iota64(2, 3, 5), nil, tensor.S(1, 3)), true},
		{"stepped", slice(iota64(10), tensor.S(1, 9, 3)), true},
		{"transposed", transposed(iota64(2, 3)), true},
		{"transposed 3-D", transposed(iota64(2, 3, 4)), true},
		{"column-major", fortran, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := atAll(t, c.d)
			got, err := Contiguous(c.d)
			if err != nil {
				t.Fatal(err)
			}
			if (got != c.d) != c.copies {
				t.Fatalf("copied = %t, want %t", got != c.d, c.copies)
			}
			if !got.Shape().Eq(c.d.Shape()) {
				t.Fatalf("shape %v, want %v", got.Shape(), c.d.Shape())
			}
			data := got.Data().([]float64)[:len(want)]
			for i := range want {
				if data[i] != want[i] {
					t.Fatalf("element %d = %v, want %v (all: %v, want %v)", i, data[i], want[i], data, want)
				}
			}
			if f := Float64s(c.d); len(f) != len(want) || f[len(f)-1] != want[len(want)-1] || f[0] != want[0] {
				t.Fatalf("Float64s = %v, want %v", f, want)
			}
		})
	}
}

func TestContiguousEmptyAndFloat32(t *testing.T) {
	e := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(0, 3))
	if got, err := Contiguous(e); err != nil || got != e {
		t.Fatalf("empty: %v, %v", got, err)
	}
	d := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	v, _ := d.Slice(nil, tensor.S(1, 3))
	got, err := Contiguous(v.(*tensor.Dense))
	if err != nil {
		t.Fatal(err)
	}
	// hand-derived: columns 1..2 of [[1 2 3] [4 5 6]]
	want := []float32{2, 3, 5, 6}
	for i, x := range got.Data().([]float32) {
		if x != want[i] {
			t.Fatalf("got %v, want %v", got.Data(), want)
		}
	}
}
