package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/longhaul-dev/longhaul/client"
)

// Start a job and follow it live to its end. The last event of a watch is a snapshot of
// the job in its terminal status.
func Example() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("LONGHAUL_URL"))
	if err != nil {
		log.Fatal(err)
	}
	started, err := c.Initiate(ctx, []int64{70000, 70001}, client.InitiateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	var final *client.Job
	for ev := range c.Watch(ctx, started.JobID) {
		switch ev.Type {
		case client.EventError:
			log.Fatal(ev.Err)
		case client.EventSnapshot:
			final = ev.Job
		}
	}
	fmt.Println(final.Status)
	for _, f := range final.Files {
		fmt.Println(f.ID, f.Status)
	}
	// Output:
	// completed
	// 70000 ready
	// 70001 unavailable
}

// Save a ready file. DownloadFile writes a part file first, resumes it when a transfer is
// cut, and checks the length against the job's status.
func ExampleClient_DownloadFile() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("LONGHAUL_URL"))
	if err != nil {
		log.Fatal(err)
	}
	started, err := c.Initiate(ctx, []int64{70007}, client.InitiateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for ev := range c.Watch(ctx, started.JobID) {
		if ev.Type == client.EventFile && ev.File.Status == client.StatusReady {
			dir, err := os.MkdirTemp("", "longhaul-example-")
			if err != nil {
				log.Fatal(err)
			}
			defer os.RemoveAll(dir)
			n, err := c.DownloadFile(ctx, started.JobID, ev.File.ID, filepath.Join(dir, "70007.bin"))
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("saved 70007.bin, every byte:", n == ev.File.Size)
		}
	}
	// Output:
	// saved 70007.bin, every byte: true
}

// Cancel a job: files not yet ready end canceled, ready ones stay downloadable.
func ExampleClient_Cancel() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("LONGHAUL_URL"))
	if err != nil {
		log.Fatal(err)
	}
	started, err := c.Initiate(ctx, []int64{70000, 70007, 70014, 70021, 70028, 70035, 70042, 70049},
		client.InitiateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.Cancel(ctx, started.JobID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.Status)
	// Output:
	// canceled
}

// Every error answer of the server is an *Error with the contract's code.
func ExampleError() {
	c, err := client.New(os.Getenv("LONGHAUL_URL"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Status(context.Background(), "dl_00000000000000000000000000")
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Code, client.IsNotFound(err))
	}
	// Output:
	// 404 not_found true
}

// A client for a server with API keys: the key goes in a header on every REST call, and
// each live connection gets its own one-time ticket.
func ExampleWithKey() {
	c, err := client.New("https://longhaul.example.com", client.WithKey(os.Getenv("LONGHAUL_API_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	_ = c
}

func ExampleValidJobID() {
	fmt.Println(client.ValidJobID("dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB"))
	fmt.Println(client.ValidJobID("70000"))
	// Output:
	// true
	// false
}
