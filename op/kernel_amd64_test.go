//go:build amd64 && gc && !purego

package op

import (
	"testing"
	"unsafe"
)

// TestKconstOffsets pins the offsets of kconst's fields that kernel_amd64.s reads (beta 0,
// quad 8, offset 16, slope 24, scale 32, absMask 40, signMask 48, one 56): reordering the struct
// must fail here, not silently in the kernels.
func TestKconstOffsets(t *testing.T) {
	var c kconst
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"beta", unsafe.Offsetof(c.beta), 0},
		{"quad", unsafe.Offsetof(c.quad), 8},
		{"offset", unsafe.Offsetof(c.offset), 16},
		{"slope", unsafe.Offsetof(c.slope), 24},
		{"scale", unsafe.Offsetof(c.scale), 32},
		{"absMask", unsafe.Offsetof(c.absMask), 40},
		{"signMask", unsafe.Offsetof(c.signMask), 48},
		{"one", unsafe.Offsetof(c.one), 56},
	} {
		if f.got != f.want {
			t.Errorf("kconst.%s at offset %d, kernel_amd64.s reads it at %d", f.name, f.got, f.want)
		}
	}
}
