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
	"math/rand/v2"
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

	// Of a restart of the server, between the commands "hold" and "reconnect": Lost are the
	// connections it ended while held and that are not back yet; Resynced the ones back with
	// their snapshot, Resync the time from the reconnect command to each of those snapshots,
	// and Snapshots their seqs by job. RedialFailed connections did not get back in 30 s.
	Lost         int                `json:"lost"`
	Resynced     uint64             `json:"resynced"`
	Resync       Hist               `json:"resync"`
	Snapshots    map[string][]int64 `json:"snapshots,omitempty"`
	RedialFailed uint64             `json:"redial_failed"`
	RedialErr    string             `json:"redial_error,omitempty"`
}

// fanoutClientMain opens WebSockets from..to-1 of the fan-out; connection k watches job
// k mod len(jobs), from a loopback source address of its own. It reports on stdout and
// takes commands on stdin: "report"; "quit"; "hold", after which connections the server
// ends wait to be reconnected; and "reconnect T0 SPREAD", which brings those back, each
// after a random delay of up to SPREAD ns, timing their snapshots from T0 (Unix ns).
func fanoutClientMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(cmdFanoutClient, flag.ContinueOnError)
	url := fs.String("url", "", "the server's ws:// base URL")
	jobsFile := fs.String("jobs", "", "file of job ids, one a line")
	from := fs.Int("from", 0, "first connection")
	to := fs.Int("to", 0, "last connection + 1")
	src := fs.String("src", "127.0.0.1", "loopback source addresses, comma-separated")
	dials := fs.Int("dials", 32, "handshakes at once")
	witness := fs.String("redis", "", "Redis host:port: also take the events' latency to a plain subscriber")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := raiseFileLimit(0); err != nil {
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
	c := &fanClients{url: *url, ids: ids, srcs: strings.Split(*src, ","), snapshots: map[string]map[int64]bool{}}
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
	ready := c.connect(ctx, *from, *to, *dials)
	ready.Type, ready.ConnectS = "ready", time.Since(start).Seconds()
	if err := out.Encode(ready); err != nil {
		return err
	}
	lines := bufio.NewScanner(stdin)
	for lines.Scan() {
		cmd := strings.Fields(lines.Text())
		if len(cmd) == 0 {
			continue
		}
		switch cmd[0] {
		case "report":
			if err := out.Encode(c.report()); err != nil {
				return err
			}
		case "hold":
			c.holding.Store(true)
		case "reconnect":
			if len(cmd) != 3 {
				return fmt.Errorf("reconnect wants T0 and SPREAD, got %q", lines.Text())
			}
			t0, err1 := strconv.ParseInt(cmd[1], 10, 64)
			spread, err2 := strconv.ParseInt(cmd[2], 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("reconnect %q: %w", lines.Text(), err)
			}
			c.reconnect(ctx, time.Unix(0, t0), time.Duration(spread))
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
	url  string   // the server's ws:// base URL
	ids  []string // connection k watches ids[k % len(ids)]
	srcs []string // from the source address srcs[k % len(srcs)]

	mu    sync.Mutex
	conns []*websocket.Conn
	lost  []int // connections ended while holding, by k; guarded by mu

	messages, events, gaps, resyncs, closed atomic.Uint64
	resynced, redialFailed                  atomic.Uint64
	quitting, holding                       atomic.Bool
	wg                                      sync.WaitGroup

	// shards spread the latency histogram's lock over the connections.
	shards [64]latShard
	raw    latShard

	rmu       sync.Mutex
	resync    Hist                      // guarded by rmu
	snapshots map[string]map[int64]bool // job → the seqs of reconnects' snapshots; guarded by rmu
	redialErr string                    // the first failed reconnect's error; guarded by rmu
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

func (c *fanClients) connect(ctx context.Context, from, to, dials int) clientMsg {
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
			conn, first, err := c.dial(ctx, k, 3)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			c.track(conn, k, first)
		})
	}
	wg.Wait()
	msg := clientMsg{Conns: to - from - int(failed.Load()), Failed: int(failed.Load())}
	if e, ok := firstErr.Load().(string); ok {
		msg.FirstErr = e
	}
	return msg
}

