package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// cmdFanoutClient is the child process that holds WebSocket clients of the fan-out stage.
const cmdFanoutClient = "fanout-client"

// clientMsg is a line a fan-out client process prints: "ready" once its connections have
// their snapshots, "report" when asked.
type clientMsg struct {
	Type      string  `json:"type"`
	Conns     int     `json:"conns"`
	Failed    int     `json:"failed"`
	FirstErr  string  `json:"first_error,omitempty"`
	ConnectS  float64 `json:"connect_seconds"`
	Messages  uint64  `json:"messages"`
	Events    uint64  `json:"events"` // file events carrying a send time
	Gaps      uint64  `json:"gaps"`   // events whose seq was not the next one
	Resyncs   uint64  `json:"resyncs"`
	Closed    uint64  `json:"closed"` // connections the server ended
	Latencies Hist    `json:"latencies"`
	// Raw is the latency of the same events to a plain Redis subscriber in this process:
	// the baseline of the fan-out.
	Raw Hist `json:"raw"`
}

// fanoutClientMain opens WebSockets from..to-1 of the fan-out; connection k watches job
// k mod len(jobs), from a loopback source address of its own. It reports on stdout and
// takes the commands "report" and "quit" on stdin.
func fanoutClientMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmdFanoutClient, flag.ContinueOnError)
	url := fs.String("url", "", "the API's ws:// base URL")
	jobsFile := fs.String("jobs", "", "file of job ids, one a line")
	from := fs.Int("from", 0, "first connection")
	to := fs.Int("to", 0, "last connection + 1")
	src := fs.String("src", "127.0.0.1", "loopback source addresses, comma-separated")
	dials := fs.Int("dials", 32, "handshakes at once")
	witness := fs.String("redis", "", "Redis host:port: also take the events' latency to a plain subscriber")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	data, err := os.ReadFile(*jobsFile)
	if err != nil {
		return err
	}
	ids := strings.Fields(string(data))
	if len(ids) == 0 {
		return fmt.Errorf("no job ids in %s", *jobsFile)
	}
	c := &fanClients{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := json.NewEncoder(stdout)
	if *witness != "" {
		stop, err := c.witness(ctx, *witness)
		if err != nil {
			return err
		}
		defer stop()
	}
	start := time.Now()
	ready := c.connect(ctx, *url, ids, *from, *to, strings.Split(*src, ","), *dials)
	ready.Type, ready.ConnectS = "ready", time.Since(start).Seconds()
	if err := out.Encode(ready); err != nil {
		return err
	}
	lines := bufio.NewScanner(stdin)
	for lines.Scan() {
		switch lines.Text() {
		case "report":
			if err := out.Encode(c.report()); err != nil {
				return err
			}
		case "quit":
			c.closeAll()
			return nil
		}
	}
	c.closeAll()
	return nil
}

// fanClients are the connections of one client process and what they saw.
type fanClients struct {
	mu    sync.Mutex
	conns []*websocket.Conn

	messages, events, gaps, resyncs, closed atomic.Uint64
	quitting                                atomic.Bool
	wg                                      sync.WaitGroup

	// shards spread the latency histogram's lock over the connections.
	shards [64]latShard
	raw    latShard
}

// witness subscribes to every job's events in plain Redis pub/sub and records their
// latency beside the WebSocket clients'.
func (c *fanClients) witness(ctx context.Context, addr string) (stop func(), err error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ps := rdb.PSubscribe(ctx, jobs.EventsPattern)
	if _, err := ps.Receive(ctx); err != nil {
		rdb.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			msg, err := ps.Receive(context.Background())
			if err != nil {
				return
			}
			m, ok := msg.(*redis.Message)
			if !ok {
				continue
			}
			now := time.Now().UnixNano()
			payload := []byte(m.Payload)
			if sent, ok := intAfter(payload, `"size":`); ok && sent > 1e18 && bytes.HasPrefix(payload, []byte(`{"type":"file"`)) {
				c.raw.mu.Lock()
				c.raw.h.Record(time.Duration(now - sent))
				c.raw.mu.Unlock()
			}
		}
	})
	return func() { ps.Close(); wg.Wait(); rdb.Close() }, nil
}

