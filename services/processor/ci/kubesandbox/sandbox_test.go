package kubesandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/ticketflow/ticketflow/services/processor/ci"
)

const testNS = "ticketflow-ci"

// fakeUploader records what the sandbox uploads, as the attach stream would carry it.
type fakeUploader struct {
	mu        sync.Mutex
	archive   []byte
	target    string
	calls     int
	err       error
	uploadedC chan struct{}
}

func newFakeUploader() *fakeUploader { return &fakeUploader{uploadedC: make(chan struct{}, 1)} }

func (u *fakeUploader) Upload(ctx context.Context, namespace, pod, container string, archive io.Reader) error {
	data, err := io.ReadAll(archive)
	u.mu.Lock()
	u.calls++
	u.archive, u.target = data, namespace+"/"+pod+"/"+container
	u.mu.Unlock()
	select {
	case u.uploadedC <- struct{}{}:
	default:
	}
	if err != nil {
		return err
	}
	return u.err
}

func (u *fakeUploader) snapshot() ([]byte, string, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.archive, u.target, u.calls
}

type fixture struct {
	t        *testing.T
	cs       *fake.Clientset
	uploader *fakeUploader
	sb       *Sandbox
	dir      string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cs := fake.NewClientset()
	up := newFakeUploader()
	sb, err := NewWithClient(cs, up, Config{PollInterval: 20 * time.Millisecond, LogDrain: 2 * time.Second, CleanupTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "build.sh"), []byte("#!/bin/sh\necho ok\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, cs: cs, uploader: up, sb: sb, dir: dir}
}

// setLogs makes the pod log of the CI container read as text (the fake's default is
// "fake logs").
func (f *fixture) setLogs(text string) {
	f.cs.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "log" {
			return false, nil, nil
		}
		if opts, ok := a.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions); !ok || opts.Container != ciContainer || !opts.Follow {
			return true, nil, fmt.Errorf("unexpected log options %+v", a.(k8stesting.GenericAction).GetValue())
		}
		return true, &runtime.Unknown{Raw: []byte(text)}, nil
	})
}

type outcome struct {
	res ci.Result
	err error
}

// start runs spec in the background; lines are collected in order.
func (f *fixture) start(ctx context.Context, spec ci.Spec) (<-chan outcome, *lineLog) {
	if spec.Dir == "" {
		spec.Dir = f.dir
	}
	if spec.Command == "" {
		spec.Command = "./build.sh"
	}
	if spec.Timeout == 0 {
		spec.Timeout = 20 * time.Second
	}
	lines := &lineLog{}
	done := make(chan outcome, 1)
	go func() {
		res, err := f.sb.Run(ctx, spec, lines.add)
		done <- outcome{res, err}
	}()
	return done, lines
}

type lineLog struct {
	mu      sync.Mutex
	lines   []ci.Line
	batches int
	fail    error
}

func (l *lineLog) add(batch []ci.Line) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(batch) == 0 || len(batch) > ci.MaxBatch {
		return fmt.Errorf("batch of %d lines", len(batch))
	}
	l.batches++
	l.lines = append(l.lines, batch...)
	return l.fail
}

func (l *lineLog) get() []ci.Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ci.Line(nil), l.lines...)
}

// waitJob returns the run's Job once created.
func (f *fixture) waitJob() *batchv1.Job {
	f.t.Helper()
	var job *batchv1.Job
	proctest.Eventually(f.t, 10*time.Second, 5*time.Millisecond, "the CI Job", func() bool {
		list, err := f.cs.BatchV1().Jobs(testNS).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		job = &list.Items[0]
		return true
	})
	return job
}

// createPod plays the Job controller: the pod of job's template, pending.
func (f *fixture) createPod(job *batchv1.Job) *corev1.Pod {
	f.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-x7k2p", Namespace: testNS, Labels: job.Spec.Template.Labels},
		Spec:       job.Spec.Template.Spec,
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	pod, err := f.cs.CoreV1().Pods(testNS).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return pod
}

// podAt waits for the run's Job, creates its pod and gives it phase and the containers'
// states; it returns the Job and the pod as updated.
func (f *fixture) podAt(phase corev1.PodPhase, initState, ciState *corev1.ContainerState) (*batchv1.Job, *corev1.Pod) {
	f.t.Helper()
	job := f.waitJob()
	return job, f.setStatus(f.createPod(job), phase, initState, ciState)
}

// setStatus plays the kubelet.
func (f *fixture) setStatus(pod *corev1.Pod, phase corev1.PodPhase, initState, ciState *corev1.ContainerState) *corev1.Pod {
	f.t.Helper()
	pod = pod.DeepCopy()
	pod.Status.Phase = phase
	pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses = nil, nil
	if initState != nil {
		pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: uploadContainer, State: *initState}}
	}
	if ciState != nil {
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: ciContainer, State: *ciState}}
	}
	pod, err := f.cs.CoreV1().Pods(testNS).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return pod
}

