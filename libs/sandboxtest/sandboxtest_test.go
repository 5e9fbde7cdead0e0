package sandboxtest

import (
	"os"
	"testing"
)

func TestDirIsTraversableByOthers(t *testing.T) {
	fi, err := os.Stat(Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o005 != 0o005 {
		t.Fatalf("mode %v: others cannot traverse", fi.Mode())
	}
}
