package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// handOff is a WebSocket request taken out of the HTTP server: its connection, hijacked by
// the handler, with a ResponseWriter over it for melody's upgrade, which then runs in a
// goroutine of its own. melody serves a connection in the goroutine that hands it the
// request, for as long as the connection lasts; were that the HTTP server's, it would keep
// the server's 4 KiB reader and 4 KiB writer, its per-request state and a deep stack for
// every idle WebSocket. Once handed off, the server's goroutine ends and frees them.
type handOff struct {
	conn   net.Conn
	header http.Header
	status int  // the status of a refusal, as WriteHeader is told
	wrote  bool // the refusal's head was written
}

// handOffFrom hijacks the request's connection, keeping the headers set so far (the
// request id, the security headers) for the upgrade's response.
func handOffFrom(w http.ResponseWriter) (*handOff, error) {
	header := w.Header().Clone()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack a websocket request: %w", err)
	}
	if brw.Reader.Buffered() > 0 {
		// The client sent data before the handshake ended, which the protocol forbids.
		conn.Close()
		return nil, fmt.Errorf("hijack a websocket request: data sent before the handshake")
	}
	return &handOff{conn: conn, header: header}, nil
}

func (h *handOff) Header() http.Header {
	if h.header == nil {
		h.header = http.Header{}
	}
	return h.header
}

func (h *handOff) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

// Write writes a refusal of the upgrade (melody's upgrader answers a bad handshake through
// the ResponseWriter): a head, then the body, and the connection closes after it.
func (h *handOff) Write(p []byte) (int, error) {
	if !h.wrote {
		h.wrote = true
		if h.status == 0 {
			h.status = http.StatusOK
		}
		h.Header().Set("Connection", "close")
		h.Header().Set("Content-Length", strconv.Itoa(len(p)))
		head := fmt.Sprintf("HTTP/1.1 %d %s\r\n", h.status, http.StatusText(h.status))
		if _, err := h.conn.Write([]byte(head)); err != nil {
			return 0, err
		}
		if err := h.header.Write(h.conn); err != nil {
			return 0, err
		}
		if _, err := h.conn.Write([]byte("\r\n")); err != nil {
			return 0, err
		}
	}
	return h.conn.Write(p)
}

// Hijack gives the upgrader the connection, with buffers of the least size: it reads
// through one of its own (wsReadBuffer) and writes through its pool.
func (h *handOff) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// The upgrader has the response's headers already (melody hands it Header()), and
	// nothing is answered through this writer after: the connection need not keep them.
	h.header = nil
	return h.conn, bufio.NewReadWriter(bufio.NewReaderSize(h.conn, 16), bufio.NewWriterSize(h.conn, 16)), nil
}
