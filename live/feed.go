package live

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A feed carries the events of the channels the hub subscribes to, and says when some were
// lost: a connection that dropped, a slot that moved. The hub subscribes before it reads a
// snapshot and resyncs the watchers of every lost channel, so what a feed loses is covered.
type feed interface {
	// subscribe asks for a channel's events; its confirmation comes through the listener.
	subscribe(ctx context.Context, channel string) error
	unsubscribe(ctx context.Context, channel string) error
	// start delivers to the listener in the background, until close.
	start()
	// close stops the feed and waits for its goroutines.
	close()
}

// listener is what a feed tells the hub.
type listener interface {
	message(channel string, payload []byte)
	// confirmed: the subscription of channel is live.
	confirmed(channel string)
	// lost: events of channels may have been missed (nil: of every channel); their
	// subscriptions are live again.
	lost(channels []string)
}

// newFeed is classic pub/sub on one connection, or, on a Redis Cluster, sharded pub/sub
// with one connection per shard. It tells l what it receives.
func newFeed(rdb redis.UniversalClient, l listener, log *slog.Logger) feed {
	ctx, stop := context.WithCancel(context.Background())
	if cluster, ok := rdb.(*redis.ClusterClient); ok {
		return &shardedFeed{cluster: cluster, l: l, log: log, ctx: ctx, stop: stop, shards: map[string]*shard{},
			of: map[string]*shard{}, moving: map[string]bool{}}
	}
	return &pubsubFeed{ps: rdb.Subscribe(ctx), l: l, log: log, ctx: ctx, stop: stop}
}