// latShard is one part of a process's latency histogram.
type latShard struct {
	mu sync.Mutex
	h  Hist
}

func (c *fanClients) connect(ctx context.Context, url string, ids []string, from, to int, srcs []string, dials int) clientMsg {
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, dials)
		failed   atomic.Int64
		firstErr atomic.Value
	)
	for k := from; k < to; k++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			src := srcs[k%len(srcs)]
			if err := c.open(ctx, url+"/ws/download/"+ids[k%len(ids)], src, k); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		})
	}
	wg.Wait()
	msg := clientMsg{Conns: to - from - int(failed.Load()), Failed: int(failed.Load())}
	if e, ok := firstErr.Load().(string); ok {
		msg.FirstErr = e
	}
	return msg
}

// open dials one WebSocket, waits for its snapshot and starts reading it.
func (c *fanClients) open(ctx context.Context, url, src string, k int) error {
	d := websocket.Dialer{
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  256,
	}
	var conn *websocket.Conn
	var err error
	for attempt := 0; ; attempt++ {
		conn, _, err = d.DialContext(ctx, url, nil)
		if err == nil || attempt == 2 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, first, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return fmt.Errorf("first message: %w", err)
	}
	if !bytes.HasPrefix(first, []byte(`{"type":"snapshot"`)) {
		conn.Close()
		return fmt.Errorf("first message is not a snapshot: %.100s", first)
	}
	conn.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	seq, _ := intAfter(first, `"seq":`)
	c.wg.Go(func() { c.read(conn, seq, &c.shards[k%len(c.shards)]) })
	return nil
}

// read follows one connection: every file event that carries a send time in its size
// gives a delivery latency; seq must go up by one at a time.
func (c *fanClients) read(conn *websocket.Conn, seq int64, shard *latShard) {
	var buf bytes.Buffer
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			if !c.quitting.Load() {
				c.closed.Add(1)
			}
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			continue
		}
		now := time.Now().UnixNano()
		msg := buf.Bytes()
		c.messages.Add(1)
		s, _ := intAfter(msg, `"seq":`)
		if bytes.HasPrefix(msg, []byte(`{"type":"snapshot"`)) {
			c.resyncs.Add(1)
			seq = s
			continue
		}
		if s != seq+1 {
			c.gaps.Add(1)
		}
		seq = s
		if !bytes.HasPrefix(msg, []byte(`{"type":"file"`)) {
			continue
		}
		if sent, ok := intAfter(msg, `"size":`); ok && sent > 1e18 {
			c.events.Add(1)
			shard.mu.Lock()
			shard.h.Record(time.Duration(now - sent))
			shard.mu.Unlock()
		}
	}
}

// intAfter reads the integer that follows key in msg.
func intAfter(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}

func (c *fanClients) report() clientMsg {
	m := clientMsg{Type: "report", Messages: c.messages.Load(), Events: c.events.Load(),
		Gaps: c.gaps.Load(), Resyncs: c.resyncs.Load(), Closed: c.closed.Load()}
	for i := range c.shards {
		c.shards[i].mu.Lock()
		m.Latencies.Merge(c.shards[i].h)
		c.shards[i].mu.Unlock()
	}
	c.raw.mu.Lock()
	m.Raw.Merge(c.raw.h)
	c.raw.mu.Unlock()
	c.mu.Lock()
	m.Conns = len(c.conns)
	c.mu.Unlock()
	return m
}

// closeAll ends every connection with a close message, as a browser leaving would.
func (c *fanClients) closeAll() {
	c.quitting.Store(true)
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	for _, conn := range conns {
		err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), deadline)
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			conn.Close()
		}
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	for _, conn := range conns {
		conn.Close()
	}
}
