package kubesandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/ticketflow/ticketflow/services/processor/ci"
)

// Sandbox is the "kubernetes" ci.Sandbox.
type Sandbox struct {
	cfg      Config
	q        quantities
	client   kubernetes.Interface
	uploader Uploader
}

var _ ci.Sandbox = (*Sandbox)(nil)

// Name implements ci.Sandbox.
func (s *Sandbox) Name() string { return "kubernetes" }

// fatalWaiting are container waiting reasons that no retry by the kubelet fixes.
var fatalWaiting = map[string]bool{
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
}

// Run implements ci.Sandbox: one Job per call, deleted (with its pod) before Run returns.
// spec.Dir is uploaded to the pod's /work; what CI writes there stays in the pod. Limits:
// MemoryBytes is the pod's memory limit (TICKETFLOW_CI_K8S_MEMORY when zero), CPUTime a
// per-process `ulimit -t`; Processes is not enforceable per pod from the API (the kubelet's
// podPidsLimit bounds it node-wide).
func (s *Sandbox) Run(ctx context.Context, spec ci.Spec, onLine ci.LineFunc) (res ci.Result, err error) {
	if strings.TrimSpace(spec.Command) == "" {
		return ci.Result{}, errors.New("no CI command configured for this ticket")
	}
	if info, err := os.Stat(spec.Dir); err != nil || !info.IsDir() {
		return ci.Result{}, fmt.Errorf("CI work directory %q is not a directory", spec.Dir)
	}
	if spec.TailLines <= 0 {
		spec.TailLines = 30
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	name, err := jobName()
	if err != nil {
		return ci.Result{}, err
	}
	job, err := s.buildJob(name, spec, timeout)
	if err != nil {
		return ci.Result{}, err
	}
	if err := s.deleteStale(ctx, spec.Dir); err != nil {
		return ci.Result{}, err
	}
	start := time.Now()
	jobs := s.client.BatchV1().Jobs(s.cfg.Namespace)
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return ci.Result{}, fmt.Errorf("create CI Job in namespace %s: %w", s.cfg.Namespace, err)
	}
	r := &run{s: s, spec: spec, name: name, onLine: onLine}
	defer func() {
		// A fresh context: the run's own may be what ended it.
		cctx, cancel := context.WithTimeout(context.Background(), s.cfg.CleanupTimeout)
		defer cancel()
		if derr := s.deleteJob(cctx, name); derr != nil && !r.exited {
			// The command may still be running: say so rather than pretend it is gone.
			err = errors.Join(err, derr)
		}
	}()
	res, err = r.loop(ctx, timeout)
	res.Duration = time.Since(start)
	res.Tail = strings.Join(r.tail, "\n")
	if res.TimedOut {
		res.ExitCode = -1
		res.Tail = strings.TrimSpace(res.Tail + fmt.Sprintf("\nCI command timed out after %s", timeout))
	}
	return res, err
}

func jobName() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("CI Job name: %w", err)
	}
	return "ticketflow-ci-" + hex.EncodeToString(b), nil
}

func (s *Sandbox) deleteJob(ctx context.Context, name string) error {
	// Foreground: the Job object goes only after its pod is gone, so a later look at the
	// namespace cannot miss a survivor.
	err := s.client.BatchV1().Jobs(s.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: new(metav1.DeletePropagationForeground),
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete CI Job %s/%s: %w", s.cfg.Namespace, name, err)
	}
	return nil
}

// deleteStale deletes the Jobs an earlier execution on the same work tree left behind (a
// processor killed mid-run): the ticket's lease guarantees no live run uses that tree.
func (s *Sandbox) deleteStale(ctx context.Context, dir string) error {
	list, err := s.client.BatchV1().Jobs(s.cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: WorkTreeLabel + "=" + workTreeHash(dir),
	})
	if err != nil {
		return fmt.Errorf("list stale CI Jobs in namespace %s: %w", s.cfg.Namespace, err)
	}
	for _, j := range list.Items {
		if err := s.deleteJob(ctx, j.Name); err != nil {
			return err
		}
	}
	return nil
}

// run is the state of one execution, owned by loop's goroutine.
type run struct {
	s      *Sandbox
	spec   ci.Spec
	name   string
	onLine ci.LineFunc

	tail     []string
	podName  string
	uploaded bool // upload started
	logging  bool // log stream started
	exited   bool // the CI container terminated
	exitCode int
	note     string // why the container ended, when Kubernetes says more than the code

	uploadDone chan error
	lines      chan ci.Line
	drain      <-chan time.Time
	waiting    string // last waiting reason, reported on timeout
}

