//go:build nofencing

package jobs

// fencedBody, in a build with the nofencing tag, lets every attempt write, as if no other
// had replaced it. No product is built so: the tag exists so that the test of a worker
// frozen past its lease (cmd/longhaul, TestSIGSTOPWorkerPastItsLeaseIsFencedOff) can be
// run without the fencing and seen to fail. A test that passes whether or not the fence is
// there would prove nothing (`make test` runs it both ways).
const fencedBody = `return false`
