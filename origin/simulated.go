// Package origin is where files come from. Simulated is the demo's origin: ids divisible
// by 7 exist, each takes a while to prepare, and its content and size derive from its id,
// so every process, attempt and retry agrees on them.
package origin

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Defaults of the demo's origin, also the defaults of the settings that configure it.
const (
	TimeMinDefault = 10 * time.Second
	TimeMaxDefault = 30 * time.Second
	SizeMaxDefault = 8 << 20
)

// Simulated is the demo's origin of files: it says which files exist, how long one takes
// to prepare, when a preparation step hits a transient error, and what a file contains.
type Simulated struct {
	// TimeMin and TimeMax bound the time one file takes to prepare. Both may be zero, so
	// the zero Simulated prepares files at once; the settings default to TimeMinDefault
	// and TimeMaxDefault.
	TimeMin, TimeMax time.Duration
	// SizeMax is the size of the largest file; files are 1/8 of it to all of it.
	// If zero, SizeMaxDefault is used.
	SizeMax int64
	// FailureRate is the chance (0-1) that one preparation step hits a transient error.
	FailureRate float64
}

// Available reports whether the source has the file: in the demo, ids divisible by 7.
func (s Simulated) Available(fileID int64) bool { return fileID%7 == 0 }

// PrepTime draws the time one file takes to prepare.
func (s Simulated) PrepTime() time.Duration {
	if s.TimeMax <= s.TimeMin {
		return s.TimeMin
	}
	return s.TimeMin + rand.N(s.TimeMax-s.TimeMin+1)
}

// StepFails draws whether one preparation step hits a transient error.
func (s Simulated) StepFails() bool {
	return s.FailureRate > 0 && rand.Float64() < s.FailureRate
}

// ErrTransient is the error a preparation step hits when StepFails says so.
var ErrTransient = fmt.Errorf("source timed out")

// Size is the size of a file, derived from its id so that every attempt agrees.
func (s Simulated) Size(fileID int64) int64 {
	sizeMax := s.SizeMax
	if sizeMax <= 0 {
		sizeMax = SizeMaxDefault
	}
	sizeMin := max(sizeMax/8, 1)
	return sizeMin + int64(seed(fileID)%uint64(sizeMax-sizeMin+1))
}

// Estimate is how many bytes the files of fileIDs will take once prepared: the sizes of
// those that exist.
func (s Simulated) Estimate(fileIDs []int64) int64 {
	var total int64
	for _, id := range fileIDs {
		if s.Available(id) {
			total += s.Size(id)
		}
	}
	return total
}

// Content returns the bytes of a file: a stream derived from its id alone, the same for
// every attempt and every process.
func (s Simulated) Content(fileID int64) io.Reader {
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
