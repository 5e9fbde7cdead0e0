package ci

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bwrap runs each CI command in a bubblewrap sandbox (TICKETFLOW_CI_SANDBOX=bwrap): its own
// user, PID, mount, IPC, UTS (and, unless the repository may use it, network) namespaces; the
// system directories read-only; a private /proc, /dev, /tmp and HOME; only the run's work tree
// writable, at /work, with its .git read-only on top so the command cannot plant hooks or
// config for the processor's own git commands; an empty environment but spec.Env. Nothing else
// of the host is mounted: not the processor's data dir, not the other work dirs, not /run.
//
// When the processor runs as root, the sandbox runs as an unprivileged host uid (HostUID):
// RLIMIT_NPROC does not apply to host root, and a process that escaped its namespaces would
// still be nobody. The work tree is handed to that uid for the run and taken back after it.
//
// Limits: processes by RLIMIT_NPROC (counted per sandbox: each has its own user namespace),
// memory by RLIMIT_AS and CPU time by RLIMIT_CPU (both per process), set by prlimit inside the
// sandbox; wall time by spec.Timeout. The command is a child of the sandbox's PID 1, so when
// the run ends (or bwrap is killed, or the processor dies: --die-with-parent) the kernel kills
// every process of the namespace, setsid and double-forked ones included.
type Bwrap struct {
	cfg      BwrapConfig
	bwrap    string
	prlimit  string
	setpriv  string // set when running as root: drops to cfg.HostUID before bwrap starts
	asRoot   bool
	sysBinds []string
}

// BwrapConfig configures the bubblewrap sandbox.
type BwrapConfig struct {
	// HostUID is the host uid and gid the sandbox runs as when the processor is root
	// (default 65534, nobody). Ignored otherwise: the sandbox then runs as the processor's uid.
	HostUID int
	// Defaults fill the zero fields of Spec.Limits.
	Defaults Limits
}

// Default limits of a CI execution.
const (
	DefaultProcesses   = 256
	DefaultMemoryBytes = 2 << 30
	DefaultCPUTime     = 10 * time.Minute
)

// Fixed paths inside the sandbox.
const (
	sandboxWorkDir = "/work"
	sandboxHome    = "/home/ci"
	sandboxUID     = "1000"
)

// NewBwrap finds bwrap (and prlimit, and setpriv as root) and proves the sandbox works by
// running `true` in it, in a directory made under probeRoot (the work root, so a work root the
// sandbox uid cannot reach fails here, at startup, instead of on every run).
func NewBwrap(ctx context.Context, cfg BwrapConfig, probeRoot string) (*Bwrap, error) {
	if cfg.HostUID <= 0 {
		cfg.HostUID = 65534
	}
	b := &Bwrap{cfg: cfg, asRoot: os.Geteuid() == 0}
	var err error
	if b.bwrap, err = exec.LookPath("bwrap"); err != nil {
		return nil, errors.New("bubblewrap (bwrap) is not installed: install it (apt-get install bubblewrap) or set TICKETFLOW_CI_SANDBOX=none to run CI unconfined")
	}
	if b.prlimit, err = exec.LookPath("prlimit"); err != nil {
		return nil, errors.New("prlimit (util-linux) is not installed: the bwrap sandbox needs it to set the CI limits")
	}
	if b.asRoot {
		if b.setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, errors.New("setpriv (util-linux) is not installed: the bwrap sandbox needs it to drop root")
		}
	}
	for _, d := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"} {
		if _, err := os.Lstat(d); err == nil {
			b.sysBinds = append(b.sysBinds, d)
		}
	}
	if probeRoot == "" {
		probeRoot = os.TempDir()
	}
	dir, err := os.MkdirTemp(probeRoot, ".bwrap-probe-")
	if err != nil {
		return nil, fmt.Errorf("bwrap probe: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bwrap probe: %w", err)
	}
	var out []string
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := b.Run(ctx, Spec{Dir: dir, Command: "true", Timeout: 20 * time.Second}, func(lines []Line) error {
		for _, l := range lines {
			out = append(out, l.Text)
		}
		return nil
	})
	if err == nil && !res.Passed() {
		err = fmt.Errorf("exit code %d: %s", res.ExitCode, strings.Join(out, " | "))
	}
	if err != nil {
		return nil, fmt.Errorf("the bwrap sandbox does not work here (%v): make user namespaces available (in a container: allow unshare, e.g. a seccomp profile permitting it), make the work dir and its parents traversable by uid %d, or set TICKETFLOW_CI_SANDBOX=none to run CI unconfined", err, cfg.HostUID)
	}
	return b, nil
}