var (
	running = &corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	waiting = func(reason string) *corev1.ContainerState {
		return &corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	exited = func(code int32, reason string) *corev1.ContainerState {
		return &corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}
	}
)

func (f *fixture) wait(done <-chan outcome) outcome {
	f.t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(15 * time.Second):
		f.t.Fatal("Run did not return")
		return outcome{}
	}
}

// wantFailure waits for the run, fails the test unless its error contains want, and checks
// that Job name is deleted.
func (f *fixture) wantFailure(done <-chan outcome, name, want string) {
	f.t.Helper()
	if o := f.wait(done); o.err == nil || !strings.Contains(o.err.Error(), want) {
		f.t.Fatalf("err %v, want one containing %q", o.err, want)
	}
	f.assertJobDeleted(name)
}

// assertJobDeleted checks the Job is gone and was deleted with a propagation that takes its
// pod along.
func (f *fixture) assertJobDeleted(name string) {
	f.t.Helper()
	if _, err := f.cs.BatchV1().Jobs(testNS).Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		f.t.Fatalf("Job %s still exists after Run (err %v)", name, err)
	}
	for _, a := range f.cs.Actions() {
		d, ok := a.(k8stesting.DeleteAction)
		if !ok || a.GetResource().Resource != "jobs" || d.GetName() != name {
			continue
		}
		p := d.GetDeleteOptions().PropagationPolicy
		if p == nil || (*p != metav1.DeletePropagationForeground && *p != metav1.DeletePropagationBackground) {
			f.t.Fatalf("Job deleted with propagation %v: its pod would be orphaned", p)
		}
		return
	}
	f.t.Fatalf("no delete of Job %s recorded", name)
}

func untar(t *testing.T, data []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("upload is not a tar archive: %v", err)
		}
		out[h.Name] = h
	}
}