// dial opens connection k, in up to attempts tries, and reads its first message, which
// must be a snapshot.
func (c *fanClients) dial(ctx context.Context, k, attempts int) (*websocket.Conn, []byte, error) {
	d := websocket.Dialer{
		NetDialContext:   (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.srcs[k%len(c.srcs)])}}).DialContext,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  256,
	}
	url := c.url + "/ws/download/" + c.ids[k%len(c.ids)]
	var conn *websocket.Conn
	var err error
	for attempt := 1; ; attempt++ {
		conn, _, err = d.DialContext(ctx, url, nil)
		if err == nil || attempt >= attempts || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, nil, err
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, first, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("first message: %w", err)
	}
	if !bytes.HasPrefix(first, []byte(`{"type":"snapshot"`)) {
		conn.Close()
		return nil, nil, fmt.Errorf("first message is not a snapshot: %.100s", first)
	}
	conn.SetReadDeadline(time.Time{})
	return conn, first, nil
}

// track keeps connection k, whose snapshot was first, and starts reading it.
func (c *fanClients) track(conn *websocket.Conn, k int, first []byte) {
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	seq, _ := intAfter(first, `"seq":`)
	c.wg.Go(func() { c.read(conn, k, seq, &c.shards[k%len(c.shards)]) })
}

// reconnect brings back the connections lost while holding, each after a random delay of
// up to spread, retrying for 30 s, and times each snapshot from t0. Connections that end
// after this count as closed again.
func (c *fanClients) reconnect(ctx context.Context, t0 time.Time, spread time.Duration) {
	c.mu.Lock()
	lost := c.lost
	c.lost = nil
	c.holding.Store(false)
	c.mu.Unlock()
	for _, k := range lost {
		c.wg.Go(func() {
			if spread > 0 {
				sleep(ctx, rand.N(spread))
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				conn, first, err := c.dial(ctx, k, 1)
				if err == nil {
					at := time.Now()
					seq, _ := intAfter(first, `"seq":`)
					job := c.ids[k%len(c.ids)]
					c.rmu.Lock()
					c.resync.Record(at.Sub(t0))
					if c.snapshots[job] == nil {
						c.snapshots[job] = map[int64]bool{}
					}
					c.snapshots[job][seq] = true
					c.rmu.Unlock()
					c.resynced.Add(1)
					c.track(conn, k, first)
					return
				}
				if time.Now().After(deadline) || ctx.Err() != nil || c.quitting.Load() {
					c.redialFailed.Add(1)
					c.rmu.Lock()
					if c.redialErr == "" {
						c.redialErr = err.Error()
					}
					c.rmu.Unlock()
					return
				}
				sleep(ctx, 50*time.Millisecond+rand.N(50*time.Millisecond))
			}
		})
	}
}

// ended counts connection k as closed by the server, or keeps it for a reconnect while
// holding.
func (c *fanClients) ended(k int) {
	if c.quitting.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding.Load() {
		c.lost = append(c.lost, k)
		return
	}
	c.closed.Add(1)
}

// read follows one connection: every file event that carries a send time in its size
// gives a delivery latency; seq must go up by one at a time.
func (c *fanClients) read(conn *websocket.Conn, k int, seq int64, shard *latShard) {
	var buf bytes.Buffer
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			c.ended(k)
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
	m.Conns, m.Lost = len(c.conns), len(c.lost)
	c.mu.Unlock()
	m.Resynced, m.RedialFailed = c.resynced.Load(), c.redialFailed.Load()
	c.rmu.Lock()
	m.Resync.Merge(c.resync)
	m.RedialErr = c.redialErr
	if len(c.snapshots) > 0 {
		m.Snapshots = map[string][]int64{}
		for job, seqs := range c.snapshots {
			for seq := range seqs {
				m.Snapshots[job] = append(m.Snapshots[job], seq)
			}
		}
	}
	c.rmu.Unlock()
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