// Name implements Sandbox.
func (*Bwrap) Name() string { return "bwrap" }

// Run implements Sandbox.
func (b *Bwrap) Run(ctx context.Context, spec Spec, onLine LineFunc) (res Result, err error) {
	if strings.TrimSpace(spec.Command) == "" {
		return Result{}, errors.New("no CI command configured for this ticket")
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return Result{}, err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return Result{}, fmt.Errorf("CI work dir %s: not a directory", dir)
	}
	lim := b.limits(spec.Limits)
	args := b.args(dir, spec, lim)

	infoR, infoW, err := os.Pipe()
	if err != nil {
		return Result{}, err
	}
	defer infoR.Close()
	// fd 3 in bwrap: it writes {"child-pid": N}, the host pid of the sandbox's PID 1.
	args = append([]string{"--info-fd", "3"}, args...)
	name, argv := b.bwrap, args
	if b.asRoot {
		id := strconv.Itoa(b.cfg.HostUID)
		name, argv = b.setpriv, append([]string{"--reuid=" + id, "--regid=" + id, "--clear-groups", "--", b.bwrap}, args...)
	}
	cmd := exec.Command(name, argv...)
	// bwrap's own cwd is the work dir, so KillStale recognises an orphaned sandbox by it.
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.ExtraFiles = []*os.File{infoW}

	if b.asRoot {
		if err := chownTree(dir, b.cfg.HostUID, b.cfg.HostUID); err != nil {
			infoW.Close()
			_ = Reclaim(dir)
			return Result{}, fmt.Errorf("hand the work tree to the sandbox: %w", err)
		}
		defer func() {
			if rerr := Reclaim(dir); rerr != nil && err == nil {
				err = fmt.Errorf("take the work tree back from the sandbox: %w", rerr)
			}
		}()
	}
	pidns := make(chan string, 1)
	go func() { pidns <- sandboxPIDNamespace(infoR) }()

	res, err = execute(ctx, spec, cmd, onLine)
	infoR.Close()
	if ns := <-pidns; ns != "" {
		if n := killNamespace(ns); n > 0 && err == nil {
			err = fmt.Errorf("%d CI process(es) outlived the sandbox and were killed", n)
		}
	}
	if res.ExitCode > 128 && res.ExitCode < 128+65 && !res.TimedOut {
		res.Tail = strings.TrimSpace(res.Tail + fmt.Sprintf("\nCI command killed by signal %d, %s (sandbox limits: %d processes, %d bytes of memory per process, %s of CPU time per process)",
			res.ExitCode-128, syscall.Signal(res.ExitCode-128), lim.Processes, lim.MemoryBytes, lim.CPUTime))
	}
	return res, err
}

