package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// rawHTTP is a minimal HTTP/1.1 keep-alive client: one connection per load client, the
// request written in one write, the response read with one buffered reader. It plays the
// part wrk plays in C: on a 2-core machine shared by client and server, net/http's client
// (two goroutines per connection, a hand-off per request, headers and body in two writes)
// costs three times as much CPU per request, and every microsecond it takes is one the
// server does not get (compare with -client net/http). Its own cost is still reported: it
// runs in a process of its own, the HTTP load client, whose CPU is read from /proc.
type rawHTTP struct {
	addr string
	mu   sync.Mutex
	free []*rawConn
}

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
	wb []byte
}

func newRawHTTP(base string) (*rawHTTP, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	return &rawHTTP{addr: u.Host}, nil
}

// do sends one request and returns the response's status and body length. header lines
// end with \r\n. The body is read and dropped.
func (h *rawHTTP) do(ctx context.Context, method, path, header string, body []byte) (int, int, error) {
	c, err := h.get(ctx)
	if err != nil {
		return 0, 0, err
	}
	c.wb = append(c.wb[:0], method...)
	c.wb = append(c.wb, ' ')
	c.wb = append(c.wb, path...)
	c.wb = append(c.wb, " HTTP/1.1\r\nHost: "...)
	c.wb = append(c.wb, h.addr...)
	c.wb = append(c.wb, "\r\nUser-Agent: longhaul-bench\r\n"...)
	c.wb = append(c.wb, header...)
	if body != nil {
		c.wb = append(c.wb, "Content-Length: "...)
		c.wb = strconv.AppendInt(c.wb, int64(len(body)), 10)
		c.wb = append(c.wb, "\r\n"...)
	}
	c.wb = append(c.wb, "\r\n"...)
	c.wb = append(c.wb, body...)
	if d, ok := ctx.Deadline(); ok {
		c.c.SetDeadline(d)
	}
	if _, err := c.c.Write(c.wb); err != nil {
		c.c.Close()
		return 0, 0, err
	}
	status, n, keep, err := readResponse(c.br)
	if err != nil || !keep {
		c.c.Close()
		return status, n, err
	}
	h.put(c)
	return status, n, nil
}

func (h *rawHTTP) get(ctx context.Context) (*rawConn, error) {
	h.mu.Lock()
	if n := len(h.free); n > 0 {
		c := h.free[n-1]
		h.free = h.free[:n-1]
		h.mu.Unlock()
		return c, nil
	}
	h.mu.Unlock()
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: conn, br: bufio.NewReaderSize(conn, 8<<10)}, nil
}

func (h *rawHTTP) put(c *rawConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.free = append(h.free, c)
}

// close ends every idle connection.
func (h *rawHTTP) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.free {
		c.c.Close()
	}
	h.free = nil
}

// readResponse reads a status line, the headers and a Content-Length body (or none, for
// 204 and 304). It refuses what it does not support rather than misread it.
func readResponse(br *bufio.Reader) (status, n int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, keep := -1, true
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return status, 0, false, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return status, 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, 0, false, fmt.Errorf("the benchmark's client does not read %s bodies", value)
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		}
	}
	if status == 204 || status == 304 || length <= 0 {
		return status, 0, keep, nil
	}
	m, err := io.CopyN(io.Discard, br, int64(length))
	return status, int(m), keep, err
}
