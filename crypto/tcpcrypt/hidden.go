// Keeping secrets out of formatted output.
//
// KeyPair, SessionSecret, Sealer and Opener have Format methods that print no
// secret. Those methods are not called when one of these values sits in an
// unexported field of a caller's struct and the struct is printed: fmt then
// walks the fields by reflection. It prints a nested pointer as an address,
// except through its fallback for a wrong verb (%s of a struct), which
// expands one pointer to an array, slice, struct or map. A pointer to a
// pointer is never expanded. So every private key, session secret, traffic
// key and cipher state lives in a hidden value, two pointers away.
package tcpcrypt

// hidden holds a *T behind one more pointer. The zero value holds nothing.
type hidden[T any] struct{ pp **T }

func hide[T any](v *T) hidden[T] { return hidden[T]{pp: &v} }

// get returns the held value, nil if none.
func (h hidden[T]) get() *T {
	if h.pp == nil {
		return nil
	}
	return *h.pp
}

// ok reports whether h holds a value.
func (h hidden[T]) ok() bool { return h.pp != nil && *h.pp != nil }
