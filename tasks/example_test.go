package tasks_test

import (
	"fmt"
	"time"

	"github.com/longhaul-dev/longhaul/tasks"
)

func ExampleNewDownloadTask() {
	opts := tasks.Options{FileTimeMax: 30 * time.Second, FileConcurrency: 4}
	task, err := tasks.NewDownloadTask(tasks.DownloadPayload{JobID: "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB"}, 10, opts)
	if err != nil {
		panic(err)
	}
	fmt.Println(task.Type(), string(task.Payload()))
	fmt.Println("timeout:", opts.Timeout(10))
	// Output:
	// download:prepare {"job_id":"dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB"}
	// timeout: 4m0s
}

func ExampleNewWebhookTask() {
	p := tasks.WebhookPayload{JobID: "dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB", Event: tasks.EventFileReady, FileID: 70007}
	opts := tasks.WebhookOptions{Backoff: 10 * time.Second}
	task, err := tasks.NewWebhookTask(p, opts)
	if err != nil {
		panic(err)
	}
	fmt.Println(task.Type(), string(task.Payload()))
	fmt.Println("webhook-id:", p.MessageID())
	fmt.Println("retries after:", opts.RetryDelay(1), opts.RetryDelay(2), opts.RetryDelay(3))
	// Output:
	// webhook:deliver {"job_id":"dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB","event":"file.ready","file_id":70007}
	// webhook-id: msg_dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB_file_70007
	// retries after: 10s 20s 40s
}
