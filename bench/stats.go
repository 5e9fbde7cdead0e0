package main

import (
	"fmt"
	"slices"
	"time"
)

// percentile returns the p-quantile (0..1) of samples (sorted in place); 0 when empty.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	i := min(len(samples)-1, int(float64(len(samples))*p))
	return samples[i]
}

// median of the values (copied); 0 when empty.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// figure is one row of the comparison: a value per system per repetition.
type figure struct {
	name        string
	unit        string // "ms", "msg/s", "KiB", "%"
	lowerBetter bool
	cf, tf      []float64
}

// ratio is ticketflow ÷ Centrifugo with its direction ("better"/"worse"/"same").
func ratio(cf, tf float64, lowerBetter bool) string {
	if cf == 0 || tf == 0 {
		return "n/a"
	}
	r := tf / cf
	dir := "same"
	switch {
	case r < 0.995:
		dir = map[bool]string{true: "better", false: "worse"}[lowerBetter]
	case r > 1.005:
		dir = map[bool]string{true: "worse", false: "better"}[lowerBetter]
	}
	return fmt.Sprintf("%.2f× (%s)", r, dir)
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	case "msg/s":
		return fmt.Sprintf("%.0f msg/s", v)
	case "KiB":
		return fmt.Sprintf("%.1f KiB", v)
	case "%":
		return fmt.Sprintf("%.0f %%", v)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// rows turns figures into table rows (median of the repetitions).
func rows(figs []*figure) [][]string {
	var out [][]string
	for _, f := range figs {
		cf, tf := median(f.cf), median(f.tf)
		cell := func(v float64, n int) string {
			if n == 0 {
				return "—"
			}
			return formatValue(v, f.unit)
		}
		r := "n/a"
		if len(f.cf) > 0 && len(f.tf) > 0 {
			r = ratio(cf, tf, f.lowerBetter)
		}
		out = append(out, []string{f.name, cell(cf, len(f.cf)), cell(tf, len(f.tf)), r})
	}
	return out
}
