// Package kubesandbox runs each CI execution as a Kubernetes Job (TICKETFLOW_CI_SANDBOX=kubernetes):
// one pod under the "restricted" Pod Security profile, in a namespace of its own, with no
// service-account token, no network (a deny-all NetworkPolicy selects its labels, see
// deploy/k8s/base/ci-sandbox.yaml) and resource limits. The ticket's work tree reaches the pod
// through the API server (an init container untars its attached stdin into /work), never
// through the pod's network; the command's output is streamed back from the pod's log.
package kubesandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config configures the Kubernetes sandbox. Every variable, with its default:
type Config struct {
	// TICKETFLOW_CI_K8S_NAMESPACE: namespace of the CI Jobs. Default: ticketflow-ci.
	// It enforces the restricted Pod Security profile and holds the deny-all NetworkPolicy
	// (deploy/k8s/base/ci-sandbox.yaml).
	Namespace string `env:"TICKETFLOW_CI_K8S_NAMESPACE" envDefault:"ticketflow-ci"`
	// TICKETFLOW_CI_K8S_IMAGE: image of the CI pods (needs sh and tar). Default: debian:bookworm-slim.
	// It runs as uid/gid 65532 with a read-only root file system; HOME and TMPDIR are /tmp.
	Image string `env:"TICKETFLOW_CI_K8S_IMAGE" envDefault:"debian:bookworm-slim"`
	// TICKETFLOW_CI_K8S_SERVICE_ACCOUNT: service account of the CI pods. Default: ticketflow-ci-runner.
	// It must have no permissions; its token is never mounted anyway.
	ServiceAccount string `env:"TICKETFLOW_CI_K8S_SERVICE_ACCOUNT" envDefault:"ticketflow-ci-runner"`
	// KUBECONFIG: kubeconfig file(s) of the CI cluster. Default: the in-cluster service account.
	// Only read with TICKETFLOW_CI_SANDBOX=kubernetes, to run the processor outside the cluster.
	Kubeconfig string `env:"KUBECONFIG"`
	// TICKETFLOW_CI_K8S_CPU: CPU limit (= request) of a CI pod, in cores. Default: 1.
	CPU string `env:"TICKETFLOW_CI_K8S_CPU" envDefault:"1"`
	// TICKETFLOW_CI_K8S_MEMORY: memory limit (= request) of a CI pod without a run limit. Default: 1Gi.
	Memory string `env:"TICKETFLOW_CI_K8S_MEMORY" envDefault:"1Gi"`
	// TICKETFLOW_CI_K8S_WORK_SIZE: size limit of a CI pod's /work. Default: 2Gi.
	// It holds the uploaded work tree (a bigger one is refused before upload) and what CI
	// writes there.
	WorkSize string `env:"TICKETFLOW_CI_K8S_WORK_SIZE" envDefault:"2Gi"`
	// TICKETFLOW_CI_K8S_TMP_SIZE: size limit of a CI pod's /tmp (also its HOME). Default: 512Mi.
	TmpSize string `env:"TICKETFLOW_CI_K8S_TMP_SIZE" envDefault:"512Mi"`
	// TICKETFLOW_CI_K8S_JOB_TTL: ttlSecondsAfterFinished of the CI Jobs. Default: 10m.
	// The processor deletes every Job itself; this reaps the ones it could not (it died).
	JobTTL time.Duration `env:"TICKETFLOW_CI_K8S_JOB_TTL" envDefault:"10m"`
	// TICKETFLOW_CI_K8S_POLL_INTERVAL: how often a run re-reads its pod and Job. Default: 5s.
	// Changes arrive through a watch; the poll is the safety net for a dropped one.
	PollInterval time.Duration `env:"TICKETFLOW_CI_K8S_POLL_INTERVAL" envDefault:"5s"`

	// LogDrain bounds how long the log stream may lag behind the container's exit before the
	// run ends without the rest. Default: 10s.
	LogDrain time.Duration
	// CleanupTimeout bounds the final Job deletion. Default: 30s.
	CleanupTimeout time.Duration
}

