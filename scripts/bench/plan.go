package main

import "time"

// Plan sizes a run of the benchmark.
type Plan struct {
	// Clients are the levels of concurrent clients of the initiate and status loads.
	Clients []int
	// Duration is one round of one load; Rounds alternate longhaul and its baseline.
	Duration time.Duration
	Rounds   int
	// Warmup runs each load once, unmeasured, before its rounds.
	Warmup time.Duration

	// StatusJobs are the jobs the status loads read, round robin.
	StatusJobs int

	// FanConns WebSocket clients in FanProcs processes watch FanJobs running jobs, while
	// FanRate events per second go through the store for FanDuration.
	FanConns, FanProcs, FanJobs, FanRate int
	FanDuration                          time.Duration
	// FanIdle is how long the connected clients stay idle before the RSS is read.
	FanIdle time.Duration

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

// fullPlan is `make bench`: the sizes of the issue, within 10 minutes on 2 cores.
var fullPlan = Plan{
	Clients:           []int{1, 8, 64},
	Duration:          2 * time.Second,
	Rounds:            2,
	Warmup:            500 * time.Millisecond,
	StatusJobs:        64,
	FanConns:          10000,
	FanProcs:          2,
	FanJobs:           1000,
	FanRate:           2000,
	FanDuration:       20 * time.Second,
	FanIdle:           5 * time.Second,
	FilesPerJob:       4,
	WorkerJobs:        1000,
	NoopTasks:         10000,
	WorkerConcurrency: 20,
	E2EJobs:           1000,
	E2EClients:        16,
	E2EWorkers:        []int{1, 2},
	E2ESingles:        10,
}

// quickPlan is the tiny version that the tests run: every stage, a few seconds in all.
var quickPlan = Plan{
	Clients:           []int{1, 8},
	Duration:          100 * time.Millisecond,
	Rounds:            1,
	Warmup:            20 * time.Millisecond,
	StatusJobs:        4,
	FanConns:          40,
	FanProcs:          2,
	FanJobs:           10,
	FanRate:           200,
	FanDuration:       time.Second,
	FanIdle:           100 * time.Millisecond,
	FilesPerJob:       4,
	WorkerJobs:        20,
	NoopTasks:         100,
	WorkerConcurrency: 20,
	E2EJobs:           20,
	E2EClients:        4,
	E2EWorkers:        []int{1, 2},
	E2ESingles:        1,
}
