package gateway

import (
	"bytes"
	"os"
	"testing"
)

// TestWritePacketGathers checks the writev of a packet given as slices
// (engine.Output.Vec: headers, then bytes lent from a ring, an empty one
// among them): the file gets exactly their concatenation, as the copying
// path would write it, and a packet of one slice is one plain write.
func TestWritePacketGathers(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	v := &vnetIO{}
	hdr := bytes.Repeat([]byte{1}, 62)
	ring := bytes.Repeat([]byte{2, 3, 4}, 1000)
	vecs := [][][]byte{{hdr, ring[:1400], nil, ring[2000:]}, {hdr}}
	var want []byte
	for _, vec := range vecs {
		if err := v.writePacket(int(w.Fd()), vec); err != nil {
			t.Fatal(err)
		}
		want = append(want, bytes.Join(vec, nil)...)
	}
	got := make([]byte, len(want)+1)
	n, err := r.Read(got)
	if err != nil || !bytes.Equal(got[:n], want) {
		t.Fatalf("read %d bytes (%v), want the %d written, same bytes", n, err, len(want))
	}
	for _, io := range v.iov {
		if io.Base != nil {
			t.Fatal("the iovec array keeps pointers into the batch after the write")
		}
	}
}