// quantities are Config's sizes, parsed once.
type quantities struct {
	cpu, memory, work, tmp resource.Quantity
}

func (c *Config) applyDefaults() {
	def := func(v *string, d string) {
		if strings.TrimSpace(*v) == "" {
			*v = d
		}
	}
	def(&c.Namespace, "ticketflow-ci")
	def(&c.Image, "debian:bookworm-slim")
	def(&c.ServiceAccount, "ticketflow-ci-runner")
	def(&c.CPU, "1")
	def(&c.Memory, "1Gi")
	def(&c.WorkSize, "2Gi")
	def(&c.TmpSize, "512Mi")
	for _, d := range []struct {
		v *time.Duration
		d time.Duration
	}{{&c.JobTTL, 10 * time.Minute}, {&c.PollInterval, 5 * time.Second}, {&c.LogDrain, 10 * time.Second}, {&c.CleanupTimeout, 30 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.d
		}
	}
}

func (c Config) validate() (quantities, error) {
	var q quantities
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return q, fmt.Errorf("TICKETFLOW_CI_K8S_NAMESPACE %q: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(c.ServiceAccount); len(errs) > 0 {
		return q, fmt.Errorf("TICKETFLOW_CI_K8S_SERVICE_ACCOUNT %q: %s", c.ServiceAccount, strings.Join(errs, "; "))
	}
	if strings.ContainsAny(c.Image, " \t\r\n") {
		return q, fmt.Errorf("TICKETFLOW_CI_K8S_IMAGE %q: an image reference has no white space", c.Image)
	}
	for _, p := range []struct {
		name, value string
		into        *resource.Quantity
	}{
		{"TICKETFLOW_CI_K8S_CPU", c.CPU, &q.cpu},
		{"TICKETFLOW_CI_K8S_MEMORY", c.Memory, &q.memory},
		{"TICKETFLOW_CI_K8S_WORK_SIZE", c.WorkSize, &q.work},
		{"TICKETFLOW_CI_K8S_TMP_SIZE", c.TmpSize, &q.tmp},
	} {
		v, err := resource.ParseQuantity(p.value)
		if err != nil {
			return q, fmt.Errorf("%s %q: %w", p.name, p.value, err)
		}
		if v.Sign() <= 0 {
			return q, fmt.Errorf("%s %q: must be positive", p.name, p.value)
		}
		*p.into = v
	}
	return q, nil
}

// New connects to the cluster (KUBECONFIG when set, else the in-cluster service account) and
// uploads work trees through the pods' attach subresource.
func New(cfg Config) (*Sandbox, error) {
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	// Each run watches its pod and polls it: many concurrent runs must not queue behind
	// client-go's default 5 requests per second.
	restCfg.QPS, restCfg.Burst = 50, 100
	restCfg.UserAgent = "ticketflow-processor/ci-sandbox"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return NewWithClient(client, &AttachUploader{Config: restCfg, Client: client}, cfg)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if strings.TrimSpace(kubeconfig) != "" {
		rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(kubeconfig)}
		c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("KUBECONFIG %q: %w", kubeconfig, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, errors.New("TICKETFLOW_CI_SANDBOX=kubernetes: not running in a cluster and KUBECONFIG is not set")
		}
		return nil, fmt.Errorf("in-cluster kubernetes configuration: %w", err)
	}
	return c, nil
}

// NewWithClient builds the sandbox on an existing client; uploader carries the work tree into
// the pod (AttachUploader in a cluster, a fake in tests).
func NewWithClient(client kubernetes.Interface, uploader Uploader, cfg Config) (*Sandbox, error) {
	if client == nil || uploader == nil {
		return nil, errors.New("kubernetes sandbox: a client and an uploader are required")
	}
	cfg.applyDefaults()
	q, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Sandbox{cfg: cfg, q: q, client: client, uploader: uploader}, nil
}
