/* The global byte budget.
 *
 * Flows buffer data: LAN bytes held until keys exist, out-of-order WAN
 * ciphertext waiting for a hole to fill, ciphertext copies kept for exact
 * retransmission. Each flow has its own limits; this budget bounds their sum
 * across the whole gateway, so many flows each within their limit cannot
 * exhaust memory together.
 *
 * The engine calls Reserve before it stores n bytes and Release when it
 * frees them. Both are lock-free atomics, usable from any worker.
 */

package flowtable

// Reserve claims n bytes of the global buffer budget. It returns false, and
// claims nothing, when that would exceed MaxBytesTotal or when n < 0; the
// caller then drops or declines to buffer the data (TCP will retransmit).
func (t *Table[V]) Reserve(n int) bool {
	if n < 0 {
		return false
	}
	want := int64(n)
	for {
		used := t.bytesUsed.Load()
		if want > t.maxBytes-used {
			return false
		}
		if t.bytesUsed.CompareAndSwap(used, used+want) {
			return true
		}
	}
}

// Release returns n bytes claimed by Reserve. Non-positive n is ignored.
// Releasing more than was reserved is a bug in the caller; the count is
// clamped at zero so one such bug cannot disable the budget for everyone.
func (t *Table[V]) Release(n int) {
	if n <= 0 {
		return
	}
	if t.bytesUsed.Add(-int64(n)) < 0 {
		// Clamp by CAS, so that a concurrent Reserve which already
		// brought the count back up is not overwritten.
		for {
			used := t.bytesUsed.Load()
			if used >= 0 || t.bytesUsed.CompareAndSwap(used, 0) {
				return
			}
		}
	}
}

// BytesInUse returns the bytes currently reserved across all flows.
func (t *Table[V]) BytesInUse() int64 { return t.bytesUsed.Load() }

// MaxBytesTotal returns the budget's size.
func (t *Table[V]) MaxBytesTotal() int64 { return t.maxBytes }
