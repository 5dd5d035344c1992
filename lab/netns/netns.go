package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Tools lists the binaries the lab drives; lab/setup.sh installs them.
var Tools = []string{"ip", "tc", "iptables", "ip6tables", "ethtool", "tcpdump", "ping", "sysctl"}

// Prefix starts the name of every namespace the lab creates.
const Prefix = "tslab-"

// Run executes a command in the root namespace and returns its combined
// output, wrapped into the error when it fails.
func Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("run %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// Exec runs a command inside namespace ns.
func Exec(ctx context.Context, ns, name string, args ...string) ([]byte, error) {
	return Run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs fn on an OS thread that has entered namespace ns. The thread goes
// back to its original namespace afterwards; if it cannot, the thread stays
// locked so the runtime discards it instead of reusing a thread in the wrong
// namespace.
func Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("leave netns %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// List returns the names of all lab namespaces that exist.
func List(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Delete kills every process inside ns (ip netns del leaves them running)
// and removes the namespace.
func Delete(ctx context.Context, ns string) error {
	out, _ := Run(ctx, "ip", "netns", "pids", ns)
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	if _, err := Run(ctx, "ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("delete netns %s: %w", ns, err)
	}
	return nil
}

// CleanupStale deletes lab namespaces whose owning process no longer runs.
func CleanupStale(ctx context.Context) error {
	names, err := List(ctx)
	if err != nil {
		return err
	}
	var firstErr error
	for _, n := range names {
		if ownerAlive(n) {
			continue
		}
		if err := Delete(ctx, n); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

func ownerAlive(ns string) bool {
	rest := strings.TrimPrefix(ns, Prefix)
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return false
	}
	if pid == os.Getpid() {
		return true
	}
	return unix.Kill(pid, 0) == nil
}