func (r *run) loop(ctx context.Context, timeout time.Duration) (ci.Result, error) {
	var res ci.Result
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	ticker := time.NewTicker(r.s.cfg.PollInterval)
	defer ticker.Stop()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the upload and the log stream
	pods := r.s.client.CoreV1().Pods(r.s.cfg.Namespace)
	selector := metav1.ListOptions{LabelSelector: RunLabel + "=" + r.name}

	var events <-chan watch.Event
	rewatch := func() {
		// Without a watch the poll alone carries on, slower.
		if w, err := pods.Watch(runCtx, selector); err == nil {
			events = w.ResultChan()
			context.AfterFunc(runCtx, w.Stop)
		}
	}
	rewatch()
	r.uploadDone = make(chan error, 1)
	poll := func() (bool, error) {
		list, err := pods.List(runCtx, selector)
		if err != nil {
			return false, nil // transient: the next tick or event tries again
		}
		if len(list.Items) > 0 {
			if done, err := r.observe(runCtx, &list.Items[0]); done || err != nil {
				return done, err
			}
		}
		return r.checkJob(runCtx, len(list.Items) == 0)
	}
	if done, err := poll(); done || err != nil {
		res.TimedOut = done
		return res, err
	}
	for {
		if r.exited && r.lines == nil {
			res.ExitCode = r.exitCode
			if r.note != "" {
				r.addTail(r.note)
			}
			return res, nil
		}
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				if runCtx.Err() == nil {
					rewatch()
				}
				continue
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			if ev.Type == watch.Deleted {
				if done, err := r.checkJob(runCtx, true); done || err != nil {
					res.TimedOut = done
					return res, err
				}
				continue
			}
			if done, err := r.observe(runCtx, pod); done || err != nil {
				res.TimedOut = done
				return res, err
			}
		case <-ticker.C:
			if done, err := poll(); done || err != nil {
				res.TimedOut = done
				return res, err
			}
		case err := <-r.uploadDone:
			if err != nil {
				return res, fmt.Errorf("upload the work tree to the CI pod: %w", err)
			}
		case l, ok := <-r.lines:
			if !ok {
				r.lines = nil
				continue
			}
			if err := r.deliver(l); err != nil {
				return res, err
			}
		case <-r.drain:
			// The container is gone and its log still has not ended: stop waiting for it.
			r.lines, r.drain = nil, nil
		case <-timer.C:
			if r.waiting != "" {
				r.addTail("CI pod still waiting: " + r.waiting)
			}
			res.TimedOut = true
			return res, nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// deliver hands l and every line already waiting (up to ci.MaxBatch) to onLine.
func (r *run) deliver(l ci.Line) error {
	batch := []ci.Line{l}
more:
	for len(batch) < ci.MaxBatch {
		select {
		case l, ok := <-r.lines:
			if !ok {
				r.lines = nil
				break more
			}
			batch = append(batch, l)
		default:
			break more
		}
	}
	for _, l := range batch {
		r.addTail(l.Text)
	}
	return r.onLine(batch)
}

func (r *run) addTail(text string) {
	r.tail = append(r.tail, text)
	if len(r.tail) > r.spec.TailLines {
		r.tail = r.tail[len(r.tail)-r.spec.TailLines:]
	}
}

func containerStatus(statuses []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i]
		}
	}
	return nil
}

