package worker

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Source is the simulated origin of files: it says which files exist, how long one takes
// to prepare, when a preparation step hits a transient error, and what a file contains.
type Source struct {
	// TimeMin and TimeMax bound the time one file takes to prepare. Both may be zero.
	TimeMin, TimeMax time.Duration
	// SizeMax is the size of the largest file; files are 1/8 of it to all of it.
	// If zero, 8 MiB is used.
	SizeMax int64
	// FailureRate is the chance (0-1) that one preparation step hits a transient error.
	FailureRate float64
}

// Available reports whether the source has the file: in the demo, ids divisible by 7.
func (s Source) Available(fileID int64) bool { return fileID%7 == 0 }

// PrepTime draws the time one file takes to prepare.
func (s Source) PrepTime() time.Duration {
	if s.TimeMax <= s.TimeMin {
		return s.TimeMin
	}
	return s.TimeMin + rand.N(s.TimeMax-s.TimeMin+1)
}

// StepFails draws whether one preparation step hits a transient error.
func (s Source) StepFails() bool {
	return s.FailureRate > 0 && rand.Float64() < s.FailureRate
}

// ErrTransient is the error a preparation step hits when StepFails says so.
var ErrTransient = fmt.Errorf("source timed out")

// Size is the size of a file, derived from its id so that every attempt agrees.
func (s Source) Size(fileID int64) int64 {
	sizeMax := s.SizeMax
	if sizeMax <= 0 {
		sizeMax = 8 << 20
	}
	sizeMin := max(sizeMax/8, 1)
	return sizeMin + int64(seed(fileID)%uint64(sizeMax-sizeMin+1))
}

// Content returns the bytes of a file: a stream derived from its id alone, the same for
// every attempt and every process.
func (s Source) Content(fileID int64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(fileID))
	return io.LimitReader(rand.NewChaCha8(key), s.Size(fileID))
}

// seed mixes a file id into a well-spread number (splitmix64).
func seed(fileID int64) uint64 {
	z := uint64(fileID) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
