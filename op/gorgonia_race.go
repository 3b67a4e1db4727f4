package op

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// gorgonia v0.9.18's Grad seeds backpropagation with a package-level constant node (onef64 or
// onef32, gorgonia.go:231-241) and adds it to the graph, which computes that shared node's hash
// on first use and caches it without synchronisation (Node.Hashcode, node.go:557-566). Two
// goroutines making their first Grad call at once therefore race, and `go test -race` reports it
// (seen here in 2 of 3 runs of TestSharedOpValue). Taking one gradient per dtype at package
// initialisation caches both hashes before any goroutine of the user's exists; afterwards the
// hash is only read. Every program that imports op (and so rpn) gets this.
func init() { warmGradSeeds() }

func warmGradSeeds() {
	for _, dt := range []tensor.Dtype{tensor.Float64, tensor.Float32} {
		g := G.NewGraph()
		x := G.NewScalar(g, dt, G.WithName("x"))
		if cost, err := G.Mul(x, x); err == nil {
			_, _ = G.Grad(cost, x) // only its side effect on the seed node's hash is wanted
		}
	}
}
