package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/loadgen"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(s, 0.5); got != 51*time.Millisecond {
		t.Errorf("p50 = %v", got)
	}
	if got := percentile(s, 0.99); got != 100*time.Millisecond {
		t.Errorf("p99 = %v", got)
	}
	if got := percentile(s, 1); got != 100*time.Millisecond {
		t.Errorf("max = %v", got)
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("empty = %v", got)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("even median = %v", got)
	}
}

func TestRatio(t *testing.T) {
	for _, c := range []struct {
		cf, tf float64
		lower  bool
		want   string
	}{
		{10, 5, true, "0.50× (better)"},
		{10, 20, true, "2.00× (worse)"},
		{10, 20, false, "2.00× (better)"},
		{10, 5, false, "0.50× (worse)"},
		{10, 10, true, "1.00× (same)"},
		{0, 10, true, "n/a"},
	} {
		if got := ratio(c.cf, c.tf, c.lower); got != c.want {
			t.Errorf("ratio(%v, %v, %v) = %q, want %q", c.cf, c.tf, c.lower, got, c.want)
		}
	}
}

func TestTable(t *testing.T) {
	figs := []*figure{
		{name: "latency p99", unit: "ms", lowerBetter: true, cf: []float64{6, 5, 7}, tf: []float64{40, 41, 39}},
		{name: "fan-out", unit: "msg/s", cf: []float64{100}, tf: nil},
	}
	got := loadgen.Table([]string{"figure", "Centrifugo", "ticketflow", "ratio"}, rows(figs))
	want := "| figure      | Centrifugo | ticketflow | ratio         |\n" +
		"| ----------- | ---------- | ---------- | ------------- |\n" +
		"| latency p99 | 6.00 ms    | 40.00 ms   | 6.67× (worse) |\n" +
		"| fan-out     | 100 msg/s  | —          | n/a           |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(got, "6.67×") {
		t.Error("ratio missing")
	}
}