func (b *Bwrap) limits(l Limits) Limits {
	d := b.cfg.Defaults
	if d.Processes <= 0 {
		d.Processes = DefaultProcesses
	}
	if d.MemoryBytes <= 0 {
		d.MemoryBytes = DefaultMemoryBytes
	}
	if d.CPUTime <= 0 {
		d.CPUTime = DefaultCPUTime
	}
	if l.Processes <= 0 {
		l.Processes = d.Processes
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	if l.CPUTime <= 0 {
		l.CPUTime = d.CPUTime
	}
	return l
}

func (b *Bwrap) args(dir string, spec Spec, lim Limits) []string {
	a := []string{
		"--unshare-user", "--uid", sandboxUID, "--gid", sandboxUID, "--disable-userns",
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "ci",
		"--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
	}
	if !spec.Network {
		a = append(a, "--unshare-net")
	}
	for _, d := range b.sysBinds {
		if target, err := os.Readlink(d); err == nil { // /bin -> usr/bin on merged-/usr systems
			a = append(a, "--symlink", target, d)
		} else {
			a = append(a, "--ro-bind", d, d)
		}
	}
	// Host secrets /etc may hold: unreadable to the sandbox uid anyway, hidden for good measure.
	for _, f := range []string{"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"} {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			a = append(a, "--ro-bind", "/dev/null", f)
		}
	}
	for _, d := range []string{"/etc/ssh", "/etc/ssl/private"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			a = append(a, "--tmpfs", d)
		}
	}
	tmpSize := strconv.FormatInt(lim.MemoryBytes, 10)
	a = append(a, "--proc", "/proc", "--dev", "/dev",
		"--size", tmpSize, "--tmpfs", "/tmp", "--size", tmpSize, "--tmpfs", sandboxHome,
		"--bind", dir, sandboxWorkDir)
	if st, err := os.Lstat(filepath.Join(dir, ".git")); err == nil && (st.IsDir() || st.Mode().IsRegular()) {
		a = append(a, "--ro-bind", filepath.Join(dir, ".git"), sandboxWorkDir+"/.git")
	}
	a = append(a, "--chdir", sandboxWorkDir)
	for _, kv := range sandboxEnv(spec.Env) {
		k, v, _ := strings.Cut(kv, "=")
		a = append(a, "--setenv", k, v)
	}
	// Soft limit: SIGXCPU, which says why; the hard limit (SIGKILL) stops a command that ignores it.
	cpu := int64((lim.CPUTime + time.Second - 1) / time.Second)
	return append(a, "--", b.prlimit,
		"--nproc="+strconv.Itoa(lim.Processes),
		"--as="+strconv.FormatInt(lim.MemoryBytes, 10),
		"--cpu="+strconv.FormatInt(cpu, 10)+":"+strconv.FormatInt(cpu+5, 10),
		"--core=0",
		"--", "/bin/sh", "-c", spec.Command)
}

// sandboxEnv is spec's environment with the paths that only make sense on the host replaced.
func sandboxEnv(env []string) []string {
	if env == nil {
		env = MinimalEnv()
	}
	out := []string{"HOME=" + sandboxHome, "TMPDIR=/tmp", "PWD=" + sandboxWorkDir}
	hasPath := false
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		switch k {
		case "HOME", "TMPDIR", "PWD":
			continue
		case "PATH":
			hasPath = true
		}
		out = append(out, kv)
	}
	if !hasPath {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return out
}

// sandboxPIDNamespace reads bwrap's info JSON and returns the PID namespace of the sandbox's
// PID 1 ("pid:[inode]"), or "" when bwrap did not start it.
func sandboxPIDNamespace(info *os.File) string {
	var v struct {
		ChildPID int `json:"child-pid"`
	}
	if err := json.NewDecoder(bufio.NewReader(info)).Decode(&v); err != nil || v.ChildPID <= 0 {
		return ""
	}
	ns, err := os.Readlink("/proc/" + strconv.Itoa(v.ChildPID) + "/ns/pid")
	if err != nil {
		return ""
	}
	if self, err := os.Readlink("/proc/self/ns/pid"); err == nil && self == ns {
		return "" // not a new namespace: never kill our own
	}
	return ns
}

// killNamespace returns how many processes of PID namespace ns are still alive a moment
// after the run ended, and SIGKILLs them. The kernel kills a namespace whose PID 1 died, so
// any process found here is a bug; the processes it is still tearing down go within the grace.
func killNamespace(ns string) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		alive := namespaceProcesses(ns)
		if len(alive) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			for _, pid := range alive {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return len(alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// namespaceProcesses lists the live (not zombie) processes of PID namespace ns.
func namespaceProcesses(ns string) []int {
	return processes(func(dir string) bool {
		if l, err := os.Readlink(dir + "/ns/pid"); err != nil || l != ns {
			return false
		}
		if stat, err := os.ReadFile(dir + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
				return false
			}
		}
		return true
	})
}

// processes lists the pids of /proc for whose directory ("/proc/<pid>") keep is true.
func processes(keep func(dir string) bool) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && keep("/proc/"+e.Name()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// chownTree gives dir and everything in it but its top-level .git to uid:gid, without
// following symbolic links.
func chownTree(dir string, uid, gid int) error {
	git := filepath.Join(dir, ".git")
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == git {
			return filepath.SkipDir
		}
		return os.Lchown(p, uid, gid)
	})
}

// Reclaim gives dir and everything in it back to this process's uid and gid when a sandbox
// had it (also after a processor killed during a run). Without root it does nothing: the
// tree was never handed over.
func Reclaim(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid := os.Geteuid(), os.Getegid()
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
}
