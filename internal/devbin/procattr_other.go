//go:build !linux

package devbin

import "syscall"

// childAttr is empty where the kernel cannot kill children with their parent: an
// interrupted run may leave processes behind there.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
