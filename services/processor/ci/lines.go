package ci

import "io"

// MaxBatch is the most lines one LineFunc call carries; sandboxes that produce their own
// line stream (a Kubernetes pod's log) batch with the same bound as Run.
const MaxBatch = maxBatch

// ReadLines splits r into lines exactly as Run does (no newline, \r\n tolerated, lines
// longer than 16 KiB split, a last unterminated line delivered), for sandboxes that read the
// command's output from elsewhere than a local pipe.
func ReadLines(r io.Reader, deliver func(text string)) { readLines(r, deliver) }
