package loadgen

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadFrameReusesTheBufferAndReadsToTheEnd(t *testing.T) {
	buf := make([]byte, 0, 4)
	msg := strings.Repeat("frame-", 100)
	got, err := ReadFrame(buf, iotest.OneByteReader(strings.NewReader(msg)))
	if err != nil || string(got) != msg {
		t.Fatalf("ReadFrame = %q, %v", got, err)
	}
	again, err := ReadFrame(got, strings.NewReader("short"))
	if err != nil || string(again) != "short" || &again[0] != &got[0] {
		t.Fatalf("second ReadFrame = %q, %v (buffer reused: %v)", again, err, &again[0] == &got[0])
	}
	boom := errors.New("boom")
	if _, err := ReadFrame(nil, io.MultiReader(strings.NewReader("x"), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Fatalf("error = %v, want boom", err)
	}
}

func TestTablePadsByRunes(t *testing.T) {
	got := Table([]string{"figure", "ratio"}, [][]string{{"p99", "1.5× (worse)"}, {"µs", "x"}})
	want := "| figure | ratio        |\n| ------ | ------------ |\n| p99    | 1.5× (worse) |\n| µs     | x            |\n"
	if got != want {
		t.Fatalf("Table:\n%s\nwant:\n%s", got, want)
	}
}

func TestRaiseFDLimitReportsALimit(t *testing.T) {
	if RaiseFDLimit() == 0 {
		t.Fatal("no open-files limit reported")
	}
}