// observe acts on the pod's latest status: upload when the workspace container waits for its
// stdin, follow the log once the CI container started, record its exit. It reports done with
// an error when the execution cannot complete.
func (r *run) observe(ctx context.Context, pod *corev1.Pod) (bool, error) {
	r.podName = pod.Name
	r.waiting = ""
	if st := containerStatus(pod.Status.InitContainerStatuses, uploadContainer); st != nil {
		switch {
		case st.State.Running != nil && !r.uploaded:
			r.uploaded = true
			go func() { r.uploadDone <- r.upload(ctx, pod.Name) }()
		case st.State.Terminated != nil && st.State.Terminated.ExitCode != 0:
			t := st.State.Terminated
			return false, fmt.Errorf("the CI pod could not unpack the work tree (exit code %d%s)", t.ExitCode, detail(t.Reason, t.Message))
		case st.State.Waiting != nil:
			if err := r.checkWaiting(st.State.Waiting); err != nil {
				return false, err
			}
		}
	}
	if st := containerStatus(pod.Status.ContainerStatuses, ciContainer); st != nil {
		if (st.State.Running != nil || st.State.Terminated != nil) && !r.logging {
			r.logging = true
			r.lines = make(chan ci.Line, 4*ci.MaxBatch)
			go r.follow(ctx, pod.Name, r.lines)
		}
		if t := st.State.Terminated; t != nil && !r.exited {
			r.exited, r.exitCode = true, int(t.ExitCode)
			if t.Reason != "" && t.Reason != "Completed" && t.Reason != "Error" {
				r.note = "CI container ended: " + t.Reason
			}
			r.drain = time.After(r.s.cfg.LogDrain)
		}
		if st.State.Waiting != nil {
			if err := r.checkWaiting(st.State.Waiting); err != nil {
				return false, err
			}
		}
	}
	if pod.Status.Phase == corev1.PodFailed && !r.exited {
		return false, fmt.Errorf("CI pod %s failed before the command finished%s", pod.Name, detail(pod.Status.Reason, pod.Status.Message))
	}
	return false, nil
}

func (r *run) checkWaiting(w *corev1.ContainerStateWaiting) error {
	if fatalWaiting[w.Reason] {
		return fmt.Errorf("CI pod cannot start%s", detail(w.Reason, w.Message))
	}
	if w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
		r.waiting = w.Reason
	}
	return nil
}

// checkJob reads the Job's conditions: its active deadline (the cluster's side of the timeout)
// ends the run as timed out; another failure, or a pod that vanished, as an error.
func (r *run) checkJob(ctx context.Context, podGone bool) (timedOut bool, err error) {
	if r.exited {
		return false, nil
	}
	job, err := r.s.client.BatchV1().Jobs(r.s.cfg.Namespace).Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, fmt.Errorf("CI Job %s was deleted before the command finished", r.name)
	}
	if err != nil {
		return false, nil // transient: retried on the next tick
	}
	for _, c := range job.Status.Conditions {
		if c.Type != batchv1.JobFailed || c.Status != corev1.ConditionTrue {
			continue
		}
		if c.Reason == batchv1.JobReasonDeadlineExceeded {
			return true, nil
		}
		return false, fmt.Errorf("CI Job %s failed%s", r.name, detail(c.Reason, c.Message))
	}
	if podGone && r.podName != "" {
		return false, fmt.Errorf("CI pod %s was deleted before the command finished", r.podName)
	}
	return false, nil
}

func detail(reason, message string) string {
	switch {
	case reason != "" && message != "":
		return ": " + reason + ": " + message
	case reason != "" || message != "":
		return ": " + reason + message
	}
	return ""
}

func (r *run) upload(ctx context.Context, pod string) error {
	pr, pw := io.Pipe()
	pidFile := ""
	if r.spec.PIDFile != "" {
		if rel, err := filepath.Rel(r.spec.Dir, r.spec.PIDFile); err == nil {
			pidFile = filepath.ToSlash(rel)
		}
	}
	tarErr := make(chan error, 1)
	go func() {
		err := writeTree(pw, r.spec.Dir, func(rel string) bool { return rel == pidFile }, r.s.q.work.Value())
		pw.CloseWithError(err)
		tarErr <- err
	}()
	err := r.s.uploader.Upload(ctx, r.s.cfg.Namespace, pod, uploadContainer, pr)
	pr.CloseWithError(errors.New("upload ended")) // unblocks writeTree if the upload stopped reading
	if terr := <-tarErr; terr != nil {
		return fmt.Errorf("archive %s: %w", r.spec.Dir, terr)
	}
	return err
}

// follow streams the CI container's log (stdout and stderr, merged by the kubelet) into lines
// and closes it at the end of the stream.
func (r *run) follow(ctx context.Context, pod string, lines chan<- ci.Line) {
	defer close(lines)
	send := func(text string) {
		select {
		case lines <- ci.Line{Stream: "stdout", Text: text}:
		case <-ctx.Done():
		}
	}
	stream, err := r.s.client.CoreV1().Pods(r.s.cfg.Namespace).
		GetLogs(pod, &corev1.PodLogOptions{Container: ciContainer, Follow: true}).Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			send(fmt.Sprintf("journal du pod CI indisponible : %v", err))
		}
		return
	}
	defer stream.Close()
	ci.ReadLines(stream, send)
}
