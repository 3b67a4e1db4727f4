package op

import (
	"os"
	"runtime"
	"sort"
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
	// The composed baseline allocates 160 MB per step and its time varies by 2-4x from run to
	// run on a shared 2-core VM (GC, page faults); the three workloads are measured interleaved,
	// five times each, and the medians compared.
	const rounds = 5
	var fusedNs, composedNs, floorNs []int64
	var fused testing.BenchmarkResult
	for r := 0; r < rounds; r++ {
		// each measurement starts from a collected heap, so none pays for another's garbage
		runtime.GC()
		fused = testing.Benchmark(func(b *testing.B) { benchGraph(b, d, tensor.Float32, fusedForwardBackward) })
		runtime.GC()
		composed := testing.Benchmark(func(b *testing.B) { benchGraph(b, d, tensor.Float32, composedForwardBackward) })
		runtime.GC()
		floor := testing.Benchmark(func(b *testing.B) { benchFloor(b, d, tensor.Float32) })
		fusedNs, composedNs, floorNs = append(fusedNs, fused.NsPerOp()), append(composedNs, composed.NsPerOp()), append(floorNs, floor.NsPerOp())
	}
	t.Logf("fused ns/op %v\ncomposed ns/op %v\nfloor ns/op %v", fusedNs, composedNs, floorNs)
	fusedMed, composedMed, floorMed := median(fusedNs), median(composedNs), median(floorNs)
	gradBytes := float64(len(d.pred) * 4)
	speedup := composedMed / fusedMed
	ofFloor := fusedMed / floorMed
	alloc := float64(fused.AllocedBytesPerOp()) / gradBytes
	t.Logf("2.36M float32 forward+backward, medians: fused %.2f ms, composed %.2f ms, floor %.2f ms",
		fusedMed/1e6, composedMed/1e6, floorMed/1e6)
	t.Logf("speed-up over composed %.1fx (target >= 25), fused/floor %.2fx (target <= 1.5), allocated %.3f gradient tensors (target <= 1.2; %d B/op, %d allocs/op)",
		speedup, ofFloor, alloc, fused.AllocedBytesPerOp(), fused.AllocsPerOp())
	if speedup < 25 || ofFloor > 1.5 || alloc > 1.2 {
		t.Errorf("performance targets missed")
	}
}

func median(xs []int64) float64 {
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[len(s)/2])
}
