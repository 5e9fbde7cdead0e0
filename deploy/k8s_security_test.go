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

// checkAPIAccess checks a pod that talks to the API server: its own ServiceAccount, bound to a
// Role of only what the CI sandbox needs.
func checkAPIAccess(t *testing.T, c *cluster, id string, pod corev1.PodSpec) {
	t.Helper()
	sa := pod.ServiceAccountName
	if sa == "" || sa == "default" || c.accounts[sa] == nil {
		t.Errorf("%s: talks to the API server, so it needs its own ServiceAccount, got %q", id, sa)
		return
	}
	allowed := map[string][]string{"batch/jobs": {"create", "delete", "get", "list", "watch"}, "/pods": {"get", "list", "watch"}, "/pods/log": {"get"}}
	bound := false
	for _, b := range c.bindings {
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == "ServiceAccount" && s.Name == sa }) {
			continue
		}
		bound = true
		role := c.roles[b.RoleRef.Name]
		if b.RoleRef.Kind != "Role" || role == nil {
			t.Errorf("%s: RoleBinding %s must bind a namespaced Role of this build", id, b.Name)
			continue
		}
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					ok := allowed[g+"/"+res]
					for _, v := range r.Verbs {
						if !slices.Contains(ok, v) {
							t.Errorf("Role %s grants %s on %s/%s: more than the CI sandbox needs", role.Name, v, g, res)
						}
					}
				}
			}
		}
	}
	if !bound {
		t.Errorf("%s: ServiceAccount %s is bound to no Role", id, sa)
	}
}

// --- NetworkPolicy evaluation -------------------------------------------------------------

// peer is a pod for the policy checks: its namespace (and that namespace's labels) and labels.
type peer struct {
	name      string
	namespace string
	labels    map[string]string
}

func (p peer) nsLabels() map[string]string {
	return map[string]string{"kubernetes.io/metadata.name": p.namespace}
}

func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(set))
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
			if !selects(t, np.NamespaceSelector, p.nsLabels()) {
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
		if ns == from.namespace && hasType(p, networkingv1.PolicyTypeEgress) && selects(t, &p.Spec.PodSelector, from.labels) {
			egressIsolated = true
			for _, r := range p.Spec.Egress {
				if portMatches(r.Ports, port, proto) && peerMatches(t, r.To, ns, to) {
					egressOK = true
				}
			}
		}
		if ns == to.namespace && hasType(p, networkingv1.PolicyTypeIngress) && selects(t, &p.Spec.PodSelector, to.labels) {
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
			return peer{name, namespace, w.template.Labels}
		}
	}
	t.Fatalf("no workload %s", name)
	return peer{}
}

// TestK8sNetworkPolicies checks who can reach whom in the dev overlay (base + infra).
func TestK8sNetworkPolicies(t *testing.T) {
	c := kustomizeBuild(t, "overlays/dev")
	if p, ok := c.policies["default-deny"]; !ok || len(p.Spec.PodSelector.MatchLabels)+len(p.Spec.PodSelector.MatchExpressions) != 0 ||
		!hasType(p, networkingv1.PolicyTypeIngress) || !hasType(p, networkingv1.PolicyTypeEgress) || len(p.Spec.Ingress)+len(p.Spec.Egress) != 0 {
		t.Fatal("want a default-deny NetworkPolicy: every pod, Ingress and Egress, no rule")
	}
	pods := map[string]peer{}
	for _, name := range []string{"command", "notifier", "processor", "projector", "web", "kafka", "postgres", "migrate"} {
		pods[name] = podOf(t, c, name)
	}
	// A CI sandbox pod as the kube-sandbox code creates it; labelled like the processor too, to
	// make sure no policy for the processor leaks to it.
	pods["sandbox"] = peer{"sandbox", namespace, map[string]string{"app.kubernetes.io/component": "ci-sandbox", "app.kubernetes.io/name": "processor", "app.kubernetes.io/part-of": "ticketflow"}}
	pods["ingress"] = peer{"ingress", "ingress-nginx", map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}
	pods["stranger"] = peer{"stranger", "default", map[string]string{"app": "x"}}
	dns := peer{"dns", "kube-system", map[string]string{"k8s-app": "kube-dns"}}

	type conn struct {
		from, to string
		port     int32
	}
	want := map[conn]bool{}
	clientsOf := map[string][]string{
		"kafka:9092":    {"command", "notifier", "processor", "projector"},
		"postgres:5432": {"command", "notifier", "processor", "projector", "migrate"},
		"web:8080":      {"ingress"},
		"command:8000":  {"web", "ingress"},
		"notifier:8000": {"web", "ingress"},
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
	// DNS where names are resolved; none for the sandbox (nor for PostgreSQL, which resolves none).
	for name, p := range pods {
		if p.namespace != namespace {
			continue
		}
		need := name != "sandbox" && name != "postgres"
		if got := allowed(t, c.policies, p, dns, 53, corev1.ProtocolUDP); got != need {
			t.Errorf("%s: DNS egress %v, want %v", name, got, need)
		}
	}
	// The sandbox reaches nothing and nothing reaches it, on any port, from any pod.
	for name, p := range pods {
		for _, port := range []int32{22, 53, 80, 443, 5432, 8000, 8080, 9092, 9093} {
			if name != "sandbox" && allowed(t, c.policies, pods["sandbox"], p, port, corev1.ProtocolTCP) {
				t.Errorf("sandbox can reach %s:%d", name, port)
			}
			if name != "sandbox" && allowed(t, c.policies, p, pods["sandbox"], port, corev1.ProtocolTCP) {
				t.Errorf("%s can reach the sandbox on %d", name, port)
			}
		}
	}
	// No policy selecting the sandbox has an ipBlock (outside) egress.
	for _, p := range c.policies {
		if !selects(t, &p.Spec.PodSelector, pods["sandbox"].labels) {
			continue
		}
		if len(p.Spec.Egress) > 0 || len(p.Spec.Ingress) > 0 {
			t.Errorf("NetworkPolicy %s gives CI sandbox pods rules %+v %+v", p.Name, p.Spec.Ingress, p.Spec.Egress)
		}
	}
	// Only the processor leaves the cluster (git, LLM APIs, the API server), never to link-local.
	for _, p := range c.policies {
		for _, r := range p.Spec.Egress {
			for _, to := range r.To {
				if to.IPBlock == nil {
					continue
				}
				if !selects(t, &p.Spec.PodSelector, pods["processor"].labels) {
					t.Errorf("NetworkPolicy %s: ipBlock egress for pods other than the processor", p.Name)
				}
				for _, other := range []string{"command", "notifier", "projector", "web", "kafka", "postgres", "migrate"} {
					if selects(t, &p.Spec.PodSelector, pods[other].labels) {
						t.Errorf("NetworkPolicy %s lets %s out of the cluster", p.Name, other)
					}
				}
				if !slices.Contains(to.IPBlock.Except, "169.254.0.0/16") {
					t.Errorf("NetworkPolicy %s: ipBlock %s must except link-local (cloud metadata)", p.Name, to.IPBlock.CIDR)
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
