package redistest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/redis/go-redis/v9"
)

// replicationOf is the role of node and the port of its master (empty for a master), as
// its INFO replication says.
func replicationOf(t *testing.T, node *devbin.Redis) (role, masterPort string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: node.Addr()})
	defer c.Close()
	info, err := c.InfoMap(t.Context(), "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication of %s: %v", node.Addr(), err)
	}
	return info["Replication"]["role"], info["Replication"]["master_port"]
}

// setReplicated sets key to value on the master of c and waits until a replica has it, so
// that a failover cannot lose it.
func setReplicated(t *testing.T, c redis.Cmdable, key, value string) {
	t.Helper()
	var wait *redis.Cmd
	_, err := c.Pipelined(t.Context(), func(p redis.Pipeliner) error {
		p.Set(t.Context(), key, value, 0)
		wait = p.Do(t.Context(), "WAIT", 1, 10_000) // on the connection of the SET
		return nil
	})
	if err != nil {
		t.Fatalf("SET %s then WAIT: %v", key, err)
	}
	if n, _ := wait.Int(); n < 1 {
		t.Fatalf("SET %s reached %d replicas within 10 s, want 1", key, n)
	}
}

func TestSentinelGroupFailsOverAndTheOldMasterReturnsAsReplica(t *testing.T) {
	ctx := t.Context()
	started := time.Now()
	s := StartSentinels(t, SentinelOptions{})
	t.Logf("Sentinel group of %d servers and %d Sentinels started in %v", len(s.Nodes()), len(s.Addrs), time.Since(started))
	c := s.Client()
	setReplicated(t, c, "before", "1")

	first := s.Master()
	killed := time.Now()
	old := s.KillMaster()
	if old != first.Addr() {
		t.Fatalf("KillMaster killed %s, want the master %s", old, first.Addr())
	}
	promoted := s.WaitForFailover(old)
	t.Logf("failover from %s to %s in %v", old, promoted, time.Since(killed))
	if slices.IndexFunc(s.Nodes(), func(r *devbin.Redis) bool { return r.Addr() == promoted }) < 0 {
		t.Fatalf("the new master %s is not a server of the group", promoted)
	}

	if err := c.Set(ctx, "after", "2", 0).Err(); err != nil {
		t.Fatalf("SET through the FailoverClient after the failover: %v", err)
	}
	if got, err := c.Get(ctx, "before").Result(); got != "1" || err != nil {
		t.Errorf("GET before after the failover = %q, %v; want the value written before it", got, err)
	}

	restarted := time.Now()
	if err := first.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	s.WaitHealthy()
	t.Logf("return of %s as a replica in %v", first.Addr(), time.Since(restarted))
	role, masterPort := replicationOf(t, first)
	if want := strconv.Itoa(s.Master().Port); role != "slave" || masterPort != want {
		t.Errorf("the old master restarted is a %s of port %q, want a replica of the new master on %s", role, masterPort, want)
	}
	if got := s.MasterAddr(); got != promoted {
		t.Errorf("after the old master's return the Sentinels name %s, want %s still", got, promoted)
	}
}

// keysOnEveryMaster returns, for each master of c, a key whose slot it serves.
func keysOnEveryMaster(t *testing.T, c *Cluster) map[*devbin.Redis]string {
	t.Helper()
	masters := c.Masters()
	keys := map[*devbin.Redis]string{}
	for i := 0; len(keys) < len(masters); i++ {
		key := "key-" + strconv.Itoa(i)
		if m := c.MasterOf(key); keys[m] == "" {
			keys[m] = key
		}
	}
	return keys
}

func TestClusterServesEverySlotThroughAFailoverAndARejoin(t *testing.T) {
	ctx := t.Context()
	started := time.Now()
	c := StartCluster(t, ClusterOptions{})
	t.Logf("Cluster of %d nodes started in %v", len(c.Nodes()), time.Since(started))
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	client := c.Client()
	keys := keysOnEveryMaster(t, c)
	for _, key := range keys {
		m, err := client.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		setReplicated(t, m, key, "value of "+key)
	}
	for _, key := range keys {
		if got, err := client.Get(ctx, key).Result(); got != "value of "+key || err != nil {
			t.Errorf("GET %s through the ClusterClient = %q, %v; want what was set", key, got, err)
		}
	}
	t.Run("shard channels of every master", func(t *testing.T) {
		for _, channel := range keys { // a shard channel's slot is found as a key's
			shardChannelDelivers(t, client, channel)
		}
	})

	victim := masters[0]
	key := keys[victim]
	killed := time.Now()
	c.Kill(victim)
	c.WaitHealthy()
	t.Logf("failover of %s in %v", victim.Addr(), time.Since(killed))
	heir := c.MasterOf(key)
	if heir == victim || slices.Contains(masters, heir) {
		t.Fatalf("after %s was killed its slots are served by %s; want one of its replicas", victim.Addr(), heir.Addr())
	}
	if got, err := client.Get(ctx, key).Result(); got != "value of "+key || err != nil {
		t.Errorf("GET %s through the ClusterClient after the failover = %q, %v; want what was set before", key, got, err)
	}
	if err := client.Set(ctx, key, "after the failover", 0).Err(); err != nil {
		t.Errorf("SET %s through the ClusterClient after the failover: %v", key, err)
	}

	restarted := time.Now()
	c.Restart(victim)
	c.WaitHealthy()
	t.Logf("rejoin of %s in %v", victim.Addr(), time.Since(restarted))
	if role, masterPort := replicationOf(t, victim); role != "slave" || masterPort != strconv.Itoa(heir.Port) {
		t.Errorf("the killed master restarted is a %s of port %q, want a replica of %s, which took its slots", role, masterPort, heir.Addr())
	}
	if got := len(c.Masters()); got != 3 {
		t.Errorf("%d masters after the rejoin, want 3", got)
	}
}

// shardChannelDelivers subscribes to channel with SSUBSCRIBE and checks that a message
// published with SPUBLISH reaches it.
func shardChannelDelivers(t *testing.T, client *redis.ClusterClient, channel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sub := client.SSubscribe(ctx, channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the confirmation of the subscription
		t.Fatalf("SSUBSCRIBE %s: %v", channel, err)
	}
	want := fmt.Sprintf("hello on %s", channel)
	if n, err := client.SPublish(ctx, channel, want).Result(); n != 1 || err != nil {
		t.Fatalf("SPUBLISH %s = %d, %v; want 1 receiver", channel, n, err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("receive on %s: %v", channel, err)
	}
	if diff := cmp.Diff(want, msg.Payload); diff != "" {
		t.Errorf("message on %s (-want +got):\n%s", channel, diff)
	}
}

// addrs are the addresses of servers.
func addrs(servers []*devbin.Redis) []string {
	var out []string
	for _, r := range servers {
		out = append(out, r.Addr())
	}
	return out
}

func TestClusterWithoutReplicasIsAllMasters(t *testing.T) {
	c := StartCluster(t, ClusterOptions{ReplicasPerMaster: -1})
	if diff := cmp.Diff(addrs(c.Nodes()), addrs(c.Masters())); diff != "" {
		t.Errorf("the masters of a cluster without replicas, against its nodes (-want +got):\n%s", diff)
	}
	if got := len(c.Nodes()); got != 3 {
		t.Errorf("%d nodes, want the 3 masters", got)
	}
}
