// Package topology runs ticketflow as it is deployed: one broker process (`ticketflow
// broker`, several kfake brokers inside) and every service as separate real binaries, each
// replica with its own port and instance id, all on 127.0.0.1. Tests and `make topology`
// use it to kill, pause and restart any instance.
package topology

import (
	"context"
	"errors"
	"fmt"
	"github.com/ticketflow/ticketflow/libs/proctest"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Kind is a service binary.
type Kind string

const (
	Broker    Kind = "broker"
	Command   Kind = "command"
	Processor Kind = "processor"
	Projector Kind = "projector"
	Notifier  Kind = "notifier"
)

// Services are the kinds that run as replicas (every kind but the broker).
var Services = []Kind{Command, Processor, Projector, Notifier}

// Shape is how many replicas of each service run, and how many brokers the broker process
// holds.
type Shape struct {
	Brokers   int
	Command   int
	Processor int
	Projector int
	Notifier  int
}

// DefaultShape is the deployed shape of issue #9: 2 command, 3 processor, 2 projector,
// 3 notifier on a 3-broker cluster.
var DefaultShape = Shape{Brokers: 3, Command: 2, Processor: 3, Projector: 2, Notifier: 3}

func (s Shape) count(k Kind) int {
	switch k {
	case Command:
		return s.Command
	case Processor:
		return s.Processor
	case Projector:
		return s.Projector
	case Notifier:
		return s.Notifier
	}
	return 0
}

// Options configure a topology.
type Options struct {
	// BinDir holds ticketflow, command, processor, projector and notifier (see Build).
	BinDir string
	// Dir receives the broker's data, the processors' work dirs and one log file per
	// instance (logs/<name>.log, appended across restarts).
	Dir string
	// DatabaseURL is shared by every service (the services migrate it).
	DatabaseURL string
	// JWTSecret signs every token; all replicas share it.
	JWTSecret string
	// Partitions of the event topic (KAFKA_PARTITIONS).
	Partitions int
	// Env is added to every service's environment (e.g. TICKETFLOW_SIM_STEP_DELAY).
	Env []string
	// ReadyTimeout bounds the wait for one instance to answer /readyz (default 60 s).
	ReadyTimeout time.Duration
	// Supervise restarts an instance that exits on its own (not killed through its handle)
	// after a second, as Kubernetes (restartPolicy Always) and compose (restart: always) do.
	// Crashes counts those exits.
	Supervise bool
}

// Build compiles the CLI and the four services from the repository at root into binDir.
func Build(ctx context.Context, root, binDir string) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	pkgs := map[string]string{"ticketflow": "./cmd/ticketflow"}
	for _, k := range Services {
		pkgs[string(k)] = "./services/" + string(k)
	}
	for name, pkg := range pkgs {
		if err := proctest.Build(ctx, root, filepath.Join(binDir, name), pkg); err != nil {
			return err
		}
	}
	return nil
}

// RepoRoot finds the repository root (the directory holding go.work) from the working dir up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}

// Instance is one process of the topology. Its port, environment and log survive restarts,
// so clients reconnect to the same URL.
type Instance struct {
	Kind Kind
	Name string // e.g. "processor-1", also its TICKETFLOW_INSTANCE_ID
	Addr string // HTTP address (services) or first broker address (broker)

	top  *Topology
	args []string
	env  []string

	mu          sync.Mutex
	cmd         *exec.Cmd
	done        chan struct{}
	stopped     bool // SIGSTOPped
	intentional bool // the current process was killed or terminated through the handle
	crashes     int
}

// Crashes is how many times the instance exited on its own (see Options.Supervise).
func (in *Instance) Crashes() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.crashes
}

// URL is the instance's HTTP base URL.
func (in *Instance) URL() string { return "http://" + in.Addr }

// WSURL is the instance's WebSocket base URL.
func (in *Instance) WSURL() string { return "ws://" + in.Addr }

// Topology is a running shape.
type Topology struct {
	Opts      Options
	Shape     Shape
	Brokers   []string // seed addresses (KAFKA_BROKERS)
	Broker    *Instance
	instances map[Kind][]*Instance
	closed    atomic.Bool
}

