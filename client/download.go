package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// ErrNotReady is wrapped by the error of a download of a file that is not ready (yet, or
// ever: unavailable, failed or canceled), or not part of the job.
var ErrNotReady = errors.New("the file is not ready")

// Download writes the ready file fileID of job id to w and returns its length. A transfer
// that is cut resumes where it stopped, with Range and If-Range (the file's ETag), up to the
// client's retries in a row without progress. The length is checked against the file's size
// in the job's status.
func (c *Client) Download(ctx context.Context, id string, fileID int64, w io.Writer) (int64, error) {
	return c.download(ctx, id, fileID, &writerSink{w: w}, 0)
}

// DownloadFile saves the ready file fileID of job id at path and returns its length. It
// writes to path + "." + id + ".part" first and renames that to path once every byte is
// there, so path is never a partial file. A part file left by an earlier call (one that
// was cut, or a process that was stopped) is resumed rather than started again: its name
// carries the job id, and a job's file never changes once it is ready.
func (c *Client) DownloadFile(ctx context.Context, id string, fileID int64, path string) (int64, error) {
	part := path + "." + id + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("download file %d: %w", fileID, err)
	}
	defer f.Close()
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("download file %d: %w", fileID, err)
	}
	n, err := c.download(ctx, id, fileID, &fileSink{f: f}, offset)
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("download file %d: save %s: %w", fileID, part, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("download file %d: save %s: %w", fileID, part, err)
	}
	if err := os.Rename(part, path); err != nil {
		return n, fmt.Errorf("download file %d: %w", fileID, err)
	}
	return n, nil
}

// sink is where a download goes.
type sink interface {
	io.Writer
	// restart drops what was written, to start again from the first byte.
	restart() error
}

type writerSink struct {
	w       io.Writer
	written int64
}

func (s *writerSink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.written += int64(n)
	return n, err
}

func (s *writerSink) restart() error {
	if s.written > 0 {
		return errors.New("the file changed on the server during the download, and the bytes written cannot be taken back")
	}
	return nil
}

type fileSink struct{ f *os.File }

func (s *fileSink) Write(p []byte) (int, error) { return s.f.Write(p) }

func (s *fileSink) restart() error {
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	_, err := s.f.Seek(0, io.SeekStart)
	return err
}

// download fetches the file into dst, which holds its first offset bytes already.
func (c *Client) download(ctx context.Context, id string, fileID int64, dst sink, offset int64) (int64, error) {
	fail := func(err error) (int64, error) {
		return offset, fmt.Errorf("download file %d of %s: %w", fileID, id, err)
	}
	job, err := c.Status(ctx, id)
	if err != nil {
		return fail(err)
	}
	f, ok := job.File(fileID)
	if !ok || f.Status != StatusReady {
		status := "not part of the job"
		if ok {
			status = string(f.Status)
		}
		return fail(fmt.Errorf("%w: it is %s", ErrNotReady, status))
	}
	path := fmt.Sprintf("/v1/download/%s/files/%d", id, fileID)
	etag := ""
	if offset > 0 {
		etag = c.fileETag(ctx, path)
	}
	if offset > f.Size || (offset > 0 && etag == "") {
		// Nothing to resume from safely: start again.
		if err := dst.restart(); err != nil {
			return fail(err)
		}
		offset = 0
	}
	for failures := 0; offset < f.Size || f.Size == 0; {
		before := offset
		offset, etag, err = c.fetchFrom(ctx, path, dst, offset, etag)
		if err == nil || offset != before {
			failures = 0
		}
		if err == nil && (offset >= f.Size || f.Size == 0) {
			break
		}
		if err == nil {
			err = fmt.Errorf("%w: the transfer ended after %d of %d bytes", ErrUnreachable, offset, f.Size)
		}
		if failures >= c.retries || !retryable(err) || ctx.Err() != nil {
			return fail(err)
		}
		failures++
		if err := sleep(ctx, c.backoff.delay(failures)); err != nil {
			return fail(err)
		}
	}
	if offset != f.Size {
		return fail(fmt.Errorf("got %d bytes, the job's status says the file has %d", offset, f.Size))
	}
	return offset, nil
}

// fileETag asks for a file's validator (with a one-byte request: the API has no HEAD),
// to resume a transfer that an earlier call began.
func (c *Client) fileETag(ctx context.Context, path string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, nil), nil)
	if err != nil {
		return ""
	}
	c.authorize(req)
	req.Header.Set("Range", "bytes=0-0")
	resp, err := c.http.Do(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("ETag")
}

// fetchFrom asks for the file from byte offset on (only if it is still the file of etag),
// copies what comes into dst, and returns the new offset and the file's ETag.
func (c *Client) fetchFrom(ctx context.Context, path string, dst sink, offset int64, etag string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, nil), nil)
	if err != nil {
		return offset, etag, err
	}
	c.authorize(req)
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		req.Header.Set("If-Range", etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return offset, etag, c.unreachable(ctx, http.MethodGet, path, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if offset > 0 { // the file is not the one begun: the whole of the new one came
			if err := dst.restart(); err != nil {
				return offset, etag, err
			}
			offset = 0
		}
	case http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
			return offset, etag, fmt.Errorf("asked for bytes from %d, got %q", offset,
				resp.Header.Get("Content-Range"))
		}
	default:
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return offset, etag, errorOf(resp, data)
	}
	if tag := resp.Header.Get("ETag"); tag != "" {
		etag = tag
	}
	body := &readTracker{r: resp.Body}
	n, err := io.Copy(dst, body)
	offset += n
	switch {
	case body.err != nil:
		return offset, etag, c.unreachable(ctx, http.MethodGet, path, body.err)
	case err != nil:
		return offset, etag, fmt.Errorf("write the file: %w", err)
	}
	return offset, etag, nil
}

// readTracker remembers a read error, to tell a cut connection from a failed write.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.err = err
	}
	return n, err
}

// rangeStart reads the first byte position of a Content-Range: "bytes 100-199/200".
func rangeStart(v string) (int64, bool) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}
