package kubesandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/ticketflow/ticketflow/services/processor/ci"
)

func testJob(t *testing.T, spec ci.Spec) (*Sandbox, *batchv1.Job) {
	t.Helper()
	sb, err := NewWithClient(fake.NewClientset(), newFakeUploader(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Dir == "" {
		spec.Dir = "/var/lib/ticketflow/work/T-1"
	}
	if spec.Command == "" {
		spec.Command = "make test"
	}
	job, err := sb.buildJob("ticketflow-ci-0123456789", spec, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return sb, job
}

func isTrue(p *bool) bool  { return p != nil && *p }
func isFalse(p *bool) bool { return p != nil && !*p }

func TestJobSpecIsRestricted(t *testing.T) {
	_, job := testJob(t, ci.Spec{
		Env:    []string{"CI=true", "PATH=/host/bin", "HOME=/root", "TICKETFLOW_TICKET_ID=T-1"},
		Limits: ci.Limits{MemoryBytes: 512 << 20, CPUTime: 90 * time.Second},
	})
	js := job.Spec
	if js.BackoffLimit == nil || *js.BackoffLimit != 0 {
		t.Error("backoffLimit must be 0: a CI command runs once")
	}
	if js.ActiveDeadlineSeconds == nil || *js.ActiveDeadlineSeconds != 630 {
		t.Errorf("activeDeadlineSeconds %v, want 600+30", js.ActiveDeadlineSeconds)
	}
	if js.TTLSecondsAfterFinished == nil || *js.TTLSecondsAfterFinished != 600 {
		t.Errorf("ttlSecondsAfterFinished %v, want 600", js.TTLSecondsAfterFinished)
	}
	if *js.Parallelism != 1 || *js.Completions != 1 {
		t.Error("one pod per Job")
	}
	ps := js.Template.Spec
	if ps.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %s", ps.RestartPolicy)
	}
	if !isFalse(ps.AutomountServiceAccountToken) {
		t.Error("the service-account token must not be mounted")
	}
	if ps.ServiceAccountName != "ticketflow-ci-runner" {
		t.Errorf("serviceAccountName %q", ps.ServiceAccountName)
	}
	if !isFalse(ps.EnableServiceLinks) {
		t.Error("enableServiceLinks must be false: no service addresses in the environment")
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC || ps.HostUsers != nil && *ps.HostUsers {
		t.Error("no host namespace")
	}
	sc := ps.SecurityContext
	if sc == nil || !isTrue(sc.RunAsNonRoot) || sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65532 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", sc)
	}
	for _, v := range ps.Volumes {
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil {
			t.Errorf("volume %s is not a size-limited emptyDir: %+v", v.Name, v.VolumeSource)
		}
	}
	if len(ps.Volumes) != 2 {
		t.Errorf("%d volumes, want work and tmp", len(ps.Volumes))
	}
	all := append(slices.Clone(ps.InitContainers), ps.Containers...)
	if len(all) != 2 {
		t.Fatalf("%d containers, want workspace + ci", len(all))
	}
	for _, c := range all {
		s := c.SecurityContext
		if s == nil {
			t.Fatalf("%s: no securityContext", c.Name)
		}
		if !isFalse(s.AllowPrivilegeEscalation) || !isFalse(s.Privileged) || !isTrue(s.ReadOnlyRootFilesystem) || !isTrue(s.RunAsNonRoot) ||
			s.RunAsUser == nil || *s.RunAsUser != 65532 || s.RunAsGroup == nil || *s.RunAsGroup != 65532 ||
			s.Capabilities == nil || len(s.Capabilities.Add) != 0 || !slices.Equal(s.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			s.SeccompProfile == nil || s.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: securityContext %+v", c.Name, s)
		}
		if len(c.Ports) != 0 || len(c.EnvFrom) != 0 {
			t.Errorf("%s: ports or envFrom", c.Name)
		}
		lim, req := c.Resources.Limits, c.Resources.Requests
		wantMem := resource.MustParse("512Mi")
		if lim.Memory().Cmp(wantMem) != 0 || req.Memory().Cmp(wantMem) != 0 || lim.Cpu().Cmp(resource.MustParse("1")) != 0 || req.Cpu().Cmp(*lim.Cpu()) != 0 {
			t.Errorf("%s: resources %+v, want 512Mi and 1 CPU, requests = limits", c.Name, c.Resources)
		}
	}
	up, run := ps.InitContainers[0], ps.Containers[0]
	if !up.Stdin || !up.StdinOnce || up.TTY || up.Command[0] != "tar" {
		t.Errorf("workspace container must untar one attached stdin: %+v", up)
	}
	if run.Stdin || run.WorkingDir != workDir {
		t.Errorf("ci container: stdin %v, workingDir %q", run.Stdin, run.WorkingDir)
	}
	if got := run.Command; got[len(got)-1] != "make test" || !strings.Contains(strings.Join(got, " "), "ulimit -t 90 || exit 125") {
		t.Errorf("command %q: the run's command under its CPU-time limit", got)
	}
	env := map[string]string{}
	for _, e := range run.Env {
		env[e.Name] = e.Value
	}
	if _, ok := env["PATH"]; ok || env["HOME"] != "/tmp" || env["TMPDIR"] != "/tmp" || env["CI"] != "true" || env["TICKETFLOW_TICKET_ID"] != "T-1" || len(env) != 4 {
		t.Errorf("env %v: the run's variables, the pod's HOME and TMPDIR, the image's PATH", env)
	}
	if job.Labels[ComponentLabel] != ComponentValue || js.Template.Labels[ComponentLabel] != ComponentValue || js.Template.Labels[RunLabel] != job.Name {
		t.Errorf("labels %v / %v", job.Labels, js.Template.Labels)
	}
	if _, ok := js.Template.Labels[NetworkLabel]; ok {
		t.Error("a run without network must not carry the egress label")
	}
	_, netJob := testJob(t, ci.Spec{Network: true})
	if netJob.Spec.Template.Labels[NetworkLabel] != NetworkEgress {
		t.Error("a run with network must carry the egress label")
	}
}

// The pod is checked against the same code the API server's Pod Security admission runs.
func TestPodPassesRestrictedPodSecurity(t *testing.T) {
	_, job := testJob(t, ci.Spec{Limits: ci.Limits{CPUTime: time.Minute}})
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := job.Spec.Template
	results := eval.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &tmpl.ObjectMeta, &tmpl.Spec)
	if len(results) == 0 {
		t.Fatal("no Pod Security check ran")
	}
	if agg := policy.AggregateCheckResults(results); !agg.Allowed {
		t.Fatalf("pod refused by the restricted profile: %s: %s", agg.ForbiddenReason(), agg.ForbiddenDetail())
	}
	// The check can fail: one privileged setting is caught.
	bad := tmpl.Spec.DeepCopy()
	bad.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
	if policy.AggregateCheckResults(eval.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &tmpl.ObjectMeta, bad)).Allowed {
		t.Fatal("the restricted check accepted allowPrivilegeEscalation unset")
	}
}

