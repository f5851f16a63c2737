package devbin

import "syscall"

// childAttr makes the kernel kill a child when this process dies, so that an interrupted
// run (a test timing out, say) leaves no redis-server or longhaul behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
