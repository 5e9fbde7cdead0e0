package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestDialAllOpensInOrderWithinTheLimit(t *testing.T) {
	var mu sync.Mutex
	now, most := 0, 0
	got, err := DialAll(context.Background(), 50, 4, func(_ context.Context, i int) (string, error) {
		mu.Lock()
		now++
		most = max(most, now)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		now--
		mu.Unlock()
		return fmt.Sprint(i), nil
	}, func(string) { t.Error("a connection was closed") })
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, 50)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("DialAll = %v", got)
	}
	if most > 4 || most < 2 {
		t.Fatalf("%d dials at once, want up to the limit 4", most)
	}
}

func TestDialAllClosesTheOpenedOnesWhenOneFails(t *testing.T) {
	boom := errors.New("boom")
	var mu sync.Mutex
	var closed []int
	got, err := DialAll(context.Background(), 20, 3, func(_ context.Context, i int) (int, error) {
		if i == 7 || i == 13 {
			return 0, boom
		}
		return i, nil
	}, func(c int) {
		mu.Lock()
		closed = append(closed, c)
		mu.Unlock()
	})
	if !errors.Is(err, boom) || got != nil {
		t.Fatalf("DialAll = %v, %v; want nil, boom", got, err)
	}
	slices.Sort(closed)
	var want []int
	for i := range 20 {
		if i != 7 && i != 13 {
			want = append(want, i)
		}
	}
	if !slices.Equal(closed, want) {
		t.Fatalf("closed %v, want every opened one %v", closed, want)
	}
}

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

func TestReadMessageOpensTheMessageAndReadsItIntoTheBuffer(t *testing.T) {
	buf := make([]byte, 0, 64)
	got, err := ReadMessage(context.Background(), buf, func(context.Context) (int, io.Reader, error) {
		return 1, strings.NewReader("hello"), nil
	})
	if err != nil || string(got) != "hello" || &got[:1][0] != &buf[:1][0] {
		t.Fatalf("ReadMessage = %q, %v (buffer reused: %v)", got, err, &got[:1][0] == &buf[:1][0])
	}
	boom := errors.New("boom")
	if _, err := ReadMessage(context.Background(), got, func(context.Context) (int, io.Reader, error) {
		return 0, nil, boom
	}); !errors.Is(err, boom) {
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
