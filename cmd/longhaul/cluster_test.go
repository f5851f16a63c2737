package main

// longhaul on a Redis Cluster of six nodes (three masters, three replicas), started by the
// process kit: the demo's scenarios through two API and two worker processes, a worker
// killed mid-job, and a master killed mid-run. Every key of a job shares one slot, live
// events go by sharded pub/sub, and asynq's keys share the slot of their queue.

import (
	"context"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/longhaul-dev/longhaul/tasks"
	"github.com/redis/go-redis/v9"
)

// clusterTarget names the cluster c to longhaul: its seed nodes.
func clusterTarget(c *redistest.Cluster) map[string]string {
	return map[string]string{"REDIS_CLUSTER_ADDRS": strings.Join(c.Seeds, ",")}
}

// startProcesses starts apis API processes and workers worker processes, each a child
// process on env, and returns the APIs' base URLs and every process.
func startProcesses(t *testing.T, env map[string]string, apis, workers int) (bases []string, procs []*devbin.Longhaul) {
	t.Helper()
	for range apis {
		a := startChild(t, "api", env)
		bases, procs = append(bases, a.URL), append(procs, a)
	}
	for range workers {
		procs = append(procs, startChild(t, "worker", env))
	}
	return bases, procs
}

// TestClusterRunsTheDemo runs the demo's three scenarios on a six-node cluster through two
// API and two worker processes, each followed live on the API it was not posted to; then
// duplicates with one Idempotency-Key, posted to both APIs at once, make one job; a cancel
// ends a running job; and the dashboard lists the queue.
func TestClusterRunsTheDemo(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	env := fastEnvOn(t, clusterTarget(c), "LONGHAUL_DASHBOARD", "readonly")
	bases, procs := startProcesses(t, env, 2, 2)
	rdb := c.Client()

	runScenarios(t, bases, func(t *testing.T, _ string, f fileStatus) {
		for _, base := range bases { // a file made by either worker downloads from either API
			checkDownload(t, base+f.DownloadURL, f.Size)
		}
	})

	t.Run("idempotent duplicates make one job", func(t *testing.T) {
		before := countRecords(t, rdb)
		const posts = 6
		ids := make([]string, posts)
		codes := make([]int, posts)
		var wg sync.WaitGroup
		for i := range posts {
			wg.Go(func() {
				code, body := client{t, bases[i%len(bases)]}.postWith("order-cluster-1", 70000, 70007)
				codes[i] = code
				ids[i], _ = body["job_id"].(string)
			})
		}
		wg.Wait()
		for i := range posts {
			if (codes[i] != http.StatusAccepted && codes[i] != http.StatusOK) || ids[i] != ids[0] || ids[i] == "" {
				t.Fatalf("duplicate posts answered %v with jobs %v; want 202 or 200, all with one job", codes, ids)
			}
		}
		if after := countRecords(t, rdb); after != before+1 {
			t.Errorf("%d job records after %d duplicate posts, %d before; want one more", after, posts, before)
		}
		p := &poller{client: client{t, bases[1]}, id: ids[0]}
		checkCompleted(t, p.untilDone(time.Minute), []int64{70000, 70007})
	})

	t.Run("cancel", func(t *testing.T) {
		files := make([]int64, 40)
		for i := range files {
			files[i] = 71000 + 7*int64(i)
		}
		p := postJob(client{t, bases[0]}, files...)
		conn := livetest.Dial(t, bases[1], p.id, nil)
		live := make(chan []livetest.Message, 1)
		go func() { msgs, _ := livetest.Follow(t, conn); live <- msgs }()
		req, _ := http.NewRequest(http.MethodDelete, bases[1]+"/v1/download/"+p.id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("DELETE = %d, want 202", resp.StatusCode)
		}
		if final := p.untilDone(30 * time.Second); final.Status != "canceled" {
			t.Errorf("the canceled job ended %s", final.Status)
		}
		if got := livetest.FinalStatus(<-live); got != "canceled" {
			t.Errorf("the WebSocket ended on %q, want canceled", got)
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		for _, base := range bases {
			r := proctest.Get(t, http.DefaultClient, base+"/monitoring/api/queues")
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"queue":"downloads"`) {
				t.Errorf("asynqmon's queue list on %s = %d %s, want the downloads queue", base, r.Status, r.Body)
			}
		}
	})
	checkLogsFree(t, procs, "CROSSSLOT", "READONLY", "MOVED")
}

// countRecords counts the job records in Redis, on every master of a cluster.
func countRecords(t *testing.T, rdb redis.UniversalClient) int {
	t.Helper()
	var mu sync.Mutex
	n := 0
	count := func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, jobs.RecordsPattern).Result()
		mu.Lock()
		n += len(keys)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(t.Context(), count)
	} else {
		err = count(t.Context(), rdb.(*redis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkLogsFree checks that no process logged any of words: errors a cluster or a
// failover gives to a client that got it wrong.
func checkLogsFree(t *testing.T, procs []*devbin.Longhaul, words ...string) {
	t.Helper()
	for _, p := range procs {
		log, err := os.ReadFile(p.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(log)) {
			for _, w := range words {
				if strings.Contains(line, w) {
					t.Errorf("%s logged %s: %s", p.Name(), strings.TrimSpace(w), strings.TrimSpace(line))
				}
			}
		}
	}
}

// TestClusterWorkerKilledMidJob kills a worker with SIGKILL in the middle of a job on the
// cluster. The job resumes on the other worker from its checkpoints once the dead
// worker's lease expires (a rescue task, about 30 s), and completes with every file made
// ready once. Then asynq's own recovery of the dead task, the path of its scripts that once
// failed with CROSSSLOT on a cluster, moves it out of active within its one-minute round,
// and it ends without running the job again; no process logs a CROSSSLOT.
func TestClusterWorkerKilledMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease to expire and its recoverer to run (about 70 s)")
	}
	t.Parallel() // it mostly waits
	c := redistest.StartCluster(t, redistest.ClusterOptions{AppendOnly: true})
	env := fastEnvOn(t, clusterTarget(c), "LONGHAUL_FILE_TIME_MIN", "1s", "LONGHAUL_FILE_TIME_MAX", "1500ms",
		"LONGHAUL_FILE_CONCURRENCY", "2")
	bases, procs := startProcesses(t, env, 1, 1)
	rdb := c.Client()
	store := jobs.NewStore(rdb, jobs.Options{Sharded: true})

	ids := []int64{70000, 70007, 70014, 70021, 70028, 70035, 70042, 70049}
	p := postJob(client{t, bases[0]}, ids...)
	proctest.WaitUntil(t, time.Minute, "a file ready and another part-way", func() bool {
		s := p.poll()
		return countReady(s) > 0 && len(filesMidway(s, 0, 100)) > 0
	})
	procs[1].Kill()
	killed := time.Now()
	madeBefore := auditByFile(t, store, p.id)
	deadToken := onlyToken(t, madeBefore)
	procs = append(procs, startChild(t, "worker", env))

	final := p.untilDone(time.Minute)
	t.Logf("the job ended %v after its worker was killed", time.Since(killed).Round(100*time.Millisecond))
	checkCompleted(t, final, ids)
	made := checkAuditOnce(t, store, p.id, ids)
	for _, id := range ids {
		if _, wasReady := madeBefore[id]; (made[id][0] == deadToken) != wasReady {
			t.Errorf("file %d: made by the killed attempt = %v, ready before the kill = %v", id, made[id][0] == deadToken, wasReady)
		}
	}

	// The dead worker's task (its id is the job's) stays active until asynq's recoverer
	// sees its lease expired by 30 s more: within 90 s of the kill, on the new worker's
	// one-minute round. It then goes to retry, runs, finds the job taken over and ends.
	proctest.WaitUntil(t, 90*time.Second-time.Since(killed), "asynq to recover the dead worker's task", func() bool {
		st := taskStateOrGoneOn(rdb, p.id)
		return st == asynq.TaskStateCompleted.String() || st == "gone"
	})
	t.Logf("asynq recovered the dead task %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	if s := p.poll(); s.Status != "completed" || s.Seq != final.Seq {
		t.Errorf("after the dead task ran again the job is %s at seq %d; want it left completed at seq %d", s.Status, s.Seq, final.Seq)
	}
	checkLogsFree(t, procs, "CROSSSLOT")
}

// TestClusterFailoverMidRun kills, with SIGKILL, the master that holds asynq's queue and
// running jobs, while two workers run jobs on every master and every job is followed live.
// Its replica takes over within seconds. Every job acknowledged before the kill, and one
// acknowledged after it, ends completed with each file made ready once (by the audit kept
// with the job, and by the workers' own counts), and every live client resyncs and ends on
// its job's final state. They end within 40 s of the kill: a client that waited for its
// next reload of the slots (a minute by default) would still be dialling the dead master.
func TestClusterFailoverMidRun(t *testing.T) {
	c := redistest.StartCluster(t, redistest.ClusterOptions{AppendOnly: true})
	env := fastEnvOn(t, clusterTarget(c), "LONGHAUL_FILE_TIME_MIN", "1s", "LONGHAUL_FILE_TIME_MAX", "2s",
		"LONGHAUL_FILE_CONCURRENCY", "2")
	bases, procs := startProcesses(t, env, 2, 0)
	var metricsAddrs []string
	for range 2 {
		addr := freeAddr(t)
		workerEnv := maps.Clone(env)
		workerEnv["LONGHAUL_METRICS_ADDR"] = addr
		metricsAddrs, procs = append(metricsAddrs, addr), append(procs, startChild(t, "worker", workerEnv))
	}
	rdb := c.Client()
	store := jobs.NewStore(rdb, jobs.Options{Sharded: true})

	// The victim serves asynq's queue (its keys share the slot of "{downloads}") and some
	// of the jobs: its death stops the queue and cuts the live feeds of those jobs at once.
	victim := c.MasterOf("asynq:{" + tasks.Queue + "}:pending")
	ids := []int64{70000, 70007, 70014, 70021, 70028, 70035}
	var held []*followedJob
	onVictim := map[*followedJob]bool{}
	for len(held) < 12 || len(onVictim) < 3 {
		if len(held) == 40 {
			t.Fatalf("%d jobs posted, %d of them on %s; want 3 on it", len(held), len(onVictim), victim.Addr())
		}
		j := followJob(t, bases[len(held)%2], bases[(len(held)+1)%2], ids...)
		if c.MasterOf(jobs.RecordKey(j.id)) == victim {
			onVictim[j] = true
		}
		held = append(held, j)
	}
	proctest.WaitUntil(t, 30*time.Second, "a job on the victim part-way through a file", func() bool {
		for j := range onVictim {
			if s := j.poll(); s.Status == "processing" && len(filesMidway(s, 0, 100)) > 0 {
				return true
			}
		}
		return false
	})
	cut := map[*followedJob]bool{} // the live clients whose feed the kill cuts
	for j := range onVictim {
		if !j.poll().terminal() {
			cut[j] = true
		}
	}
	killed := time.Now()
	c.Kill(victim)
	c.WaitHealthy()
	t.Logf("the cluster failed over in %v", time.Since(killed).Round(100*time.Millisecond))
	held = append(held, followJob(t, bases[0], bases[1], ids...))

	unavailable := 0
	for _, j := range held {
		final := j.untilDone(40*time.Second - time.Since(killed))
		checkCompleted(t, final, ids)
		checkAuditOnce(t, store, j.id, ids)
		msgs := checkFollowed(t, j, final)
		if snapshots := countSnapshots(msgs); cut[j] && snapshots < 2 {
			t.Errorf("job %s on the killed master: its live client got %d snapshot(s); want a resync after the kill", j.id, snapshots)
		}
		unavailable += j.unavailable
	}
	t.Logf("%d polls answered 503 during the failover", unavailable)
	t.Logf("%d jobs completed %v after the kill", len(held), time.Since(killed).Round(100*time.Millisecond))
	ready := 0.0
	for _, addr := range metricsAddrs {
		ready += scrape(t, "http://"+addr+"/metrics", "").value("longhaul_files_finished_total", "outcome", "ready")
	}
	if want := float64(len(held) * len(ids)); ready != want {
		t.Errorf("the workers count %v files made ready, want %v: some file was prepared twice, or not counted", ready, want)
	}
	checkLogsFree(t, procs, "CROSSSLOT")
}

// checkFollowed checks that the live client of j ended on the job's final state, and
// returns what it received. A failover can lose writes the live client saw; the record is
// then repaired into a new epoch above them, maybe after the poller read the final state in
// the old one, so the live client is held to the record as it is now.
func checkFollowed(t *testing.T, j *followedJob, final jobStatus) []livetest.Message {
	t.Helper()
	msgs := <-j.live
	if len(msgs) == 0 {
		t.Errorf("job %s: the WebSocket got nothing", j.id)
		return msgs
	}
	last := msgs[len(msgs)-1]
	if last.Seq != final.Seq || last.Epoch != final.Epoch {
		j.etag = ""
		final = j.poll()
	}
	if got := livetest.FinalStatus(msgs); got != final.Status {
		t.Errorf("job %s: the WebSocket ended on %q, the job %s", j.id, got, final.Status)
	} else if last.Seq != final.Seq || last.Epoch != final.Epoch {
		t.Errorf("job %s: the WebSocket's last seq is %d in epoch %s, the status body's %d in epoch %s",
			j.id, last.Seq, last.Epoch, final.Seq, final.Epoch)
	}
	return msgs
}

func countSnapshots(msgs []livetest.Message) int {
	n := 0
	for _, m := range msgs {
		if m.Type == "snapshot" {
			n++
		}
	}
	return n
}

// followedJob is a job followed by a polling client and by a live WebSocket client.
type followedJob struct {
	*poller
	live chan []livetest.Message // the live client's messages, once its connection closes
}

// followJob posts a job of files to the API at base and follows it live on the API at
// liveBase.
func followJob(t *testing.T, base, liveBase string, files ...int64) *followedJob {
	t.Helper()
	j := &followedJob{poller: postJob(client{t, base}, files...), live: make(chan []livetest.Message, 1)}
	j.retryUnavailable = true // while a master fails over
	conn := livetest.Dial(t, liveBase, j.id, nil)
	go func() { msgs, _ := livetest.Follow(t, conn); j.live <- msgs }()
	return j
}
