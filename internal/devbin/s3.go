package devbin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/longhaul-dev/longhaul/storage"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The credentials and region of every S3 server of the kit. The server takes any
// credentials; these are the ones its clients sign with.
const (
	S3AccessKeyID     = "longhaul-test"
	S3SecretAccessKey = "longhaul-test-secret"
	S3Region          = "us-east-1"
)

// S3Options configure StartS3.
type S3Options struct {
	// Log is the file the server's output is appended to. Required.
	Log string
	// Port is the port to listen on. If zero, a free one is picked.
	Port int
	// RefuseCredentials makes the server check the credentials of every request against
	// the users it knows, and it knows none: it refuses everything with 403
	// InvalidAccessKeyId, as a service does with a wrong key.
	RefuseCredentials bool
}

// S3 is an S3-compatible object store on a loopback port, started by StartS3: moto's
// server (moto_server), which keeps everything in memory. Of the servers that run here it
// speaks the protocol most faithfully for what longhaul uses: conditional writes
// (If-None-Match: * on PUT and on CompleteMultipartUpload, refused with 412), uploads in
// parts with S3's 5 MiB minimum part size, Content-MD5 checks, ranged GETs, listings of
// objects and of unfinished uploads, batch deletes and presigned URLs. It does not check
// signatures or the expiry of presigned URLs.
type S3 struct {
	// Port is the port the server listens on, on 127.0.0.1.
	Port int
	proc *Process
}

// s3StartTimeout bounds the wait for a started server to answer: Python takes a second or
// two to start, more on a busy machine.
const s3StartTimeout = time.Minute

// StartS3 starts moto_server on 127.0.0.1 and returns once it answers. It knows the server
// answering on the port is the one it started by the line the server prints once it has
// bound the port; on a port it picked itself, it tries another when the first is taken
// meanwhile.
func StartS3(ctx context.Context, opts S3Options) (*S3, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, errors.New("moto_server not found: run scripts/ensure-s3.sh (make test-deps does), which says how to install it")
	}
	if opts.Log == "" {
		return nil, errors.New("start moto_server: S3Options needs Log")
	}
	for try := 1; ; try++ {
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return nil, err
			}
		}
		s, err := startS3(ctx, bin, port, opts)
		if err == nil {
			return s, nil
		}
		if opts.Port != 0 || try == 3 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func startS3(ctx context.Context, bin string, port int, opts S3Options) (*S3, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	log := opts.Log
	var env []string
	if opts.RefuseCredentials {
		// moto checks credentials once this many requests have gone unchecked.
		env = append(os.Environ(), "INITIAL_NO_AUTH_ACTION_COUNT=0")
	}
	bound := make(chan struct{})
	var once sync.Once
	p, err := Start(Spec{Name: "moto_server on port " + strconv.Itoa(port), Args: []string{bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port)},
		Env: env, Log: log, OnLine: func(line string) {
			if strings.Contains(line, "Running on http://"+addr) {
				once.Do(func() { close(bound) })
			}
		}})
	if err != nil {
		return nil, err
	}
	s := &S3{Port: port, proc: p}
	select {
	case <-bound:
	case <-p.Done():
		return nil, fmt.Errorf("start %s: it exited (%v); end of its log %s:\n%s", p.Name(), p.ExitError(), log, p.Tail(20))
	case <-time.After(s3StartTimeout):
		p.Kill()
		return nil, fmt.Errorf("start %s: it did not listen within %v; end of its log %s:\n%s", p.Name(), s3StartTimeout, log, p.Tail(20))
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("start %s: %w", p.Name(), ctx.Err())
	}
	hc := http.Client{Timeout: 2 * time.Second}
	err = WaitUntil(ctx, s3StartTimeout, p.Name()+" to answer", func() bool {
		resp, err := hc.Get(s.Endpoint())
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("start %s: %w", p.Name(), err)
	}
	return s, nil
}

// Endpoint is the server's URL, as LONGHAUL_S3_ENDPOINT takes it.
func (s *S3) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

// Process is the server's process.
func (s *S3) Process() *Process { return s.proc }

// Kill stops the server at once; everything it held is gone.
func (s *S3) Kill() { s.proc.Kill() }

// Client returns a client of the server, with the kit's credentials.
func (s *S3) Client() (*minio.Client, error) {
	c, err := minio.New("127.0.0.1:"+strconv.Itoa(s.Port), &minio.Options{
		Creds:  credentials.NewStaticV4(S3AccessKeyID, S3SecretAccessKey, ""),
		Region: S3Region,
	})
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", s.Endpoint(), err)
	}
	return c, nil
}

// MakeBucket creates a bucket.
func (s *S3) MakeBucket(ctx context.Context, name string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: S3Region}); err != nil {
		return fmt.Errorf("make bucket %s on %s: %w", name, s.Endpoint(), err)
	}
	return nil
}

// BucketConfig is the configuration of storage.Bucket for bucket on this server.
func (s *S3) BucketConfig(bucket string) storage.BucketConfig {
	return storage.BucketConfig{Bucket: bucket, Endpoint: s.Endpoint(), Region: S3Region,
		AccessKeyID: S3AccessKeyID, SecretAccessKey: S3SecretAccessKey}
}

// Settings are the settings that make longhaul keep its files in bucket on this server,
// under prefix (which may be empty).
func (s *S3) Settings(bucket, prefix string) map[string]string {
	location := "s3://" + bucket
	if prefix != "" {
		location += "/" + prefix
	}
	return map[string]string{
		"LONGHAUL_STORAGE":      location,
		"LONGHAUL_S3_ENDPOINT":  s.Endpoint(),
		"LONGHAUL_S3_REGION":    S3Region,
		"AWS_ACCESS_KEY_ID":     S3AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": S3SecretAccessKey,
	}
}
