// Package cursor encodes positions in the event log as opaque strings clients hand back to
// resume. A cursor is a set of (partition, offset) pairs: the offset of the last event the
// client has seen on each partition. One ticket lives on one partition, so its cursors have
// one pair and compare by offset; the all-tickets stream's cursor carries every partition.
//
// Format: "v1.<p>-<o>[.<p>-<o>...]", readable on purpose so a client can check ordering from
// cursors alone (a later event on a ticket always has a larger offset).
package cursor

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxPartitions bounds how many pairs a cursor may carry (guards against hostile input).
const MaxPartitions = 1024

// Cursor maps partition → offset of the last delivered event on it.
type Cursor map[int32]int64

// Single is the cursor of one event.
func Single(partition int32, offset int64) Cursor { return Cursor{partition: offset} }

// AppendSingle appends the encoding of Single(partition, offset) without building the map:
// every event's message carries its own cursor.
func AppendSingle(dst []byte, partition int32, offset int64) []byte {
	dst = append(dst, "v1."...)
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, offset, 10)
}

// String encodes the cursor; partitions are sorted so equal cursors encode equally.
func (c Cursor) String() string {
	parts := make([]int32, 0, len(c))
	for p := range c {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var b strings.Builder
	b.WriteString("v1")
	for _, p := range parts {
		b.WriteByte('.')
		b.WriteString(strconv.FormatInt(int64(p), 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatInt(c[p], 10))
	}
	return b.String()
}

// ErrInvalid is returned (wrapped) for any malformed cursor.
var ErrInvalid = errors.New("invalid cursor")

// Parse decodes a cursor produced by String.
func Parse(s string) (Cursor, error) {
	if len(s) > 32*MaxPartitions {
		return nil, fmt.Errorf("%w: too long", ErrInvalid)
	}
	rest, ok := strings.CutPrefix(s, "v1")
	if !ok {
		return nil, fmt.Errorf("%w: unknown version", ErrInvalid)
	}
	c := Cursor{}
	if rest == "" {
		return c, nil
	}
	if rest[0] != '.' {
		return nil, fmt.Errorf("%w: expected '.' after version", ErrInvalid)
	}
	for _, pair := range strings.Split(rest[1:], ".") {
		ps, os, ok := strings.Cut(pair, "-")
		if !ok {
			return nil, fmt.Errorf("%w: pair %q is not <partition>-<offset>", ErrInvalid, pair)
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 || (len(ps) > 1 && ps[0] == '0') {
			return nil, fmt.Errorf("%w: bad partition %q", ErrInvalid, ps)
		}
		o, err := strconv.ParseInt(os, 10, 64)
		if err != nil || o < 0 || (len(os) > 1 && os[0] == '0') {
			return nil, fmt.Errorf("%w: bad offset %q", ErrInvalid, os)
		}
		if _, dup := c[int32(p)]; dup {
			return nil, fmt.Errorf("%w: partition %d twice", ErrInvalid, p)
		}
		c[int32(p)] = o
		if len(c) > MaxPartitions {
			return nil, fmt.Errorf("%w: too many partitions", ErrInvalid)
		}
	}
	return c, nil
}

// Clone returns an independent copy.
func (c Cursor) Clone() Cursor {
	out := make(Cursor, len(c))
	for p, o := range c {
		out[p] = o
	}
	return out
}

// After reports whether the event at (partition, offset) comes after the cursor, i.e. has
// not been delivered yet. A partition absent from the cursor has delivered nothing.
func (c Cursor) After(partition int32, offset int64) bool {
	last, ok := c[partition]
	return !ok || offset > last
}
