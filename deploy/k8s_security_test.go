package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// devSecrets are what generate-secrets.sh would write for this test run.
var devSecrets = func() map[string]string {
	out := map[string]string{}
	for _, name := range []string{"jwt-secret", "db-owner", "db-command", "db-processor", "db-projector", "db-notifier"} {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		out[name] = hex.EncodeToString(b)
	}
	return out
}()

// devOverlayFS copies deploy/k8s and deploy/postgres into memory and adds generated secrets.
func devOverlayFS(t *testing.T) (filesys.FileSystem, string) {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	const root = "/deploy"
	for _, dir := range []string{"k8s", "postgres"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if strings.Contains(filepath.ToSlash(path), "overlays/dev/secrets/") {
				return nil // an operator's real dev secrets: not the test's
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return mem.WriteFile(filepath.Join(root, path), raw)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, v := range devSecrets {
		if err := mem.WriteFile(filepath.Join(root, "k8s", "overlays", "dev", "secrets", name), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return mem, root
}

// addTemplateSecrets adds base/secret.yaml's Secrets to a build, as the operator creates them out
// of band, so that references to them are checked.
func addTemplateSecrets(t *testing.T, c *cluster) {
	t.Helper()
	for _, s := range templateSecrets(t) {
		c.secrets[s.Name] = s
	}
}

func templateSecrets(t *testing.T) []*corev1.Secret {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("k8s", "base", "secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*corev1.Secret
	for i, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(raw), -1) {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("secret.yaml document %d: %v", i, err)
		}
		out = append(out, strictDecode[corev1.Secret](t, "secret.yaml", j))
	}
	return out
}

// TestK8sSecretTemplate checks the template: it is not applied, names every Secret the workloads
// read, and holds only values the services refuse.
func TestK8sSecretTemplate(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("k8s", "base", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*-\s*secret\.yaml\s*$`).Match(raw) {
		t.Error("base/kustomization.yaml applies secret.yaml: a template must never overwrite the real Secrets")
	}
	want := []string{"ticketflow-db-command", "ticketflow-db-notifier", "ticketflow-db-owner", "ticketflow-db-processor", "ticketflow-db-projector", "ticketflow-secrets"}
	var got []string
	for _, s := range templateSecrets(t) {
		got = append(got, s.Name)
		if s.Annotations["ticketflow.dev/placeholder"] != "true" {
			t.Errorf("template Secret %s is not annotated as a placeholder", s.Name)
		}
	}
	if !slices.Equal(sorted(got), want) {
		t.Errorf("template Secrets %v, want %v", sorted(got), want)
	}
	// Every secretKeyRef of the builds names a Secret of the template (so the documentation of
	// what to create is complete).
	for _, dir := range []string{"base", "infra"} {
		c := kustomizeBuild(t, dir)
		for _, w := range c.workloads() {
			for _, ctr := range append(slices.Clone(w.template.Spec.InitContainers), w.template.Spec.Containers...) {
				for _, e := range ctr.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !slices.Contains(want, e.ValueFrom.SecretKeyRef.Name) {
						t.Errorf("%s %s/%s reads Secret %s, which the template does not document", dir, w.name, ctr.Name, e.ValueFrom.SecretKeyRef.Name)
					}
				}
			}
		}
	}
}

func mapKeys[V any](m map[string]V) []string { return sorted(slices.Collect(maps.Keys(m))) }

func envFrom(ctr corev1.Container, name string) *corev1.SecretKeySelector {
	for _, e := range ctr.Env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// checkServiceDatabase checks that a service connects as its own role, with the password from
// its own Secret, and reads no other database credential.
func checkServiceDatabase(t *testing.T, name string, ctr corev1.Container) {
	t.Helper()
	want := "postgres://" + dbRoles[name].role + ":$(DATABASE_PASSWORD)@$(DATABASE_ADDR)/$(DATABASE_NAME)?$(DATABASE_OPTIONS)"
	if got := envValue(ctr, "DATABASE_URL"); got != want {
		t.Errorf("%s: DATABASE_URL %q, want %q", name, got, want)
	}
	if ref := envFrom(ctr, "DATABASE_PASSWORD"); ref == nil || ref.Name != "ticketflow-db-"+name || ref.Key != "password" {
		t.Errorf("%s: DATABASE_PASSWORD must come from its own Secret ticketflow-db-%s", name, name)
	}
	for _, e := range ctr.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && strings.HasPrefix(e.ValueFrom.SecretKeyRef.Name, "ticketflow-db-") && e.ValueFrom.SecretKeyRef.Name != "ticketflow-db-"+name {
			t.Errorf("%s reads another database credential: %s", name, e.ValueFrom.SecretKeyRef.Name)
		}
	}
}

// checkReplicas checks the multi-instance shape compose runs too.
func checkReplicas(t *testing.T, c *cluster) {
	t.Helper()
	for svc, n := range replicas {
		if h := findHPA(c, svc); h != nil {
			if h.Spec.MinReplicas == nil || int(*h.Spec.MinReplicas) != n {
				t.Errorf("HPA %s: minReplicas %s, want %d", h.Name, ptrString(h.Spec.MinReplicas), n)
			}
			continue
		}
		d := c.deployments[svc]
		if d == nil || d.Spec.Replicas == nil || int(*d.Spec.Replicas) != n {
			t.Errorf("%s: replicas, want %d", svc, n)
		}
	}
	if d := c.deployments["processor"]; d != nil {
		if v := configMap(t, c, "ticketflow-config").Data["TICKETFLOW_CI_SANDBOX"]; v != "kubernetes" || envFromConfig(d.Spec.Template.Spec.Containers[0], "TICKETFLOW_CI_SANDBOX") != "TICKETFLOW_CI_SANDBOX" {
			t.Errorf("processor: TICKETFLOW_CI_SANDBOX %q, want kubernetes (a Job per CI run; bwrap would need unconfined seccomp)", v)
		}
	}
	for _, svc := range []string{"command", "notifier"} {
		if d := c.deployments[svc]; d != nil && envFromConfig(d.Spec.Template.Spec.Containers[0], "TICKETFLOW_TRUSTED_PROXIES") == "" {
			t.Errorf("%s: no TICKETFLOW_TRUSTED_PROXIES", svc)
		}
	}
}

func envFromConfig(ctr corev1.Container, name string) string {
	for _, e := range ctr.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
			return e.ValueFrom.ConfigMapKeyRef.Key
		}
	}
	return ""
}

// checkMigrateJob checks the migration step: migrations then roles.sql, as the owner.
func checkMigrateJob(t *testing.T, c *cluster, tag string) {
	t.Helper()
	j, ok := c.jobs["ticketflow-migrate"]
	if !ok {
		t.Fatal("no Job ticketflow-migrate")
	}
	pod := j.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyOnFailure && pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("Job restartPolicy %q", pod.RestartPolicy)
	}
	if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
		t.Fatalf("Job: want init container migrate then container roles")
	}
	mig, roles := pod.InitContainers[0], pod.Containers[0]
	if mig.Image != "ticketflow/ticketflow:"+tag || !slices.Equal(mig.Args, []string{"migrate"}) {
		t.Errorf("migrate runs %s %v", mig.Image, mig.Args)
	}
	owner := "postgres://$(DATABASE_OWNER):$(DATABASE_OWNER_PASSWORD)@$(DATABASE_ADDR)/$(DATABASE_NAME)?$(DATABASE_OPTIONS)"
	for _, ctr := range []corev1.Container{mig, roles} {
		if envValue(ctr, "DATABASE_URL") != owner {
			t.Errorf("Job/%s: DATABASE_URL %q, want the owner's %q", ctr.Name, envValue(ctr, "DATABASE_URL"), owner)
		}
		if ref := envFrom(ctr, "DATABASE_OWNER_PASSWORD"); ref == nil || ref.Name != "ticketflow-db-owner" {
			t.Errorf("Job/%s: the owner password must come from ticketflow-db-owner", ctr.Name)
		}
	}
	if !strings.HasPrefix(roles.Image, "postgres:15") || !slices.Equal(roles.Command, []string{"psql"}) {
		t.Errorf("roles runs %s %v, want psql from postgres:15", roles.Image, roles.Command)
	}
	args := strings.Join(roles.Args, " ")
	if !strings.Contains(args, "ON_ERROR_STOP=1") || !strings.Contains(args, "-d $(DATABASE_URL)") || !strings.Contains(args, "-f /sql/roles.sql") {
		t.Errorf("roles args %q", args)
	}
	for svc, r := range dbRoles {
		if ref := envFrom(roles, r.passwordVar); ref == nil || ref.Name != "ticketflow-db-"+svc || ref.Key != "password" {
			t.Errorf("roles: %s must come from ticketflow-db-%s", r.passwordVar, svc)
		}
	}
	// roles.sql arrives from deploy/postgres through a generated ConfigMap.
	var cmName string
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && slices.ContainsFunc(roles.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == v.Name && m.MountPath == "/sql" }) {
			cmName = v.ConfigMap.Name
		}
	}
	cm, ok := c.configMaps[cmName]
	want, err := os.ReadFile(rolesSQL)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || cm.Data["roles.sql"] != string(want) {
		t.Errorf("Job mounts ConfigMap %q at /sql; want deploy/postgres/roles.sql in it", cmName)
	}
	if j.Spec.TTLSecondsAfterFinished == nil {
		t.Error("Job: set ttlSecondsAfterFinished, so the next version's Job can be applied")
	}
}

// checkAPIAccess checks a pod that talks to the API server: its own ServiceAccount, whose
// RoleBindings (their subjects naming its namespace explicitly) bind namespaced Roles that grant
// exactly what the CI sandbox needs, in the sandbox namespace and nowhere else.
func checkAPIAccess(t *testing.T, c *cluster, id string, pod corev1.PodSpec) {
	t.Helper()
	sa := pod.ServiceAccountName
	if acct := c.accounts[sa]; sa == "" || sa == "default" || acct == nil || acct.Namespace != namespace {
		t.Errorf("%s: talks to the API server, so it needs its own ServiceAccount in %s, got %q", id, namespace, sa)
		return
	}
	grants := accountGrants(t, c, namespace, sa)
	if len(grants) == 0 {
		t.Errorf("%s: ServiceAccount %s is bound to no Role", id, sa)
	}
	for ns, rules := range grants {
		if ns != sandboxNamespace {
			t.Errorf("%s: ServiceAccount %s has rights in namespace %s (%v); only %s is the CI sandbox's", id, sa, ns, rules, sandboxNamespace)
			continue
		}
		for res, verbs := range rules {
			for _, v := range verbs {
				if !slices.Contains(sandboxLauncherGrants[res], v) {
					t.Errorf("%s: %s may %s %s in %s: more than the CI sandbox needs", id, sa, v, res, ns)
				}
			}
		}
		for res, verbs := range sandboxLauncherGrants {
			for _, v := range verbs {
				if !slices.Contains(rules[res], v) {
					t.Errorf("%s: %s may not %s %s in %s: the kubernetes sandbox needs it", id, sa, v, res, ns)
				}
			}
		}
	}
	if !slices.Contains(grants[sandboxNamespace]["batch/jobs"], "create") {
		t.Errorf("%s: %s cannot create Jobs in %s", id, sa, sandboxNamespace)
	}
}

// accountGrants is what ServiceAccount ns/sa may do, namespace by namespace: resource
// ("group/resource") to verbs, through every RoleBinding of the build that names it.
func accountGrants(t *testing.T, c *cluster, ns, sa string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	for _, b := range c.bindings {
		names := false
		for _, s := range b.Subjects {
			if s.Kind != rbacv1.ServiceAccountKind {
				continue
			}
			// An empty subject namespace means the binding's own: the manifests spell it out
			// (the NamespaceTransformer leaves subjects alone), so that a binding in ticketflow-ci
			// cannot silently name an account of ticketflow-ci instead of ticketflow's.
			if s.Namespace == "" {
				t.Errorf("RoleBinding %s/%s: ServiceAccount subject %s names no namespace", b.Namespace, b.Name, s.Name)
			}
			if s.Name == sa && s.Namespace == ns {
				names = true
			}
		}
		if !names {
			continue
		}
		role := c.roles[b.RoleRef.Name]
		if b.RoleRef.Kind != "Role" || b.RoleRef.APIGroup != rbacv1.GroupName || role == nil || role.Namespace != b.Namespace {
			t.Errorf("RoleBinding %s/%s must bind a Role of its own namespace in this build, got %+v", b.Namespace, b.Name, b.RoleRef)
			continue
		}
		if out[b.Namespace] == nil {
			out[b.Namespace] = map[string][]string{}
		}
		for _, r := range role.Rules {
			if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("Role %s/%s: resourceNames / nonResourceURLs are not expected", role.Namespace, role.Name)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					out[b.Namespace][g+"/"+res] = append(out[b.Namespace][g+"/"+res], r.Verbs...)
				}
			}
		}
	}
	return out
}

// checkSandbox checks the CI sandbox's namespace: restricted Pod Security, a runner account
// with no rights and no token, the processor pointed at it.
func checkSandbox(t *testing.T, c *cluster) {
	t.Helper()
	for _, name := range []string{namespace, sandboxNamespace} {
		ns, ok := c.namespaces[name]
		if !ok {
			t.Errorf("no Namespace %s", name)
			continue
		}
		if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("Namespace %s: Pod Security enforce %q, want restricted", name, ns.Labels["pod-security.kubernetes.io/enforce"])
		}
	}
	d := c.deployments["processor"]
	if d == nil {
		t.Fatal("no Deployment processor")
	}
	main := d.Spec.Template.Spec.Containers[0]
	if got := envValue(main, "TICKETFLOW_CI_K8S_NAMESPACE"); got != sandboxNamespace {
		t.Errorf("processor: TICKETFLOW_CI_K8S_NAMESPACE %q, want %s (where ci-sandbox.yaml grants it the Jobs)", got, sandboxNamespace)
	}
	runner := envValue(main, "TICKETFLOW_CI_K8S_SERVICE_ACCOUNT")
	if runner == "" {
		runner = "ticketflow-ci-runner" // kubesandbox.Config's default
	}
	acct := c.accounts[runner]
	if acct == nil || acct.Namespace != sandboxNamespace {
		t.Fatalf("no ServiceAccount %s in %s for the CI pods", runner, sandboxNamespace)
	}
	if acct.AutomountServiceAccountToken == nil || *acct.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s/%s: disable automountServiceAccountToken", acct.Namespace, runner)
	}
	if g := accountGrants(t, c, sandboxNamespace, runner); len(g) != 0 {
		t.Errorf("ServiceAccount %s/%s runs untrusted code, yet is granted %v", sandboxNamespace, runner, g)
	}
	// A Job in the sandbox namespace can only mount what is there: no Secret, no ConfigMap, and
	// no account but the runner.
	for _, m := range []map[string]string{objectNamespaces(c.secrets), objectNamespaces(c.configMaps), objectNamespaces(c.accounts)} {
		for name, ns := range m {
			if ns == sandboxNamespace && name != runner {
				t.Errorf("%s is in the CI sandbox namespace, within reach of every CI Job", name)
			}
		}
	}
}

func objectNamespaces[P interface{ GetNamespace() string }](m map[string]P) map[string]string {
	out := map[string]string{}
	for name, o := range m {
		out[name] = o.GetNamespace()
	}
	return out
}

// --- NetworkPolicy evaluation -------------------------------------------------------------

// peer is a pod for the policy checks: its namespace (and that namespace's labels) and labels.
type peer struct {
	name      string
	namespace string
	nsLabels  map[string]string
	labels    map[string]string
}

// newPeer is a pod of namespace ns; a namespace of the build carries its manifest's labels too
// (a namespaceSelector sees them), every one its kubernetes.io/metadata.name.
func newPeer(c *cluster, name, ns string, podLabels map[string]string) peer {
	nsLabels := map[string]string{}
	if n := c.namespaces[ns]; n != nil {
		maps.Copy(nsLabels, n.Labels)
	}
	nsLabels["kubernetes.io/metadata.name"] = ns
	return peer{name, ns, nsLabels, podLabels}
}

func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(set))
}

// appliesTo reports whether policy p selects pod q (same namespace, matching pod selector).
func appliesTo(t *testing.T, p *networkingv1.NetworkPolicy, q peer) bool {
	t.Helper()
	return p.Namespace == q.namespace && selects(t, &p.Spec.PodSelector, q.labels)
}

func hasType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	return slices.Contains(p.Spec.PolicyTypes, typ)
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp == proto && (p.Port == nil || p.Port.IntValue() == int(port)) {
			return true
		}
	}
	return false
}

// peerMatches reports whether a rule's peer list admits p, seen from a policy in namespace ns.
func peerMatches(t *testing.T, peers []networkingv1.NetworkPolicyPeer, ns string, p peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, np := range peers {
		switch {
		case np.IPBlock != nil:
			continue // pod-to-pod checks only; ipBlocks are checked separately
		case np.NamespaceSelector != nil:
			if !selects(t, np.NamespaceSelector, p.nsLabels) {
				continue
			}
			if np.PodSelector == nil || selects(t, np.PodSelector, p.labels) {
				return true
			}
		case np.PodSelector != nil:
			if p.namespace == ns && selects(t, np.PodSelector, p.labels) {
				return true
			}
		}
	}
	return false
}

// allowed evaluates the policies like a CNI: a connection needs the source's egress and the
// destination's ingress to allow it, each either unrestricted (no policy of that type selects
// the pod) or allowed by some rule.
func allowed(t *testing.T, policies map[string]*networkingv1.NetworkPolicy, from, to peer, port int32, proto corev1.Protocol) bool {
	t.Helper()
	egressOK, egressIsolated := false, false
	ingressOK, ingressIsolated := false, false
	for _, p := range policies {
		ns := p.Namespace
		if hasType(p, networkingv1.PolicyTypeEgress) && appliesTo(t, p, from) {
			egressIsolated = true
			for _, r := range p.Spec.Egress {
				if portMatches(r.Ports, port, proto) && peerMatches(t, r.To, ns, to) {
					egressOK = true
				}
			}
		}
		if hasType(p, networkingv1.PolicyTypeIngress) && appliesTo(t, p, to) {
			ingressIsolated = true
			for _, r := range p.Spec.Ingress {
				if portMatches(r.Ports, port, proto) && peerMatches(t, r.From, ns, from) {
					ingressOK = true
				}
			}
		}
	}
	return (!egressIsolated || egressOK) && (!ingressIsolated || ingressOK)
}

// podOf is the pod a workload of the build runs, labels as its template says.
func podOf(t *testing.T, c *cluster, name string) peer {
	t.Helper()
	for _, w := range c.workloads() {
		if w.name == name || (w.kind == "Job" && w.template.Labels["app.kubernetes.io/name"] == name) {
			return newPeer(c, name, namespace, w.template.Labels)
		}
	}
	t.Fatalf("no workload %s", name)
	return peer{}
}

// sandboxPodLabels are the labels services/processor/ci/kubesandbox (job.go) gives a CI pod.
func sandboxPodLabels(network bool) map[string]string {
	l := map[string]string{
		"app.kubernetes.io/name":       "ticketflow-ci",
		"app.kubernetes.io/component":  "ci-sandbox",
		"app.kubernetes.io/managed-by": "ticketflow-processor",
		"ticketflow.io/ci-run":         "ci-0123456789abcdef",
		"ticketflow.io/ci-worktree":    "0123456789abcdef",
	}
	if network {
		l["ticketflow.io/ci-network"] = "egress"
	}
	return l
}

// privateV4 and privateV6 are what no address a CI pod may reach (the cluster's pods and
// services, loopback, link-local cloud metadata, carrier-grade NAT) when it is given the network.
var (
	privateV4 = []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"}
	privateV6 = []string{"::1/128", "fc00::/7", "fe80::/10"}
)

// TestK8sNetworkPolicies checks who can reach whom in the dev overlay (base + infra), the CI
// sandbox namespace included.
func TestK8sNetworkPolicies(t *testing.T) {
	c := kustomizeBuild(t, "overlays/dev")
	for _, name := range []string{"default-deny", "ci-sandbox-deny-all"} {
		p, ok := c.policies[name]
		if !ok || !hasType(p, networkingv1.PolicyTypeIngress) || !hasType(p, networkingv1.PolicyTypeEgress) || len(p.Spec.Ingress)+len(p.Spec.Egress) != 0 {
			t.Errorf("want a NetworkPolicy %s: Ingress and Egress, no rule", name)
		}
	}
	if p := c.policies["default-deny"]; p != nil && len(p.Spec.PodSelector.MatchLabels)+len(p.Spec.PodSelector.MatchExpressions) != 0 {
		t.Error("default-deny must select every pod of the namespace")
	}
	pods := map[string]peer{}
	for _, name := range []string{"command", "notifier", "processor", "projector", "web", "kafka", "postgres", "migrate"} {
		pods[name] = podOf(t, c, name)
	}
	// CI pods as the kube-sandbox code creates them, in their namespace: one without the network,
	// one whose repository is allowed it.
	pods["sandbox"] = newPeer(c, "sandbox", sandboxNamespace, sandboxPodLabels(false))
	pods["sandbox-net"] = newPeer(c, "sandbox-net", sandboxNamespace, sandboxPodLabels(true))
	// A pod labelled as a CI pod in the application namespace (a mistaken
	// TICKETFLOW_CI_K8S_NAMESPACE), labelled like the processor too, to make sure no policy for
	// the processor leaks to it.
	pods["stray-sandbox"] = newPeer(c, "stray-sandbox", namespace, map[string]string{"app.kubernetes.io/component": "ci-sandbox", "app.kubernetes.io/name": "processor", "app.kubernetes.io/part-of": "ticketflow"})
	pods["ingress"] = newPeer(c, "ingress", "ingress-nginx", map[string]string{"app.kubernetes.io/name": "ingress-nginx"})
	pods["stranger"] = newPeer(c, "stranger", "default", map[string]string{"app": "x"})
	pods["monitoring"] = newPeer(c, "prometheus", "monitoring", map[string]string{"app": "prometheus"})
	dns := newPeer(c, "dns", "kube-system", map[string]string{"k8s-app": "kube-dns"})
	sandboxes := []string{"sandbox", "sandbox-net", "stray-sandbox"}

	type conn struct {
		from, to string
		port     int32
	}
	want := map[conn]bool{}
	clientsOf := map[string][]string{
		"kafka:9092":    {"command", "notifier", "processor", "projector"},
		"postgres:5432": {"command", "notifier", "processor", "projector", "migrate"},
		"web:8080":      {"ingress"},
		"command:8000":  {"web", "ingress", "monitoring"},
		"notifier:8000": {"web", "ingress", "monitoring"},
	}
	for target, clients := range clientsOf {
		to, portStr, _ := strings.Cut(target, ":")
		port := int32(atoi(t, portStr))
		for from := range pods {
			want[conn{from, to, port}] = slices.Contains(clients, from)
		}
	}
	for k, ok := range want {
		if k.from == k.to {
			continue
		}
		if got := allowed(t, c.policies, pods[k.from], pods[k.to], k.port, corev1.ProtocolTCP); got != ok {
			verb := map[bool]string{true: "can", false: "cannot"}
			t.Errorf("%s %s reach %s:%d; want it %s", k.from, verb[got], k.to, k.port, verb[ok])
		}
	}
	// DNS where names are resolved: not for PostgreSQL (it resolves none) nor a CI pod without
	// the network.
	for name, p := range pods {
		if p.namespace != namespace && p.namespace != sandboxNamespace {
			continue
		}
		need := !slices.Contains([]string{"sandbox", "stray-sandbox", "postgres"}, name)
		if got := allowed(t, c.policies, p, dns, 53, corev1.ProtocolUDP); got != need {
			t.Errorf("%s: DNS egress %v, want %v", name, got, need)
		}
	}
	// A CI pod reaches no pod and no pod reaches it, on any port, from any namespace (the
	// networked one: kube-dns only).
	for _, sb := range sandboxes {
		for name, p := range pods {
			if name == sb {
				continue
			}
			for _, port := range []int32{22, 53, 80, 443, 5432, 6443, 8000, 8080, 9092, 9093} {
				if allowed(t, c.policies, pods[sb], p, port, corev1.ProtocolTCP) {
					t.Errorf("%s can reach %s:%d", sb, name, port)
				}
				if allowed(t, c.policies, p, pods[sb], port, corev1.ProtocolTCP) {
					t.Errorf("%s can reach %s on %d", name, sb, port)
				}
			}
		}
		for _, port := range []int32{80, 443, 8080, 9153} {
			if allowed(t, c.policies, pods[sb], dns, port, corev1.ProtocolTCP) {
				t.Errorf("%s can reach kube-dns:%d", sb, port)
			}
		}
	}
	// The policies that select a CI pod: none with an ingress rule; egress rules only for the
	// networked one, and those reach kube-dns or public addresses only.
	for _, p := range c.policies {
		for _, sb := range sandboxes {
			if !appliesTo(t, p, pods[sb]) {
				continue
			}
			if len(p.Spec.Ingress) > 0 {
				t.Errorf("NetworkPolicy %s/%s lets traffic into %s: %+v", p.Namespace, p.Name, sb, p.Spec.Ingress)
			}
			if sb != "sandbox-net" && len(p.Spec.Egress) > 0 {
				t.Errorf("NetworkPolicy %s/%s lets %s out: %+v", p.Namespace, p.Name, sb, p.Spec.Egress)
			}
		}
	}
	// Only the processor and a networked CI pod leave the cluster (ipBlock egress): the processor
	// never to link-local (cloud metadata), a CI pod never to a private address.
	for _, p := range c.policies {
		for _, r := range p.Spec.Egress {
			for _, to := range r.To {
				if to.IPBlock == nil {
					continue
				}
				id := p.Namespace + "/" + p.Name + " ipBlock " + to.IPBlock.CIDR
				for name, q := range pods {
					if name != "processor" && name != "sandbox-net" && appliesTo(t, p, q) {
						t.Errorf("NetworkPolicy %s lets %s out of the cluster", id, name)
					}
				}
				switch {
				case appliesTo(t, p, pods["processor"]):
					if !slices.Contains(to.IPBlock.Except, "169.254.0.0/16") {
						t.Errorf("NetworkPolicy %s must except link-local (cloud metadata)", id)
					}
				case appliesTo(t, p, pods["sandbox-net"]):
					private := privateV4
					if strings.Contains(to.IPBlock.CIDR, ":") {
						private = privateV6
					}
					for _, cidr := range private {
						if !slices.Contains(to.IPBlock.Except, cidr) {
							t.Errorf("NetworkPolicy %s lets a CI pod reach %s", id, cidr)
						}
					}
				default:
					t.Errorf("NetworkPolicy %s: ipBlock egress for pods other than the processor and networked CI pods", id)
				}
			}
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