func TestRunUploadsStreamsAndReportsSuccess(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(f.dir, ".git", "ticketflow-ci.pid")
	if err := os.WriteFile(pidFile, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(f.dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	f.setLogs("compiling\r\ntests ok\nlast unterminated")
	done, lines := f.start(context.Background(), ci.Spec{PIDFile: pidFile, TailLines: 2})

	job, pod := f.podAt(corev1.PodPending, running, waiting("PodInitializing"))
	select {
	case <-f.uploader.uploadedC:
	case <-time.After(10 * time.Second):
		t.Fatal("the work tree was not uploaded while the workspace container ran")
	}
	archive, target, _ := f.uploader.snapshot()
	if want := testNS + "/" + pod.Name + "/" + uploadContainer; target != want {
		t.Errorf("upload went to %s, want %s", target, want)
	}
	files := untar(t, archive)
	if h := files["build.sh"]; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 || h.Uname != "" {
		t.Errorf("build.sh missing, not executable or with an owner: %+v", h)
	}
	if h := files["passwd"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/passwd" || h.Size != 0 {
		t.Errorf("a symbolic link must travel as a link, never as the file it points to: %+v", h)
	}
	if _, ok := files[".git/ticketflow-ci.pid"]; ok {
		t.Error("the PID file was uploaded")
	}
	if _, ok := files[".git/"]; !ok {
		t.Error(".git directory missing from the upload")
	}

	pod = f.setStatus(pod, corev1.PodRunning, exited(0, "Completed"), running)
	// Live: the lines arrive while the container still runs.
	proctest.Eventually(t, 10*time.Second, 5*time.Millisecond, "log lines while the CI container runs", func() bool { return len(lines.get()) == 3 })
	f.setStatus(pod, corev1.PodSucceeded, exited(0, "Completed"), exited(0, "Completed"))

	o := f.wait(done)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.ExitCode != 0 || o.res.TimedOut || !o.res.Passed() {
		t.Errorf("result %+v, want a pass", o.res)
	}
	want := []ci.Line{{Stream: "stdout", Text: "compiling"}, {Stream: "stdout", Text: "tests ok"}, {Stream: "stdout", Text: "last unterminated"}}
	if got := lines.get(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	if o.res.Tail != "tests ok\nlast unterminated" {
		t.Errorf("tail %q", o.res.Tail)
	}
	f.assertJobDeleted(job.Name)
}

func TestRunFailedCommandGivesExitCode(t *testing.T) {
	f := newFixture(t)
	done, lines := f.start(context.Background(), ci.Spec{})
	job, pod := f.podAt(corev1.PodPending, running, nil)
	<-f.uploader.uploadedC
	// The fast path: the pod is already over when the processor first looks at the CI
	// container (the fake's default log).
	f.setStatus(pod, corev1.PodFailed, exited(0, "Completed"), exited(3, "Error"))
	o := f.wait(done)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.res.ExitCode != 3 || o.res.Passed() || o.res.TimedOut {
		t.Errorf("result %+v, want exit code 3", o.res)
	}
	if got := lines.get(); len(got) != 1 || got[0] != (ci.Line{Stream: "stdout", Text: "fake logs"}) {
		t.Errorf("lines %q, want the pod's log", got)
	}
	if o.res.Tail != "fake logs" {
		t.Errorf("tail %q", o.res.Tail)
	}
	f.assertJobDeleted(job.Name)
}

func TestRunOOMKilledIsReported(t *testing.T) {
	f := newFixture(t)
	done, _ := f.start(context.Background(), ci.Spec{Limits: ci.Limits{MemoryBytes: 64 << 20}})
	job := f.waitJob()
	if got := job.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().Value(); got != 64<<20 {
		t.Errorf("memory limit %d, want the run's 64 MiB", got)
	}
	pod := f.createPod(job)
	pod = f.setStatus(pod, corev1.PodPending, running, nil)
	<-f.uploader.uploadedC
	f.setStatus(pod, corev1.PodFailed, exited(0, "Completed"), exited(137, "OOMKilled"))
	o := f.wait(done)
	if o.err != nil || o.res.ExitCode != 137 || !strings.Contains(o.res.Tail, "OOMKilled") {
		t.Errorf("result %+v err %v, want 137 with OOMKilled in the tail", o.res, o.err)
	}
}

func TestRunTimeoutDeletesJob(t *testing.T) {
	f := newFixture(t)
	done, _ := f.start(context.Background(), ci.Spec{Timeout: 300 * time.Millisecond})
	job := f.waitJob()
	if got := *job.Spec.ActiveDeadlineSeconds; got != 31 {
		t.Errorf("activeDeadlineSeconds %d, want the timeout plus 30 s of slack", got)
	}
	pod := f.createPod(job)
	f.setStatus(pod, corev1.PodPending, waiting("ImagePullBackOff"), nil)
	o := f.wait(done)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if !o.res.TimedOut || o.res.ExitCode != -1 || o.res.Passed() {
		t.Errorf("result %+v, want a timeout", o.res)
	}
	if !strings.Contains(o.res.Tail, "ImagePullBackOff") || !strings.Contains(o.res.Tail, "timed out after 300ms") {
		t.Errorf("tail %q should say why and that it timed out", o.res.Tail)
	}
	f.assertJobDeleted(job.Name)
}

func TestRunJobDeadlineExceededIsATimeout(t *testing.T) {
	f := newFixture(t)
	done, _ := f.start(context.Background(), ci.Spec{})
	job := f.waitJob()
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonDeadlineExceeded}}
	if _, err := f.cs.BatchV1().Jobs(testNS).UpdateStatus(context.Background(), job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	o := f.wait(done)
	if o.err != nil || !o.res.TimedOut || o.res.ExitCode != -1 {
		t.Errorf("result %+v err %v, want a timeout", o.res, o.err)
	}
	f.assertJobDeleted(job.Name)
}

func TestRunCancelDeletesJob(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := f.start(ctx, ci.Spec{})
	job, _ := f.podAt(corev1.PodRunning, exited(0, "Completed"), running)
	cancel()
	o := f.wait(done)
	if !errors.Is(o.err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", o.err)
	}
	f.assertJobDeleted(job.Name)
}

func TestRunLineCallbackErrorStops(t *testing.T) {
	f := newFixture(t)
	done, lines := f.start(context.Background(), ci.Spec{})
	lines.mu.Lock()
	lines.fail = errors.New("event store down")
	lines.mu.Unlock()
	job, _ := f.podAt(corev1.PodRunning, exited(0, "Completed"), running)
	o := f.wait(done)
	if o.err == nil || o.err.Error() != "event store down" {
		t.Fatalf("err %v, want the callback's", o.err)
	}
	f.assertJobDeleted(job.Name)
}

func TestRunUnpackFailureIsAnError(t *testing.T) {
	f := newFixture(t)
	done, _ := f.start(context.Background(), ci.Spec{})
	job, _ := f.podAt(corev1.PodFailed, exited(2, "Error"), nil)
	f.wantFailure(done, job.Name, "unpack the work tree (exit code 2")
}

func TestRunUploadErrorIsAnError(t *testing.T) {
	f := newFixture(t)
	f.uploader.err = errors.New("pods/attach is forbidden")
	done, _ := f.start(context.Background(), ci.Spec{})
	job, _ := f.podAt(corev1.PodPending, running, nil)
	f.wantFailure(done, job.Name, "pods/attach is forbidden")
	if _, _, calls := f.uploader.snapshot(); calls != 1 {
		t.Errorf("%d uploads, want exactly one", calls)
	}
}

func TestRunFatalWaitingReasonFailsFast(t *testing.T) {
	f := newFixture(t)
	done, _ := f.start(context.Background(), ci.Spec{})
	job, _ := f.podAt(corev1.PodPending, waiting("InvalidImageName"), nil)
	f.wantFailure(done, job.Name, "InvalidImageName")
}

func TestRunPodDeletedIsAnError(t *testing.T) {
	f := newFixture(t)
	done, _ := f.start(context.Background(), ci.Spec{})
	_, pod := f.podAt(corev1.PodRunning, exited(0, "Completed"), running)
	proctest.Eventually(t, 10*time.Second, 5*time.Millisecond, "the log stream", func() bool {
		for _, a := range f.cs.Actions() {
			if a.GetSubresource() == "log" {
				return true
			}
		}
		return false
	})
	if err := f.cs.CoreV1().Pods(testNS).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	o := f.wait(done)
	if o.err == nil || !strings.Contains(o.err.Error(), "deleted before the command finished") {
		t.Fatalf("err %v, want the deleted pod", o.err)
	}
}

func TestRunDeletesStaleJobOfSameWorkTree(t *testing.T) {
	f := newFixture(t)
	stale, err := f.sb.buildJob("ticketflow-ci-stale00000", ci.Spec{Dir: f.dir, Command: "true"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := f.sb.buildJob("ticketflow-ci-other00000", ci.Spec{Dir: t.TempDir(), Command: "true"}, time.Minute)
	for _, j := range []*batchv1.Job{stale, other} {
		if _, err := f.cs.BatchV1().Jobs(testNS).Create(context.Background(), j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := f.start(ctx, ci.Spec{})
	proctest.Eventually(t, 10*time.Second, 5*time.Millisecond, "the stale Job deleted", func() bool {
		_, err := f.cs.BatchV1().Jobs(testNS).Get(context.Background(), stale.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	cancel()
	f.wait(done)
	if _, err := f.cs.BatchV1().Jobs(testNS).Get(context.Background(), other.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("another work tree's Job was deleted: %v", err)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	for name, spec := range map[string]ci.Spec{
		"no command":  {Dir: f.dir, Command: "  "},
		"no work dir": {Dir: filepath.Join(f.dir, "missing"), Command: "true"},
		"bad env":     {Dir: f.dir, Command: "true", Env: []string{"NOEQUALS"}},
	} {
		if _, err := f.sb.Run(context.Background(), spec, func([]ci.Line) error { return nil }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if list, _ := f.cs.BatchV1().Jobs(testNS).List(context.Background(), metav1.ListOptions{}); len(list.Items) != 0 {
		t.Errorf("a refused run created %d Jobs", len(list.Items))
	}
}

func TestWriteTreeRefusesTooLargeTree(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeTree(io.Discard, dir, func(string) bool { return false }, 1024)
	if !errors.Is(err, errTreeTooLarge) {
		t.Fatalf("err %v, want errTreeTooLarge", err)
	}
	if err := writeTree(io.Discard, dir, func(string) bool { return false }, 4096); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	cs := fake.NewClientset()
	for name, cfg := range map[string]Config{
		"namespace":       {Namespace: "Not_A_Label"},
		"service account": {ServiceAccount: "a b"},
		"cpu":             {CPU: "lots"},
		"memory":          {Memory: "-1Gi"},
		"image":           {Image: "debian bookworm"},
	} {
		if _, err := NewWithClient(cs, newFakeUploader(), cfg); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
	if _, err := NewWithClient(nil, newFakeUploader(), Config{}); err == nil {
		t.Error("nil client accepted")
	}
	sb, err := NewWithClient(cs, newFakeUploader(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if sb.cfg.Namespace != "ticketflow-ci" || sb.cfg.Image != "debian:bookworm-slim" || sb.cfg.ServiceAccount != "ticketflow-ci-runner" || sb.Name() != "kubernetes" {
		t.Errorf("defaults %+v", sb.cfg)
	}
}

func TestNewFromKubeconfigOrCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "KUBECONFIG") {
		t.Errorf("outside a cluster without KUBECONFIG: err %v", err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sb, err := New(Config{Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sb.uploader.(*AttachUploader); !ok || sb.Name() != "kubernetes" {
		t.Errorf("uploader %T", sb.uploader)
	}
	if _, err := New(Config{Kubeconfig: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing kubeconfig was accepted")
	}
}
