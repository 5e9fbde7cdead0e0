package cursor

import (
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{}, Single(0, 0), Single(11, 123456789), {0: 1, 3: 7, 11: 2}} {
		got, err := Parse(c.String())
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.String(), err)
		}
		if got.String() != c.String() {
			t.Fatalf("round trip %q → %q", c.String(), got.String())
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"", "v2.1-1", "v1.", "v1.1", "v1.-1-2", "v1.1--2", "v1.01-2", "v1.1-02", "v1.1-2.1-3", "v1x", "v1.99999999999-1", "v1.1-99999999999999999999"} {
		if _, err := Parse(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestAfter(t *testing.T) {
	c := Cursor{1: 10}
	if c.After(1, 10) || !c.After(1, 11) || !c.After(2, 0) {
		t.Fatal("After ordering wrong")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"v1", "v1.0-0", "v1.3-7.11-2", "v1.1-", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(c.String())
		if err != nil || again.String() != c.String() {
			t.Fatalf("canonical form of %q does not round-trip: %q, %v", s, c.String(), err)
		}
	})
}

func TestAppendSingleIsSinglesEncoding(t *testing.T) {
	for _, tc := range []struct {
		p int32
		o int64
	}{{0, -1}, {0, 0}, {11, 123456789}, {1023, 1 << 62}} {
		if got, want := string(AppendSingle([]byte("x"), tc.p, tc.o)), "x"+Single(tc.p, tc.o).String(); got != want {
			t.Errorf("AppendSingle(%d, %d) = %q, want %q", tc.p, tc.o, got, want)
		}
	}
}
