package op

import (
	"os"
	"testing"

	"gorgonia.org/tensor"
)

// TestPerfTargets measures, in one run, the performance targets at 2.36M float32
// forward+backward: speed-up over the composed baseline (>= 25x), time relative to the
// single-threaded floor (<= 1.5x) and bytes allocated per step relative to one gradient tensor
// (<= 1.2x). Timing is not asserted in `make test`: this runs only with SMOOTHL1_PERF=1
// (`make bench` sets it).
func TestPerfTargets(t *testing.T) {
	if os.Getenv("SMOOTHL1_PERF") != "1" {
		t.Skip("set SMOOTHL1_PERF=1 (make bench) to measure the performance targets")
	}
	d := data("2.36M")
	fused := testing.Benchmark(func(b *testing.B) { benchGraph(b, d, tensor.Float32, fusedForwardBackward) })
	composed := testing.Benchmark(func(b *testing.B) { benchGraph(b, d, tensor.Float32, composedForwardBackward) })
	floor := testing.Benchmark(func(b *testing.B) { benchFloor(b, d, tensor.Float32) })
	gradBytes := float64(len(d.pred) * 4)
	speedup := float64(composed.NsPerOp()) / float64(fused.NsPerOp())
	ofFloor := float64(fused.NsPerOp()) / float64(floor.NsPerOp())
	alloc := float64(fused.AllocedBytesPerOp()) / gradBytes
	t.Logf("2.36M float32 forward+backward: fused %.2f ms, composed %.2f ms, floor %.2f ms",
		float64(fused.NsPerOp())/1e6, float64(composed.NsPerOp())/1e6, float64(floor.NsPerOp())/1e6)
	t.Logf("speed-up over composed %.1fx (target >= 25), fused/floor %.2fx (target <= 1.5), allocated %.3f gradient tensors (target <= 1.2; %d B/op, %d allocs/op)",
		speedup, ofFloor, alloc, fused.AllocedBytesPerOp(), fused.AllocsPerOp())
	if speedup < 25 || ofFloor > 1.5 || alloc > 1.2 {
		t.Errorf("performance targets missed")
	}
}
