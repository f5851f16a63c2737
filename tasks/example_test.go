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
