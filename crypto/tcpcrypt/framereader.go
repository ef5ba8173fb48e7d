// Frame reader: frames out of a received byte stream (RFC 8548 §3.6, §4.2:
// frames are delimited in the TCP data stream, which TCP may cut or merge
// anywhere, so receivers reassemble the byte stream before parsing frames).
//
//  1. Write appends in-order stream bytes, however TCP cut them, to a
//     bounded buffer.
//  2. Next reads the header of the frame at the head of the buffer; once all
//     of it is present, it opens it in place (Opener.OpenFrame) at its stream
//     offset and returns its plaintext.
//  3. Any error (a bad header, a frame that fails authentication, bytes
//     after a FIN frame, a full buffer) is final: the reader returns it from
//     then on and delivers nothing more (RFC 8548 §3.6: abort the
//     connection).
package tcpcrypt

import "errors"

// MaxFrameLen is the largest frame on the wire: the header and a 16-bit clen.
const MaxFrameLen = FrameHeaderLen + 0xffff

var (
	errBufferFull  = errors.New("tcpcrypt: frame reader buffer full")
	errFrameTooBig = errors.New("tcpcrypt: frame larger than the frame reader's buffer")
	errAfterFIN    = errors.New("tcpcrypt: stream bytes after the FIN frame")
)

// Frame is one authenticated frame.
type Frame struct {
	Offset uint64 // stream offset of the frame's first (control) byte
	Len    int    // whole length on the wire: FrameHeaderLen + clen
	Flags  byte   // FlagFIN, FlagURG
	Urgent uint16 // urgent pointer, with FlagURG
	Data   []byte // plaintext; valid until the next Write or Next
}

// FrameReader turns one direction's received byte stream into frames. It is
// not safe for concurrent use.
type FrameReader struct {
	opener *Opener
	off    uint64 // stream offset of buf[head]
	buf    []byte
	head   int
	max    int
	fin    bool // a FIN frame was delivered: the stream is over
	err    error
}

// NewFrameReader reads the stream that starts at stream offset start (see
// FirstFrameOffset), buffering at most maxBuffered bytes; maxBuffered <= 0
// means MaxFrameLen, the least that admits every frame.
func NewFrameReader(o *Opener, start uint64, maxBuffered int) *FrameReader {
	if maxBuffered <= 0 {
		maxBuffered = MaxFrameLen
	}
	return &FrameReader{opener: o, off: start, max: maxBuffered}
}

// Write appends the next bytes of the stream. It fails, for good, if they
// would take the buffer beyond its bound or follow a FIN frame.
func (r *FrameReader) Write(p []byte) error {
	if r.err != nil {
		return r.err
	}
	if len(p) == 0 {
		return nil
	}
	if r.fin {
		r.err = errAfterFIN
		return r.err
	}
	buffered := len(r.buf) - r.head
	if len(p) > r.max-buffered {
		r.err = errBufferFull
		return r.err
	}
	need := buffered + len(p)
	if len(r.buf)+len(p) > cap(r.buf) {
		if need > cap(r.buf) {
			nb := make([]byte, buffered, min(max(2*cap(r.buf), need, 1024), r.max))
			copy(nb, r.buf[r.head:])
			r.buf = nb
		} else {
			r.buf = r.buf[:copy(r.buf, r.buf[r.head:])]
		}
		r.head = 0
	}
	r.buf = append(r.buf, p...)
	return nil
}

// Next returns the next complete, authenticated frame; ok=false (and no
// error) while its bytes are not all there yet.
func (r *FrameReader) Next() (f Frame, ok bool, err error) {
	if r.err != nil {
		return Frame{}, false, r.err
	}
	avail := r.buf[r.head:]
	if len(avail) == 0 {
		return Frame{}, false, nil
	}
	if r.fin {
		return r.fail(errAfterFIN)
	}
	n, need, err := FrameLen(avail)
	if err != nil {
		return r.fail(err)
	}
	if need {
		return Frame{}, false, nil
	}
	if n > r.max {
		return r.fail(errFrameTooBig)
	}
	if len(avail) < n {
		return Frame{}, false, nil
	}
	flags, urgent, data, err := r.opener.OpenFrame(avail[:n], r.off)
	if err != nil {
		return r.fail(err)
	}
	f = Frame{Offset: r.off, Len: n, Flags: flags, Urgent: urgent, Data: data}
	r.off += uint64(n)
	r.head += n
	if r.head == len(r.buf) {
		r.buf, r.head = r.buf[:0], 0
	}
	r.fin = flags&FlagFIN != 0
	return f, true, nil
}

func (r *FrameReader) fail(err error) (Frame, bool, error) {
	r.err = err
	r.buf, r.head = r.buf[:0], 0 // nothing of a failed stream stays readable
	return Frame{}, false, err
}

// Buffered is the number of received bytes not yet returned as frames.
func (r *FrameReader) Buffered() int { return len(r.buf) - r.head }

// Offset is the stream offset of the next frame.
func (r *FrameReader) Offset() uint64 { return r.off }

// Err is the error that stopped the reader, if any.
func (r *FrameReader) Err() error { return r.err }
