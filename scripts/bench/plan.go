package main

import "time"

// Plan sizes a run of the benchmark.
type Plan struct {
	// Clients are the levels of concurrent clients of the initiate and status loads.
	Clients []int
	// Duration is one round of one load; Rounds take turns at which load goes first.
	Duration time.Duration
	Rounds   int
	// Warmup runs each load once, unmeasured, before its rounds.
	Warmup time.Duration

	// StatusJobs are the jobs the status loads read, round robin.
	StatusJobs int

	// Fan is the fan-out of longhaul and of the Node peer; Scale the same on one longhaul
	// API with many more clients; Watchers thousands of clients of one big running job.
	Fan, Scale, Watchers FanPlan

	// StormConns clients watch StormJobs running jobs; the API restarts and they reconnect
	// within StormSpread, while StormRate events per second go on.
	StormConns, StormJobs, StormRate int
	StormSpread                      time.Duration

	// AfterCloseConns connections open and close, and the API's RSS is read for
	// AfterCloseWait after.
	AfterCloseConns int
	AfterCloseWait  time.Duration

	// FilesPerJob is the size of the jobs of the worker path and end to end.
	FilesPerJob int
	// WorkerJobs are run by one worker process; NoopTasks by asynq with a no-op handler.
	WorkerJobs, NoopTasks int
	// WorkerConcurrency is the jobs one worker process runs at once (longhaul's default).
	WorkerConcurrency int
	// E2EJobs are posted by E2EClients concurrent clients, for each count of E2EWorkers.
	E2EJobs, E2EClients int
	E2EWorkers          []int
	// E2ESingles are then posted one at a time, each after the last completed.
	E2ESingles int
}

// FanPlan sizes one fan-out: Conns WebSocket clients watch Jobs running jobs of Files
// files each, while Rate events per second go through the store for Duration.
type FanPlan struct {
	Conns, Jobs, Files, Rate int
	Duration                 time.Duration
	// Idle is how long the connected clients stay idle before the RSS is read.
	Idle time.Duration
}

// connsPerClientProcess is the most WebSocket clients one client process holds: one
// loopback source address each, well within its ports and its file limit.
const connsPerClientProcess = 10_000

// fullPlan is `make bench`: within about 10 minutes on 2 cores.
var fullPlan = Plan{
	Clients:         []int{1, 8, 64},
	Duration:        2 * time.Second,
	Rounds:          2,
	Warmup:          500 * time.Millisecond,
	StatusJobs:      64,
	Fan:             FanPlan{Conns: 10_000, Jobs: 1000, Files: 4, Rate: 2000, Duration: 20 * time.Second, Idle: 5 * time.Second},
	Scale:           FanPlan{Conns: 50_000, Jobs: 1000, Files: 4, Rate: 400, Duration: 10 * time.Second, Idle: 5 * time.Second},
	Watchers:        FanPlan{Conns: 5000, Jobs: 1, Files: 1000, Rate: 2, Duration: 20 * time.Second, Idle: 5 * time.Second},
	StormConns:      10_000,
	StormJobs:       100,
	StormRate:       100,
	StormSpread:     2 * time.Second,
	AfterCloseConns: 10_000,
	AfterCloseWait:  60 * time.Second,

	FilesPerJob:       4,
	WorkerJobs:        1000,
	NoopTasks:         10000,
	WorkerConcurrency: 20,
	E2EJobs:           1000,
	E2EClients:        16,
	E2EWorkers:        []int{1, 2},
	E2ESingles:        10,
}

// quickPlan is the tiny version that the tests run: every stage, in seconds.
var quickPlan = Plan{
	Clients:         []int{1, 8},
	Duration:        100 * time.Millisecond,
	Rounds:          1,
	Warmup:          20 * time.Millisecond,
	StatusJobs:      4,
	Fan:             FanPlan{Conns: 40, Jobs: 10, Files: 4, Rate: 200, Duration: time.Second, Idle: 100 * time.Millisecond},
	Scale:           FanPlan{Conns: 60, Jobs: 10, Files: 4, Rate: 100, Duration: 500 * time.Millisecond, Idle: 100 * time.Millisecond},
	Watchers:        FanPlan{Conns: 20, Jobs: 1, Files: 50, Rate: 2, Duration: time.Second, Idle: 100 * time.Millisecond},
	StormConns:      40,
	StormJobs:       4,
	StormRate:       20,
	StormSpread:     200 * time.Millisecond,
	AfterCloseConns: 40,
	AfterCloseWait:  time.Second,

	FilesPerJob:       4,
	WorkerJobs:        20,
	NoopTasks:         100,
	WorkerConcurrency: 20,
	E2EJobs:           20,
	E2EClients:        4,
	E2EWorkers:        []int{1, 2},
	E2ESingles:        1,
}
