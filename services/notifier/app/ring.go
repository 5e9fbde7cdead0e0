package app

// A ticket's memory: its recent events (ring) and its recent event ids (idWindow), both
// bounded and allocating only what they hold.

// idWindow is a bounded set of the last ids added (64-bit hashes: a false match needs a
// collision among a ticket's window, odds ~window²/2⁶⁵). It allocates only what it holds.
type idWindow struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
}

// add records id and reports whether it was already there.
func (w *idWindow) add(id uint64, limit int) (dup bool) {
	if _, ok := w.set[id]; ok {
		return true
	}
	if limit <= 0 {
		return false
	}
	if w.set == nil {
		w.set = map[uint64]struct{}{}
	}
	if len(w.ring) < limit {
		w.ring = append(w.ring, id)
	} else {
		delete(w.set, w.ring[w.next])
		w.ring[w.next] = id
		w.next = (w.next + 1) % limit
	}
	w.set[id] = struct{}{}
	return false
}

// ring is a bounded FIFO of items that only allocates what it holds.
type ring struct {
	buf  []*item
	head int // index of the oldest item
	n    int
}

func (r *ring) push(it *item, limit int) (evicted *item) {
	if limit <= 0 {
		return it
	}
	if r.n < len(r.buf) {
		r.buf[(r.head+r.n)%len(r.buf)] = it
		r.n++
		return nil
	}
	if len(r.buf) < limit { // grow (re-linearising)
		nb := make([]*item, min(limit, max(8, 2*len(r.buf))))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
		r.buf[r.n] = it
		r.n++
		return nil
	}
	evicted = r.buf[r.head]
	r.buf[r.head] = it
	r.head = (r.head + 1) % len(r.buf)
	return evicted
}

func (r *ring) popOldest() *item {
	if r.n == 0 {
		return nil
	}
	it := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.buf, r.head = nil, 0
	}
	return it
}

// after returns the items with offset > off, oldest first.
func (r *ring) after(off int64) []*item {
	var out []*item
	for i := 0; i < r.n; i++ {
		it := r.buf[(r.head+i)%len(r.buf)]
		if it.offset > off {
			out = append(out, it)
		}
	}
	return out
}
