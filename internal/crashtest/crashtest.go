// Package crashtest runs a test's body in a child process, so that a crash the test cannot
// recover (a panic in a goroutine that gorgonia's TapeMachine starts, an index out of range in
// an op) is reported as that test's failure instead of killing the whole test binary.
//
//	func TestViews(t *testing.T) {
//		if !crashtest.InChild(t) {
//			return // the parent ran the child and reported its outcome
//		}
//		... the body, which may crash ...
//	}
package crashtest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// envKey names the test a child process runs.
const envKey = "CRASHTEST_CHILD"

// InChild reports whether the calling test runs in the child process. In the parent it runs the
// test binary again restricted to this test (subtests included), with -race and every other flag
// the binary was built or started with, and fails t with the child's output if the child fails or
// crashes; it then returns false and the caller returns.
func InChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envKey) == t.Name() {
		return true
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envKey+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process for %s failed (%v):\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child process for %s did not run it:\n%s", t.Name(), out)
	}
	return false
}