// Start launches the broker process, then every replica, and waits until each one is ready.
// On error everything started is stopped. Close stops it all.
func Start(ctx context.Context, shape Shape, opts Options) (*Topology, error) {
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.Partitions == 0 {
		opts.Partitions = 12
	}
	if shape.Brokers < 1 {
		shape.Brokers = 1
	}
	if opts.JWTSecret == "" || opts.DatabaseURL == "" || opts.BinDir == "" || opts.Dir == "" {
		return nil, errors.New("topology: BinDir, Dir, DatabaseURL and JWTSecret are required")
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	t := &Topology{Opts: opts, Shape: shape, instances: map[Kind][]*Instance{}}
	ports, err := FreePorts(shape.Brokers + shape.Command + shape.Processor + shape.Projector + shape.Notifier)
	if err != nil {
		return nil, err
	}
	for i := 0; i < shape.Brokers; i++ {
		t.Brokers = append(t.Brokers, "127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	ports = ports[shape.Brokers:]
	t.Broker = &Instance{Kind: Broker, Name: "broker", Addr: t.Brokers[0], top: t,
		args: []string{"broker", "-addrs", strings.Join(t.Brokers, ","), "-data-dir", filepath.Join(opts.Dir, "broker"),
			"-partitions", strconv.Itoa(opts.Partitions)},
		env: os.Environ()}
	if err := t.Broker.Start(ctx); err != nil {
		t.Close()
		return nil, err
	}
	// The database is created and migrated once up front: replicas starting together would
	// otherwise race on CREATE DATABASE.
	migrate := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "ticketflow"), "migrate")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+opts.DatabaseURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Close()
		return nil, fmt.Errorf("ticketflow migrate: %w: %s", err, out)
	}
	for _, k := range []Kind{Projector, Command, Processor, Notifier} {
		for i := 0; i < shape.count(k); i++ {
			in := t.newService(k, i, ports[0])
			ports = ports[1:]
			t.instances[k] = append(t.instances[k], in)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(t.All()))
	for _, in := range t.All() {
		if in.Kind == Broker {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.Start(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Topology) newService(k Kind, i, port int) *Instance {
	name := fmt.Sprintf("%s-%d", k, i)
	in := &Instance{Kind: k, Name: name, Addr: "127.0.0.1:" + strconv.Itoa(port), top: t}
	in.env = append(os.Environ(),
		"TICKETFLOW_HTTP_ADDR="+in.Addr,
		"TICKETFLOW_INSTANCE_ID="+name,
		"DATABASE_URL="+t.Opts.DatabaseURL,
		"KAFKA_BROKERS="+strings.Join(t.Brokers, ","),
		"KAFKA_PARTITIONS="+strconv.Itoa(t.Opts.Partitions),
		"TICKETFLOW_JWT_SECRET="+t.Opts.JWTSecret,
	)
	if k == Processor {
		in.env = append(in.env, "TICKETFLOW_WORK_DIR="+filepath.Join(t.Opts.Dir, "work", name))
	}
	in.env = append(in.env, t.Opts.Env...)
	return in
}

// Instances returns the replicas of a kind (nil for an unknown kind).
func (t *Topology) Instances(k Kind) []*Instance {
	if k == Broker {
		return []*Instance{t.Broker}
	}
	return t.instances[k]
}

// All returns the broker and every replica.
func (t *Topology) All() []*Instance {
	all := []*Instance{t.Broker}
	for _, k := range Services {
		all = append(all, t.instances[k]...)
	}
	return all
}

// URLs are the HTTP base URLs of a kind's replicas.
func (t *Topology) URLs(k Kind) []string {
	var urls []string
	for _, in := range t.Instances(k) {
		urls = append(urls, in.URL())
	}
	return urls
}

// Close SIGKILLs every process group. It is safe to call more than once.
func (t *Topology) Close() {
	t.closed.Store(true)
	for _, in := range t.All() {
		if in != nil {
			in.Kill()
		}
	}
}

// Start launches the instance's process (in its own process group, killed if the test
// process dies) and waits until it is ready.
func (in *Instance) Start(ctx context.Context) error {
	if err := in.launch(); err != nil {
		return err
	}
	return in.WaitReady(ctx)
}

func (in *Instance) launch() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd != nil {
		select {
		case <-in.done:
		default:
			return fmt.Errorf("%s is already running", in.Name)
		}
	}
	logf, err := os.OpenFile(filepath.Join(in.top.Opts.Dir, "logs", in.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bin := filepath.Join(in.top.Opts.BinDir, string(in.Kind))
	if in.Kind == Broker {
		bin = filepath.Join(in.top.Opts.BinDir, "ticketflow")
	}
	cmd := exec.Command(bin, in.args...)
	cmd.Env = in.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a kill reaches every child (a CI command the processor runs).
	// Pdeathsig: if the test process dies (timeout panic, SIGKILL), so do its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logf, "=== topology: starting %s at %s\n", in.Name, time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", in.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== topology: %s exited: %v\n", in.Name, err)
		logf.Close()
		close(done)
		in.supervise(cmd)
	}()
	in.cmd, in.done, in.stopped, in.intentional = cmd, done, false, false
	return nil
}

// supervise restarts the instance when cmd exited on its own and nothing else replaced it.
func (in *Instance) supervise(cmd *exec.Cmd) {
	in.mu.Lock()
	crashed := in.top.Opts.Supervise && !in.intentional && in.cmd == cmd && !in.top.closed.Load()
	if crashed {
		in.crashes++
	}
	in.mu.Unlock()
	if !crashed {
		return
	}
	time.Sleep(time.Second)
	in.mu.Lock()
	again := !in.intentional && in.cmd == cmd && !in.top.closed.Load()
	in.mu.Unlock()
	if again {
		_ = in.launch()
	}
}

// WaitReady waits for /readyz (a service) or for every broker port to accept (the broker).
func (in *Instance) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, in.top.Opts.ReadyTimeout)
	defer cancel()
	in.mu.Lock()
	done := in.done
	in.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if in.ready(ctx, client) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready; its log:\n%s", in.Name, in.LogTail(4000))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; its log:\n%s", in.Name, ctx.Err(), in.LogTail(4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (in *Instance) ready(ctx context.Context, client *http.Client) bool {
	if in.Kind == Broker {
		for _, a := range in.top.Brokers {
			c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", a)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.URL()+"/readyz", nil)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Running reports whether the process is alive (a SIGSTOPped one is alive).
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return false
	}
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// Pid is the current process id (0 when not running).
func (in *Instance) Pid() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil || in.cmd.Process == nil {
		return 0
	}
	return in.cmd.Process.Pid
}

func (in *Instance) signal(sig syscall.Signal) (chan struct{}, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		in.intentional = true
	}
	if in.cmd == nil || in.cmd.Process == nil {
		return nil, false
	}
	select {
	case <-in.done:
		return in.done, false
	default:
	}
	_ = syscall.Kill(-in.cmd.Process.Pid, sig)
	return in.done, true
}

// Kill SIGKILLs the instance's process group and waits for it to exit.
func (in *Instance) Kill() {
	if done, ok := in.signal(syscall.SIGKILL); ok {
		<-done
	}
}

// Terminate sends SIGTERM (a clean shutdown) and waits up to timeout, then SIGKILLs.
func (in *Instance) Terminate(timeout time.Duration) error {
	done, ok := in.signal(syscall.SIGTERM)
	if !ok {
		return nil
	}
	in.Cont() // a stopped process cannot handle SIGTERM
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		in.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM", in.Name, timeout)
	}
}

// Stop SIGSTOPs the process group: the process keeps its sockets and state but does nothing,
// like a VM paused or a process stuck in GC, until Cont.
func (in *Instance) Stop() {
	if _, ok := in.signal(syscall.SIGSTOP); ok {
		in.mu.Lock()
		in.stopped = true
		in.mu.Unlock()
	}
}

// Cont resumes a stopped process group.
func (in *Instance) Cont() {
	if _, ok := in.signal(syscall.SIGCONT); ok {
		in.mu.Lock()
		in.stopped = false
		in.mu.Unlock()
	}
}

// Restart SIGKILLs the instance (if running) and starts it again on the same port.
func (in *Instance) Restart(ctx context.Context) error {
	in.Kill()
	return in.Start(ctx)
}

// LogTail is the last n bytes of the instance's log file.
func (in *Instance) LogTail(n int64) string {
	f, err := os.Open(filepath.Join(in.top.Opts.Dir, "logs", in.Name+".log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	if st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. A child process cannot be told
// "127.0.0.1:0" and report back, so ports are picked here; all listeners stay open until
// every port is chosen so none repeats.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
