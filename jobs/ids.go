package jobs

import (
	"regexp"
	"strconv"

	"github.com/oklog/ulid/v2"
)

// MaxFileID bounds file ids to integers that every JSON client reads exactly.
const MaxFileID = 1<<53 - 1

// jobIDPattern is "dl_" and a ULID in upper-case Crockford base32. A ULID's first character
// is at most 7: anything above overflows its 128 bits.
var jobIDPattern = regexp.MustCompile(`^dl_[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// NewID returns a new job id: "dl_" and a ULID, so ids sort by creation time.
func NewID() string {
	return "dl_" + ulid.Make().String()
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
