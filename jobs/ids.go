package jobs

import (
	"crypto/rand"
	"crypto/sha256"
	"regexp"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// MaxFileID bounds file ids to integers that every JSON client reads exactly.
const MaxFileID = 1<<53 - 1

// jobIDPattern is "dl_" and a ULID in upper-case Crockford base32. A ULID's first character
// is at most 7: anything above overflows its 128 bits.
var jobIDPattern = regexp.MustCompile(`^dl_[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// crockford is the alphabet of ULIDs.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a new job id: "dl_" and a ULID, so ids sort by creation time. Its 80 bits
// after the time come from crypto/rand, so an id tells nothing about any other: ULIDs drawn
// from math/rand, or made monotonic within a millisecond, would let one id predict the
// next, and with it a stranger's job.
func NewID() string {
	return "dl_" + ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader).String()
}

// NewIDFor returns the id of a new job of principal: with an idempotency key, in the group
// of that key (see Store.Submit), else as NewID.
func NewIDFor(principal, idempotencyKey string) string {
	if idempotencyKey == "" {
		return NewID()
	}
	_, g := idemKeyOf(principal, idempotencyKey)
	return newIDInGroup(g)
}

// newIDInGroup returns a new job id whose keys fall into group g (see group): its last two
// characters are g's, and the rest as NewID's, leaving 70 random bits.
func newIDInGroup(g string) string {
	id := NewID()
	return id[:len(id)-2] + g
}

// group is the hash tag that every key of job id shares: the last two characters of the
// id, 1,024 groups in all. Keys in one group fall into one Redis Cluster slot, so that one
// script can change a job, its idempotency key and its group's index together.
func group(id string) string { return id[len(id)-2:] }

// groupOf derives a group from a string, for what must share a slot with a job before the
// job exists: the idempotency key of a request.
func groupOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	n := int(sum[0])<<2 | int(sum[1]>>6) // the first 10 bits
	return string([]byte{crockford[n>>5], crockford[n&31]})
}

// ValidID reports whether id has the shape of a job id. Anything else in a job id position
// is refused before it reaches Redis or the storage directory.
func ValidID(id string) bool {
	return jobIDPattern.MatchString(id)
}

// ParseFileID reads a file id as it appears in a path: a decimal integer from 1 to
// MaxFileID, with no sign, no leading zero and nothing else.
func ParseFileID(s string) (int64, bool) {
	if s == "" || len(s) > 16 || s[0] == '0' {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id > MaxFileID {
		return 0, false
	}
	return id, true
}
