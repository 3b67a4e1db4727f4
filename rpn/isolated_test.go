package rpn

import (
	"testing"

	"github.com/detlab/smoothl1/internal/crashtest"
)

// isolated runs the calling test in a child process (internal/crashtest), so that a panic or a
// runtime crash inside gorgonia's RunAll goroutine is reported as this test's failure instead of
// killing the whole test binary. In the child it returns true and the test runs its body.
func isolated(t *testing.T) bool {
	t.Helper()
	return crashtest.InChild(t)
}