func TestPodEnv(t *testing.T) {
	env, err := podEnv([]string{"A=1", "A=2", "PATH=/x", "EMPTY="})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range env {
		got[e.Name] = e.Value
	}
	if len(env) != 4 || got["A"] != "2" || got["EMPTY"] != "" || got["HOME"] != "/tmp" {
		t.Errorf("env %v", env)
	}
	for _, bad := range []string{"NOVALUE", "=x", "1A B=x"} {
		if _, err := podEnv([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// manifest is deploy/k8s/base/ci-sandbox.yaml, decoded strictly into the typed objects (an
// unknown or misspelt field fails).
type manifest struct {
	namespace   *corev1.Namespace
	accounts    map[string]*corev1.ServiceAccount // namespace/name
	policies    []*networkingv1.NetworkPolicy
	role        *rbacv1.Role
	roleBinding *rbacv1.RoleBinding
}

func loadManifest(t *testing.T) manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "deploy", "k8s", "base", "ci-sandbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := manifest{accounts: map[string]*corev1.ServiceAccount{}}
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		var sa *corev1.ServiceAccount
		switch head.APIVersion + " " + head.Kind {
		case "v1 Namespace":
			m.namespace = &corev1.Namespace{}
			obj = m.namespace
		case "v1 ServiceAccount":
			sa = &corev1.ServiceAccount{}
			obj = sa
		case "networking.k8s.io/v1 NetworkPolicy":
			np := &networkingv1.NetworkPolicy{}
			m.policies = append(m.policies, np)
			obj = np
		case "rbac.authorization.k8s.io/v1 Role":
			m.role = &rbacv1.Role{}
			obj = m.role
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			m.roleBinding = &rbacv1.RoleBinding{}
			obj = m.roleBinding
		default:
			t.Fatalf("document %d: unexpected %s %s", i, head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, head.Kind, err)
		}
		if sa != nil {
			m.accounts[sa.Namespace+"/"+sa.Name] = sa
		}
	}
	return m
}

func TestManifestMatchesTheSandbox(t *testing.T) {
	m := loadManifest(t)
	_, job := testJob(t, ci.Spec{})
	podLabels := labels.Set(job.Spec.Template.Labels)

	if m.namespace == nil || m.namespace.Name != "ticketflow-ci" || m.namespace.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %+v: the default TICKETFLOW_CI_K8S_NAMESPACE, enforcing restricted", m.namespace)
	}
	runner := m.accounts["ticketflow-ci/ticketflow-ci-runner"]
	if runner == nil || !isFalse(runner.AutomountServiceAccountToken) {
		t.Errorf("runner service account %+v: the default TICKETFLOW_CI_K8S_SERVICE_ACCOUNT, no token", runner)
	}
	var denyAll *networkingv1.NetworkPolicy
	for _, np := range m.policies {
		if np.Namespace != "ticketflow-ci" {
			t.Errorf("NetworkPolicy %s in namespace %q", np.Name, np.Namespace)
		}
		if len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 &&
			slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			denyAll = np
		}
		if len(np.Spec.Ingress) != 0 {
			t.Errorf("NetworkPolicy %s allows ingress to CI pods", np.Name)
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if sel.Empty() {
			t.Errorf("NetworkPolicy %s selects every pod", np.Name)
		}
		if len(np.Spec.Egress) > 0 && sel.Matches(podLabels) {
			t.Errorf("NetworkPolicy %s lets a run without network out", np.Name)
		}
	}
	if denyAll == nil {
		t.Fatal("no deny-all (ingress and egress) NetworkPolicy")
	}
	sel, _ := metav1.LabelSelectorAsSelector(&denyAll.Spec.PodSelector)
	if !sel.Matches(podLabels) {
		t.Errorf("the deny-all policy's selector %s does not select the CI pods %v", sel, podLabels)
	}
	_, netJob := testJob(t, ci.Spec{Network: true})
	if !sel.Matches(labels.Set(netJob.Spec.Template.Labels)) {
		t.Error("the deny-all policy must select the runs with network too (their egress is added on top)")
	}

	if m.role == nil || m.role.Namespace != "ticketflow-ci" {
		t.Fatalf("role %+v", m.role)
	}
	granted := map[string]bool{}
	for _, r := range m.role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if v == "*" || res == "*" || g == "*" {
						t.Errorf("wildcard in rule %+v", r)
					}
					granted[g+"/"+res+":"+v] = true
				}
			}
		}
	}
	// What Run and AttachUploader call.
	for _, need := range []string{
		"batch/jobs:create", "batch/jobs:get", "batch/jobs:list", "batch/jobs:watch", "batch/jobs:delete",
		"/pods:get", "/pods:list", "/pods:watch", "/pods/log:get", "/pods/attach:create",
	} {
		if !granted[need] {
			t.Errorf("role lacks %s", need)
		}
	}
	for g := range granted {
		if strings.HasPrefix(g, "/pods:") && !strings.HasSuffix(g, ":get") && !strings.HasSuffix(g, ":list") && !strings.HasSuffix(g, ":watch") {
			t.Errorf("the processor may only read pods, not %s", g)
		}
		if strings.Contains(g, "secrets") || strings.Contains(g, "pods/exec") {
			t.Errorf("role grants %s", g)
		}
	}
	rb := m.roleBinding
	if rb == nil || rb.Namespace != "ticketflow-ci" || rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != m.role.Name || len(rb.Subjects) != 1 {
		t.Fatalf("role binding %+v", rb)
	}
	subj := rb.Subjects[0]
	// The processor's own account lives with it (processor-rbac.yaml), never the runner's.
	if subj.Kind != "ServiceAccount" || subj.Name != "processor" || subj.Namespace != "ticketflow" {
		t.Errorf("role binding subject %+v: the processor's service account", subj)
	}
	if len(m.accounts) != 1 {
		t.Errorf("service accounts %v: only the runner belongs here", m.accounts)
	}
}
