package executor

import "testing"

func TestInstanceWorkDirsAreDistinct(t *testing.T) {
	root := t.TempDir()
	a, b := InstanceWorkDir(root, "processor@host-1"), InstanceWorkDir(root, "processor@host-2")
	if a == b {
		t.Fatalf("two instances share work root %s", a)
	}
	lock, err := LockInstanceDir(a)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if second, err := LockInstanceDir(a); err == nil {
		second.Close()
		t.Fatal("a second process with the same instance id could use the same work dir")
	}
	other, err := LockInstanceDir(b)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
}
