package kubesandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ticketflow/ticketflow/services/processor/ci"
)

// Labels of every CI Job and pod. ComponentLabel=ComponentValue is what the deny-all
// NetworkPolicy of deploy/k8s/base/ci-sandbox.yaml selects: a pod without it would not be
// confined, so the tests check both sides agree.
const (
	ComponentLabel = "app.kubernetes.io/component"
	ComponentValue = "ci-sandbox"
	// NetworkLabel=NetworkEgress marks the runs whose repository is allowed the network
	// (ci.Spec.Network); the manifest's second policy lets those reach public addresses.
	NetworkLabel  = "ticketflow.io/ci-network"
	NetworkEgress = "egress"
	// RunLabel names the Job of one execution, so its pod is found without the Job controller's
	// own labels.
	RunLabel = "ticketflow.io/ci-run"
	// WorkTreeLabel is a hash of the work directory: a run deletes the Jobs a crashed processor
	// left for the same work tree before it starts (the cluster's counterpart of ci.KillStale).
	WorkTreeLabel = "ticketflow.io/ci-worktree"
)

// Names inside the pod.
const (
	uploadContainer = "workspace"
	ciContainer     = "ci"
	workDir         = "/work"
	tmpDir          = "/tmp"
	// runnerID is the unprivileged uid and gid of both containers (the "nonroot" id of
	// distroless images; any non-zero id satisfies the restricted profile).
	runnerID int64 = 65532
	// deadlineSlack lets the processor's own timer (which reports TimedOut) fire before the
	// cluster's activeDeadlineSeconds, which is the backstop when the processor is gone.
	deadlineSlack = 30 * time.Second
)

func workTreeHash(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:10])
}

// podEnv is the command's environment inside the pod: the run's variables, minus what only
// made sense on the processor's host (its PATH, HOME and TMPDIR), plus the pod's own HOME and
// TMPDIR. The image's PATH stays.
func podEnv(env []string) ([]corev1.EnvVar, error) {
	if env == nil {
		env = ci.MinimalEnv()
	}
	out := []corev1.EnvVar{{Name: "HOME", Value: tmpDir}, {Name: "TMPDIR", Value: tmpDir}}
	seen := map[string]int{"HOME": 0, "TMPDIR": 1}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("CI environment entry %q is not NAME=value", kv)
		}
		if errs := validation.IsEnvVarName(name); len(errs) > 0 {
			return nil, fmt.Errorf("CI environment variable %q: %s", name, strings.Join(errs, "; "))
		}
		switch name {
		case "PATH", "HOME", "TMPDIR":
			continue
		}
		if i, dup := seen[name]; dup {
			out[i].Value = value // the last one wins, as in a process environment
			continue
		}
		seen[name] = len(out)
		out = append(out, corev1.EnvVar{Name: name, Value: value})
	}
	return out, nil
}

// ciScript runs the command under a per-process CPU-time limit (ci.Limits.CPUTime; the CPU
// rate and memory are the pod's limits). It fails rather than run unbounded when the limit
// cannot be set.
func ciScript(cpuTime time.Duration) []string {
	if cpuTime <= 0 {
		return []string{"sh", "-c", `exec sh -c "$1"`, "sh"}
	}
	secs := int64(math.Ceil(cpuTime.Seconds()))
	return []string{"sh", "-c", `ulimit -t ` + strconv.FormatInt(secs, 10) + ` || exit 125
exec sh -c "$1"`, "sh"}
}

func restrictedContainerContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             new(true),
		RunAsUser:                new(runnerID),
		RunAsGroup:               new(runnerID),
		Privileged:               new(false),
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// buildJob is the whole confinement of one execution: everything the cluster enforces is
// here.
func (s *Sandbox) buildJob(name string, spec ci.Spec, timeout time.Duration) (*batchv1.Job, error) {
	env, err := podEnv(spec.Env)
	if err != nil {
		return nil, err
	}
	memory := s.q.memory
	if spec.Limits.MemoryBytes > 0 {
		memory = *resource.NewQuantity(spec.Limits.MemoryBytes, resource.BinarySI)
	}
	// requests = limits: the Guaranteed QoS class, so a CI pod is the last evicted and never
	// runs on memory the node does not have.
	res := corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: s.q.cpu, corev1.ResourceMemory: memory},
		Requests: corev1.ResourceList{corev1.ResourceCPU: s.q.cpu, corev1.ResourceMemory: memory},
	}
	labels := map[string]string{
		"app.kubernetes.io/name":       "ticketflow-ci",
		ComponentLabel:                 ComponentValue,
		"app.kubernetes.io/managed-by": "ticketflow-processor",
		RunLabel:                       name,
		WorkTreeLabel:                  workTreeHash(spec.Dir),
	}
	if spec.Network {
		labels[NetworkLabel] = NetworkEgress
	}
	podLabels := make(map[string]string, len(labels))
	for k, v := range labels {
		podLabels[k] = v
	}
	mountWork := corev1.VolumeMount{Name: "work", MountPath: workDir}
	mountTmp := corev1.VolumeMount{Name: "tmp", MountPath: tmpDir}
	deadline := int64(math.Ceil((timeout + deadlineSlack).Seconds()))
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.cfg.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			Parallelism:             new(int32(1)),
			Completions:             new(int32(1)),
			BackoffLimit:            new(int32(0)),
			ActiveDeadlineSeconds:   &deadline,
			TTLSecondsAfterFinished: new(int32(math.Ceil(s.cfg.JobTTL.Seconds()))),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					ServiceAccountName:            s.cfg.ServiceAccount,
					AutomountServiceAccountToken:  new(false),
					EnableServiceLinks:            new(false),
					HostNetwork:                   false,
					HostPID:                       false,
					HostIPC:                       false,
					TerminationGracePeriodSeconds: new(int64(1)),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   new(true),
						RunAsUser:      new(runnerID),
						RunAsGroup:     new(runnerID),
						FSGroup:        new(runnerID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					InitContainers: []corev1.Container{{
						Name:  uploadContainer,
						Image: s.cfg.Image,
						// The processor attaches to this stdin through the API server and streams
						// the work tree as a tar; stdinOnce closes it after that one upload.
						Command:                  []string{"tar", "-x", "-f", "-", "-C", workDir, "--no-same-owner"},
						Stdin:                    true,
						StdinOnce:                true,
						ImagePullPolicy:          corev1.PullIfNotPresent,
						Resources:                res,
						SecurityContext:          restrictedContainerContext(),
						VolumeMounts:             []corev1.VolumeMount{mountWork},
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
					Containers: []corev1.Container{{
						Name:                     ciContainer,
						Image:                    s.cfg.Image,
						Command:                  append(ciScript(spec.Limits.CPUTime), spec.Command),
						WorkingDir:               workDir,
						Env:                      env,
						ImagePullPolicy:          corev1.PullIfNotPresent,
						Resources:                res,
						SecurityContext:          restrictedContainerContext(),
						VolumeMounts:             []corev1.VolumeMount{mountWork, mountTmp},
						TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					}},
					Volumes: []corev1.Volume{
						{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(s.q.work)}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(s.q.tmp)}}},
					},
				},
			},
		},
	}, nil
}
