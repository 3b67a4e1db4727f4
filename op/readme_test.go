package op

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExample: the README's API example is ExampleSmoothL1Loss, character for character.
func TestReadmeExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "func ExampleSmoothL1Loss() {")
	if start < 0 {
		t.Fatal("ExampleSmoothL1Loss not found")
	}
	end := strings.Index(s[start:], "\n}\n")
	if end < 0 {
		t.Fatal("end of ExampleSmoothL1Loss not found")
	}
	example := s[start : start+end+2]
	if !strings.Contains(string(readme), example) {
		t.Fatal("README.md does not contain ExampleSmoothL1Loss verbatim; copy it from op/example_test.go")
	}
}
