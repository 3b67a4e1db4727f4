package crashtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestChildCrashIsReported: a body that panics in a goroutine (which no recover in the test can
// catch) fails the parent's test with the child's output, and the parent process lives on.
func TestChildCrashIsReported(t *testing.T) {
	if os.Getenv("CRASHTEST_SELFTEST") == "1" {
		// the inner parent: runs the crashing child and must fail
		t.Run("crash", func(t *testing.T) {
			if !InChild(t) {
				return
			}
			done := make(chan bool)
			go func() {
				var s []int
				_ = s[3] // index out of range in a goroutine
				done <- true
			}()
			<-done
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildCrashIsReported$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CRASHTEST_SELFTEST=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a crashing child was not reported as a failure:\n%s", out)
	}
	if !strings.Contains(string(out), "index out of range") || !strings.Contains(string(out), "child process for TestChildCrashIsReported/crash failed") {
		t.Fatalf("the failure does not carry the child's panic:\n%s", out)
	}
}

// TestChildPassIsQuiet: a body that passes in the child passes in the parent.
func TestChildPassIsQuiet(t *testing.T) {
	if !InChild(t) {
		return
	}
	if os.Getenv(envKey) != t.Name() {
		t.Fatal("body ran outside the child")
	}
}
