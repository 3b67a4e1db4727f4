//go:build !amd64 || !gc || purego

package op

// Without the AVX2 kernels (other architectures, or the purego build tag) every element goes
// through the Go loops of kernel.go.

func asmKernels() bool { return false }

func sumLanes[T float](p *params, pred, target, win, wout []T, lanes *[4]float64) int { return 0 }

func gradLanes[T float](p *params, pred, target, win, wout, up, dst []T, scale float64) int {
	return 0
}

func sumSaveLanes[T float](p *params, pred, target, win, wout, dst []T, norm float64, lanes *[4]float64) int {
	return 0
}
