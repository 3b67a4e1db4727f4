package rpn

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// isolatedEnv names the test a re-executed test binary runs.
const isolatedEnv = "RPN_ISOLATED_TEST"

// isolated runs the calling top-level test in a child process (the test binary re-executed with
// -test.run selecting it and isolatedEnv set), so that a panic or a runtime crash (an index out
// of range, a nil dereference inside gorgonia) is reported as this test's failure, with the
// child's output, instead of killing the whole test binary. In the child it returns true and
// the test runs its body; in the parent it returns false after reporting.
func isolated(t *testing.T) bool {
	t.Helper()
	if os.Getenv(isolatedEnv) == t.Name() {
		return true
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), isolatedEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process failed (%v); its output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child process did not run %s; its output:\n%s", t.Name(), out)
	}
	return false
}
