package app

import "testing"

func TestIDWindowIsBounded(t *testing.T) {
	var w idWindow
	for i := uint64(0); i < 10; i++ {
		if w.add(i, 4) {
			t.Fatalf("%d reported as seen", i)
		}
	}
	if len(w.set) != 4 || len(w.ring) != 4 {
		t.Fatalf("window holds %d ids (ring %d), want 4", len(w.set), len(w.ring))
	}
	for i := uint64(6); i < 10; i++ {
		if !w.add(i, 4) {
			t.Fatalf("recent id %d not recognised", i)
		}
	}
	if w.add(1, 4) {
		t.Fatal("an id older than the window is still remembered")
	}
	var off idWindow
	first := off.add(1, 0)
	second := off.add(1, 0)
	if first || second || off.set != nil {
		t.Fatal("window 0 must remember nothing")
	}
}