// pubsubFeed is classic pub/sub on one connection. go-redis reconnects it by itself,
// resubscribing every channel; whatever was published in between is gone, so the feed
// then says every channel was lost.
type pubsubFeed struct {
	ps  *redis.PubSub
	l   listener
	log *slog.Logger

	// ctx ends the receive loop, which wg awaits.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func (f *pubsubFeed) subscribe(ctx context.Context, ch string) error { return f.ps.Subscribe(ctx, ch) }
func (f *pubsubFeed) unsubscribe(ctx context.Context, ch string) error {
	return f.ps.Unsubscribe(ctx, ch)
}

func (f *pubsubFeed) start() {
	f.wg.Go(func() {
		receive(f.ctx, f.ps, f.log, "subscribe", f.l, func() {
			f.log.Info("live events connection back; resyncing every watcher")
			f.l.lost(nil)
		})
	})
}

func (f *pubsubFeed) close() {
	f.stop()
	f.ps.Close()
	f.wg.Wait()
}

// receive reads ps until ctx ends, passing messages and confirmations of kind to l. After
// a connection loss it calls back once a message arrives again.
func receive(ctx context.Context, ps *redis.PubSub, log *slog.Logger, kind string, l listener, back func()) {
	broken := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 15*time.Second)
		if err != nil {
			if isTimeout(err) {
				// Quiet for a while: a ping proves the connection still works.
				if err := ps.Ping(ctx); err == nil {
					continue
				}
			}
			if ctx.Err() != nil {
				return
			}
			if !broken {
				log.Warn("live events connection lost; reconnecting", "err", err)
			}
			broken = true
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		if broken {
			broken = false
			back()
		}
		switch m := msg.(type) {
		case *redis.Message:
			l.message(m.Channel, []byte(m.Payload))
		case *redis.Subscription:
			if m.Kind == kind {
				l.confirmed(m.Channel)
			}
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// shardedFeed is sharded pub/sub on a Redis Cluster: an event reaches only the shard that
// serves its job's slot (classic PUBLISH is broadcast to every node). It holds one
// connection per master, subscribed to the watched channels that master serves, one
// SSUBSCRIBE per channel, since one command must stay within one slot. When a connection
// fails (a failover) or the server unsubscribes it from a channel (its slot moved), the feed
// finds each channel's master again, subscribes there, and says the channel was lost once
// the new subscription is live.
type shardedFeed struct {
	cluster *redis.ClusterClient
	l       listener
	log     *slog.Logger

	mu     sync.Mutex
	shards map[string]*shard // master address → its connection; guarded by mu
	of     map[string]*shard // channel → its shard (nil while move finds it one); guarded by mu
	moving map[string]bool   // channels resubscribed after a loss, not yet confirmed; guarded by mu

	// ctx ends the shards' receive loops and moves, which wg awaits.
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

type shard struct {
	addr   string
	ps     *redis.PubSub
	cancel context.CancelFunc
	done   bool // closed, or broken and being replaced; guarded by the feed's mu
}

// start has nothing to do: each shard's loop starts with its first subscription.
func (f *shardedFeed) start() {}

// subscribe subscribes ch on its master. When that fails (the master is gone, a failover
// under way, or the client's map of slots is stale), move goes on trying, on the master it
// finds next, and the confirmation comes when it succeeds, as it would have: the watch
// waits for it instead of failing into the same outage.
func (f *shardedFeed) subscribe(ctx context.Context, ch string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.subscribeLocked(ctx, ch); err != nil {
		f.log.Info("live events: a shard did not take a subscription; trying its master again", "channel", ch, "err", err)
		f.of[ch] = nil // watched, on no shard yet
		f.wg.Go(func() { f.move(nil, []string{ch}) })
	}
	return nil
}

// subscribeLocked subscribes ch on the shard of its master; f.mu must be held.
func (f *shardedFeed) subscribeLocked(ctx context.Context, ch string) error {
	node, err := f.cluster.MasterForKey(ctx, ch)
	if err != nil {
		return err
	}
	addr := node.Options().Addr
	if s := f.shards[addr]; s != nil && !s.done {
		if err := s.ps.SSubscribe(ctx, ch); err != nil {
			return err
		}
		f.of[ch] = s
		return nil
	}
	// A new shard's connection is kept once its first subscription went through: a master
	// that is gone (a failover under way) is tried again by move, not by a receive loop.
	sctx, cancel := context.WithCancel(f.ctx)
	s := &shard{addr: addr, ps: node.SSubscribe(sctx), cancel: cancel}
	if err := s.ps.SSubscribe(ctx, ch); err != nil {
		cancel()
		s.ps.Close()
		return err
	}
	f.shards[addr] = s
	f.of[ch] = s
	f.wg.Go(func() { f.receive(sctx, s) })
	return nil
}

func (f *shardedFeed) unsubscribe(ctx context.Context, ch string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.of[ch]
	delete(f.of, ch)
	delete(f.moving, ch)
	if s == nil || s.done {
		return nil
	}
	return s.ps.SUnsubscribe(ctx, ch)
}

func (f *shardedFeed) close() {
	f.stop()
	f.mu.Lock()
	for _, s := range f.shards {
		s.done = true
		s.cancel()
		s.ps.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// receive reads one shard's connection. A failure ends it: go-redis would reconnect to the
// same address and resubscribe every channel in one command, which a cluster refuses for
// channels of several slots, and the address may no longer be a master.
func (f *shardedFeed) receive(ctx context.Context, s *shard) {
	for ctx.Err() == nil {
		msg, err := s.ps.ReceiveTimeout(ctx, 15*time.Second)
		if err != nil {
			if isTimeout(err) && s.ps.Ping(ctx) == nil {
				continue
			}
			if ctx.Err() == nil {
				f.log.Warn("live events connection to a shard lost; moving its channels", "shard", s.addr, "err", err)
				f.wg.Go(func() { f.move(s, nil) })
			}
			return
		}
		switch m := msg.(type) {
		case *redis.Message:
			f.l.message(m.Channel, []byte(m.Payload))
		case *redis.Subscription:
			switch m.Kind {
			case "ssubscribe":
				f.confirmed(m.Channel)
			case "sunsubscribe":
				// Unasked for, the server unsubscribed a channel whose slot moved away.
				f.mu.Lock()
				ours := f.of[m.Channel] == s
				f.mu.Unlock()
				if ours {
					f.wg.Go(func() { f.move(s, []string{m.Channel}) })
				}
			}
		}
	}
}

// confirmed passes a confirmation on, and says a moved channel was lost once its new
// subscription is live, so that the resync's snapshot cannot miss an event.
func (f *shardedFeed) confirmed(ch string) {
	f.mu.Lock()
	moved := f.moving[ch]
	delete(f.moving, ch)
	f.mu.Unlock()
	f.l.confirmed(ch)
	if moved {
		f.l.lost([]string{ch})
	}
}

// move resubscribes channels of shard s (every one when channels is nil; s is nil for
// channels on no shard) on their masters now, retrying until the cluster has one for each
// (a failover takes a few seconds).
func (f *shardedFeed) move(s *shard, channels []string) {
	f.mu.Lock()
	if channels == nil {
		s.done = true
		s.cancel()
		s.ps.Close()
		for ch, of := range f.of {
			if of == s {
				channels = append(channels, ch)
			}
		}
	}
	f.mu.Unlock()
	for delay := 100 * time.Millisecond; len(channels) > 0 && f.ctx.Err() == nil; delay = min(2*delay, 2*time.Second) {
		f.cluster.ReloadState(f.ctx)
		var left []string
		f.mu.Lock()
		for _, ch := range channels {
			if _, watched := f.of[ch]; !watched {
				continue // unsubscribed meanwhile
			}
			f.moving[ch] = true
			if err := f.subscribeLocked(f.ctx, ch); err != nil {
				left = append(left, ch)
			}
		}
		f.mu.Unlock()
		if channels = left; len(left) > 0 {
			sleep(f.ctx, delay)
		}
	}
}
