package deploy

import (
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const namespace = "ticketflow"

// sandboxNamespace holds the CI Jobs (TICKETFLOW_CI_K8S_NAMESPACE): apart from the application,
// so that a Job the processor creates can neither mount its Secrets nor run as its accounts.
const sandboxNamespace = "ticketflow-ci"

// sandboxObjects are the objects of k8s/base/ci-sandbox.yaml, the only ones outside namespace.
var sandboxObjects = []string{
	"ServiceAccount/ticketflow-ci-runner",
	"NetworkPolicy/ci-sandbox-deny-all",
	"NetworkPolicy/ci-sandbox-public-egress",
	"Role/ci-sandbox-launcher",
	"RoleBinding/ci-sandbox-launcher",
}

// appDeployments are the application's Deployments; each runs image ticketflow/<name>.
var appDeployments = []string{"command", "notifier", "processor", "projector", "web"}

// usesDatabase are the Deployments that connect to PostgreSQL, each with its own role.
var usesDatabase = []string{"command", "notifier", "processor", "projector"}

// usesAPIServer are the workloads that talk to the Kubernetes API (with their reason): every
// other pod runs without a service account token.
var usesAPIServer = map[string]string{
	"processor": "TICKETFLOW_CI_SANDBOX=kubernetes creates a Job per CI run and streams its log",
}

// sandboxLauncherGrants is what the processor needs in sandboxNamespace, exactly: create a run's
// Job and delete it (and a crashed run's leftover), follow its pod, upload the work tree through
// pods/attach (get: what WebSocket upgrades are authorized as on older API servers), read the log.
var sandboxLauncherGrants = map[string][]string{
	"batch/jobs":   {"create", "delete", "get", "list", "watch"},
	"/pods":        {"get", "list", "watch"},
	"/pods/log":    {"get"},
	"/pods/attach": {"create", "get"},
}

// writableRoot lists the containers allowed a writable root filesystem, with the reason.
var writableRoot = map[string]string{
	"kafka/kafka": "apache/kafka's entrypoint renders server.properties into /opt/kafka/config at start",
}

// cluster is one `kustomize build`, every object strictly decoded into its k8s.io/api type.
type cluster struct {
	namespaces   map[string]*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	ingresses    map[string]*networkingv1.Ingress
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	jobs         map[string]*batchv1.Job
	policies     map[string]*networkingv1.NetworkPolicy
	accounts     map[string]*corev1.ServiceAccount
	roles        map[string]*rbacv1.Role
	bindings     map[string]*rbacv1.RoleBinding
	monitors     map[string]*monitoringv1.ServiceMonitor
}

// workload is a Deployment or StatefulSet seen through what the checks need.
type workload struct {
	kind, name string
	replicas   *int32
	selector   *metav1.LabelSelector
	template   corev1.PodTemplateSpec
	claims     []string // volumeClaimTemplates
}

func (c *cluster) workloads() []workload {
	var out []workload
	for _, d := range c.deployments {
		out = append(out, workload{"Deployment", d.Name, d.Spec.Replicas, d.Spec.Selector, d.Spec.Template, nil})
	}
	for _, j := range c.jobs {
		out = append(out, workload{"Job", j.Name, j.Spec.Parallelism, j.Spec.Selector, j.Spec.Template, nil})
	}
	for _, s := range c.statefulSets {
		var claims []string
		for _, pvc := range s.Spec.VolumeClaimTemplates {
			claims = append(claims, pvc.Name)
		}
		out = append(out, workload{"StatefulSet", s.Name, s.Spec.Replicas, s.Spec.Selector, s.Spec.Template, claims})
	}
	slices.SortFunc(out, func(a, b workload) int { return strings.Compare(a.kind+a.name, b.kind+b.name) })
	return out
}

// kustomizeBuild runs `kustomize build deploy/k8s/<dir>` and strictly decodes its output. The
// dev overlay reads secrets generated on the operator's machine (never committed): the build runs
// on a copy of deploy/ with freshly generated ones, as generate-secrets.sh writes them.
func kustomizeBuild(t *testing.T, dir string) *cluster {
	t.Helper()
	fsys := filesys.MakeFsOnDisk()
	root := "."
	if dir == "overlays/dev" {
		fsys, root = devOverlayFS(t)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fsys, filepath.Join(root, "k8s", dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	c := &cluster{
		namespaces: map[string]*corev1.Namespace{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		ingresses: map[string]*networkingv1.Ingress{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, jobs: map[string]*batchv1.Job{},
		policies: map[string]*networkingv1.NetworkPolicy{}, accounts: map[string]*corev1.ServiceAccount{},
		roles: map[string]*rbacv1.Role{}, bindings: map[string]*rbacv1.RoleBinding{},
		monitors: map[string]*monitoringv1.ServiceMonitor{},
	}
	seen := map[string]bool{}
	for _, r := range m.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := r.GetApiVersion() + "/" + r.GetKind()
		id := gvk + " " + r.GetName()
		wantNS := namespace
		switch {
		case r.GetKind() == "Namespace":
			wantNS = "" // cluster-scoped
		case slices.Contains(sandboxObjects, r.GetKind()+"/"+r.GetName()):
			wantNS = sandboxNamespace
		}
		if r.GetNamespace() != wantNS {
			t.Errorf("%s: namespace %q, want %q", id, r.GetNamespace(), wantNS)
		}
		// The maps below are keyed by name: two objects of a kind with the same name (in two
		// namespaces) would hide one from the checks.
		if seen[gvk+" "+r.GetName()] {
			t.Errorf("%s appears twice (namespaces differ?); the checks key objects by name", id)
		}
		seen[gvk+" "+r.GetName()] = true
		switch gvk {
		case "v1/Namespace":
			c.namespaces[r.GetName()] = strictDecode[corev1.Namespace](t, id, raw)
		case "v1/ConfigMap":
			c.configMaps[r.GetName()] = strictDecode[corev1.ConfigMap](t, id, raw)
		case "v1/Secret":
			c.secrets[r.GetName()] = strictDecode[corev1.Secret](t, id, raw)
		case "v1/Service":
			c.services[r.GetName()] = strictDecode[corev1.Service](t, id, raw)
		case "apps/v1/Deployment":
			c.deployments[r.GetName()] = strictDecode[appsv1.Deployment](t, id, raw)
		case "apps/v1/StatefulSet":
			c.statefulSets[r.GetName()] = strictDecode[appsv1.StatefulSet](t, id, raw)
		case "networking.k8s.io/v1/Ingress":
			c.ingresses[r.GetName()] = strictDecode[networkingv1.Ingress](t, id, raw)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			c.hpas[r.GetName()] = strictDecode[autoscalingv2.HorizontalPodAutoscaler](t, id, raw)
		case "policy/v1/PodDisruptionBudget":
			c.pdbs[r.GetName()] = strictDecode[policyv1.PodDisruptionBudget](t, id, raw)
		case "batch/v1/Job":
			c.jobs[r.GetName()] = strictDecode[batchv1.Job](t, id, raw)
		case "networking.k8s.io/v1/NetworkPolicy":
			c.policies[r.GetName()] = strictDecode[networkingv1.NetworkPolicy](t, id, raw)
		case "v1/ServiceAccount":
			c.accounts[r.GetName()] = strictDecode[corev1.ServiceAccount](t, id, raw)
		case "rbac.authorization.k8s.io/v1/Role":
			c.roles[r.GetName()] = strictDecode[rbacv1.Role](t, id, raw)
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			c.bindings[r.GetName()] = strictDecode[rbacv1.RoleBinding](t, id, raw)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			c.monitors[r.GetName()] = strictDecode[monitoringv1.ServiceMonitor](t, id, raw)
		default:
			t.Errorf("%s: a kind these tests do not check; add it to kustomizeBuild", id)
		}
	}
	return c
}

// strictDecode decodes raw into a T, failing on any field T does not have (a typo, a field at
// the wrong level, a field of another API version).
func strictDecode[T any](t *testing.T, id string, raw []byte) *T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s does not decode strictly: %v", id, err)
	}
	return &v
}

func TestK8sBase(t *testing.T) {
	c := kustomizeBuild(t, "base")
	if len(c.secrets) != 0 {
		t.Errorf("base applies Secrets %v: they are created out of band (secret.yaml is a template)", mapKeys(c.secrets))
	}
	addTemplateSecrets(t, c)
	if len(c.statefulSets) != 0 {
		t.Error("base should not run Kafka or PostgreSQL (production uses managed ones; see ../infra)")
	}
	checkApp(t, c, "latest")
	checkSandbox(t, c)
	checkCommon(t, c)
}

func TestK8sInfra(t *testing.T) {
	c := kustomizeBuild(t, "infra")
	if len(c.secrets) != 0 {
		t.Errorf("infra applies Secrets %v: no password belongs in git", mapKeys(c.secrets))
	}
	addTemplateSecrets(t, c)
	for _, name := range []string{"kafka", "postgres"} {
		if _, ok := c.statefulSets[name]; !ok {
			t.Errorf("infra: no StatefulSet %s", name)
		}
	}
	checkKafka(t, c)
	checkCommon(t, c)
}

func TestK8sDevOverlay(t *testing.T) {
	c := kustomizeBuild(t, "overlays/dev")
	checkApp(t, c, "dev")
	checkSandbox(t, c)
	checkKafka(t, c)
	checkCommon(t, c)

	cfg := configMap(t, c, "ticketflow-config")
	if cfg.Data["TICKETFLOW_EXECUTOR"] != "simulated" {
		t.Errorf("dev executor %q, want simulated", cfg.Data["TICKETFLOW_EXECUTOR"])
	}
	// The in-cluster infrastructure is what the app points at.
	brokers := strings.Split(cfg.Data["KAFKA_BROKERS"], ",")
	for _, b := range brokers {
		checkServiceAddr(t, c, "KAFKA_BROKERS", b)
	}
	checkServiceAddr(t, c, "DATABASE_ADDR", cfg.Data["DATABASE_ADDR"])
	pg := c.statefulSets["postgres"].Spec.Template.Spec.Containers[0]
	if user := envValue(pg, "POSTGRES_USER"); cfg.Data["DATABASE_OWNER"] != user {
		t.Errorf("DATABASE_OWNER %q, postgres creates %q", cfg.Data["DATABASE_OWNER"], user)
	}
	if db := envValue(pg, "POSTGRES_DB"); cfg.Data["DATABASE_NAME"] != db {
		t.Errorf("DATABASE_NAME %q, postgres creates %q", cfg.Data["DATABASE_NAME"], db)
	}
	if ref := envFrom(pg, "POSTGRES_PASSWORD"); ref == nil || ref.Name != "ticketflow-db-owner" || ref.Key != "password" {
		t.Errorf("postgres: POSTGRES_PASSWORD must be the owner's (ticketflow-db-owner/password), got %+v", ref)
	}
	if cfg.Data["DATABASE_OPTIONS"] != "sslmode=disable" {
		t.Errorf("dev DATABASE_OPTIONS %q: the in-cluster PostgreSQL has no TLS", cfg.Data["DATABASE_OPTIONS"])
	}
	// Every secret is generated (random), none is a placeholder the services would refuse.
	if s := secretValue(t, c, "ticketflow-secrets", "TICKETFLOW_JWT_SECRET"); s != devSecrets["jwt-secret"] {
		t.Errorf("dev TICKETFLOW_JWT_SECRET is not the generated secrets/jwt-secret")
	}
	for _, name := range []string{"owner", "command", "processor", "projector", "notifier"} {
		if got := secretValue(t, c, "ticketflow-db-"+name, "password"); got != devSecrets["db-"+name] {
			t.Errorf("ticketflow-db-%s is not the generated secrets/db-%s", name, name)
		}
	}
	// The browser's origin is the Ingress host.
	for _, ing := range c.ingresses {
		for _, rule := range ing.Spec.Rules {
			origin := "http://" + rule.Host
			if rule.Host == "" || !slices.Contains(strings.Split(cfg.Data["TICKETFLOW_ALLOWED_ORIGINS"], ","), origin) {
				t.Errorf("Ingress %s host %q: origin %s is not in TICKETFLOW_ALLOWED_ORIGINS", ing.Name, rule.Host, origin)
			}
		}
	}
}

// checkApp checks the application objects: images, init containers, Services, Ingress, HPAs.
func checkApp(t *testing.T, c *cluster, tag string) {
	t.Helper()
	checkReplicas(t, c)
	checkMigrateJob(t, c, tag)
	for _, name := range appDeployments {
		d, ok := c.deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Errorf("%s: %d containers, want 1", name, len(pod.Containers))
			continue
		}
		if want := "ticketflow/" + name + ":" + tag; pod.Containers[0].Image != want {
			t.Errorf("%s: image %q, want %q", name, pod.Containers[0].Image, want)
		}
		if name == "web" {
			continue
		}
		if !slices.Contains(usesDatabase, name) {
			continue
		}
		// The migration is the Job's, as the owner: a service pod never holds that password.
		if len(pod.InitContainers) != 0 {
			t.Errorf("%s: init containers %v; migrations run in the ticketflow-migrate Job", name, pod.InitContainers)
		}
		main := pod.Containers[0]
		checkServiceDatabase(t, name, main)
		for _, v := range []string{"TICKETFLOW_HTTP_ADDR", "KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_PARTITIONS", "DATABASE_URL", "TICKETFLOW_LOG_FORMAT"} {
			if !slices.ContainsFunc(main.Env, func(e corev1.EnvVar) bool { return e.Name == v }) {
				t.Errorf("%s: no %s", name, v)
			}
		}
		// The service listens where its port and probes say.
		addr := envValue(main, "TICKETFLOW_HTTP_ADDR")
		_, port, err := net.SplitHostPort(addr)
		if err != nil || !slices.ContainsFunc(main.Ports, func(p corev1.ContainerPort) bool { return strconv.Itoa(int(p.ContainerPort)) == port }) {
			t.Errorf("%s: TICKETFLOW_HTTP_ADDR %q is not a declared container port", name, addr)
		}
		if host, _, _ := net.SplitHostPort(addr); host != "" && host != "0.0.0.0" {
			t.Errorf("%s: TICKETFLOW_HTTP_ADDR %q is unreachable by the kubelet's probes", name, addr)
		}
		if main.ReadinessProbe == nil || main.ReadinessProbe.HTTPGet == nil || main.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readiness probe should GET /readyz", name)
		}
		if main.LivenessProbe == nil || main.LivenessProbe.HTTPGet == nil || main.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe should GET /healthz", name)
		}
	}
	for _, name := range []string{"command", "notifier"} {
		for _, v := range []string{"TICKETFLOW_JWT_SECRET", "TICKETFLOW_ALLOWED_ORIGINS"} {
			if d := c.deployments[name]; d != nil && !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == v }) {
				t.Errorf("%s: no %s", name, v)
			}
		}
	}
	if d := c.deployments["processor"]; d != nil {
		main := d.Spec.Template.Spec.Containers[0]
		for _, v := range []string{"TICKETFLOW_EXECUTOR", "TICKETFLOW_WORK_DIR", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"} {
			if !slices.ContainsFunc(main.Env, func(e corev1.EnvVar) bool { return e.Name == v }) {
				t.Errorf("processor: no %s", v)
			}
		}
		workDir := configMap(t, c, "ticketflow-config").Data["TICKETFLOW_WORK_DIR"]
		if !slices.ContainsFunc(main.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == workDir }) {
			t.Errorf("processor: TICKETFLOW_WORK_DIR %q is not a mounted volume (the root filesystem is read-only)", workDir)
		}
	}
	if ex := configMap(t, c, "ticketflow-config").Data["TICKETFLOW_EXECUTOR"]; ex != "real" && ex != "simulated" {
		t.Errorf("TICKETFLOW_EXECUTOR %q, want real or simulated", ex)
	}

	// Consumer groups: replicas beyond the partition count would idle.
	partitions, err := strconv.Atoi(configMap(t, c, "ticketflow-config").Data["KAFKA_PARTITIONS"])
	if err != nil {
		t.Fatalf("KAFKA_PARTITIONS: %v", err)
	}
	for _, name := range []string{"processor", "projector"} {
		d := c.deployments[name]
		if d == nil {
			continue
		}
		if d.Spec.Replicas == nil || int(*d.Spec.Replicas) > partitions {
			t.Errorf("%s: replicas %s, want a fixed count up to KAFKA_PARTITIONS=%d", name, ptrString(d.Spec.Replicas), partitions)
		}
	}

	// HPAs for the horizontally scalable services; the HPA, not the Deployment, owns replicas.
	for _, name := range []string{"command", "notifier"} {
		h := findHPA(c, name)
		if h == nil {
			t.Errorf("no HorizontalPodAutoscaler for %s", name)
			continue
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA %s: replicas %s..%d", h.Name, ptrString(h.Spec.MinReplicas), h.Spec.MaxReplicas)
		}
		if d := c.deployments[name]; d != nil && d.Spec.Replicas != nil {
			t.Errorf("%s: spec.replicas is set; every apply would undo the HPA's scaling", name)
		}
	}
	for _, h := range c.hpas {
		ref := h.Spec.ScaleTargetRef
		d, ok := c.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !ok {
			t.Errorf("HPA %s targets %s %s %s, not a Deployment here", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		for _, m := range h.Spec.Metrics {
			if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil {
				continue
			}
			for _, ctr := range d.Spec.Template.Spec.Containers {
				if _, ok := ctr.Resources.Requests[m.Resource.Name]; !ok {
					t.Errorf("HPA %s scales on %s utilization but %s/%s requests none", h.Name, m.Resource.Name, d.Name, ctr.Name)
				}
			}
		}
	}

	// Ingress: one origin.
	routes := map[string]string{"/api": "command", "/ws": "notifier", "/": "web"}
	seen := map[string]bool{}
	for _, ing := range c.ingresses {
		if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName == "" {
			t.Errorf("Ingress %s: no ingressClassName", ing.Name)
		}
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				seen[p.Path] = true
				if want, ok := routes[p.Path]; !ok || p.Backend.Service == nil || p.Backend.Service.Name != want {
					t.Errorf("Ingress %s: %s routes to %+v, want Service %s", ing.Name, p.Path, p.Backend.Service, want)
					continue
				}
				if p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
					t.Errorf("Ingress %s: %s should be a Prefix path", ing.Name, p.Path)
				}
				checkServicePort(t, c, "Ingress "+ing.Name+" "+p.Path, p.Backend.Service.Name, p.Backend.Service.Port)
				if p.Path == "/ws" {
					for _, a := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
						if secs, err := strconv.Atoi(ing.Annotations[a]); err != nil || secs < 3600 {
							t.Errorf("Ingress %s serves /ws with %s=%q; WebSockets need at least 3600", ing.Name, a, ing.Annotations[a])
						}
					}
				}
			}
		}
	}
	for path := range routes {
		if !seen[path] {
			t.Errorf("no Ingress path %s", path)
		}
	}
	for _, name := range appDeployments {
		if findPDB(c, name) == nil {
			t.Errorf("no PodDisruptionBudget for %s", name)
		}
	}
}

// checkKafka checks the KRaft StatefulSet's listeners against its Services.
func checkKafka(t *testing.T, c *cluster) {
	t.Helper()
	s, ok := c.statefulSets["kafka"]
	if !ok {
		t.Fatal("no kafka StatefulSet")
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
		t.Errorf("kafka replicas %s: the fixed node id and quorum need exactly 1", ptrString(s.Spec.Replicas))
	}
	headless, ok := c.services[s.Spec.ServiceName]
	if !ok || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("kafka serviceName %q: want a headless Service that publishes not-ready addresses", s.Spec.ServiceName)
	}
	k := s.Spec.Template.Spec.Containers[0]
	if !strings.HasPrefix(k.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", k.Image)
	}
	if roles := envValue(k, "KAFKA_PROCESS_ROLES"); !strings.Contains(roles, "controller") {
		t.Errorf("KAFKA_PROCESS_ROLES %q: want KRaft", roles)
	}
	listeners := parseListeners(t, envValue(k, "KAFKA_LISTENERS"))
	ctrl := envValue(k, "KAFKA_CONTROLLER_LISTENER_NAMES")
	pod0 := s.Name + "-0." + s.Spec.ServiceName
	if want := envValue(k, "KAFKA_NODE_ID") + "@" + pod0 + ":" + portOf(t, listeners[ctrl]); envValue(k, "KAFKA_CONTROLLER_QUORUM_VOTERS") != want {
		t.Errorf("quorum voters %q, want %q", envValue(k, "KAFKA_CONTROLLER_QUORUM_VOTERS"), want)
	}
	for name, hp := range parseListeners(t, envValue(k, "KAFKA_ADVERTISED_LISTENERS")) {
		host, port, _ := net.SplitHostPort(hp)
		if host != "$(POD_NAME)."+s.Spec.ServiceName {
			t.Errorf("advertised listener %s host %q, want the pod's stable name $(POD_NAME).%s", name, host, s.Spec.ServiceName)
		}
		if port != portOf(t, listeners[name]) {
			t.Errorf("advertised listener %s port %s differs from the listener's", name, port)
		}
		if !slices.ContainsFunc(headless.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
			t.Errorf("headless Service lacks the advertised port %s", port)
		}
	}
	if !slices.ContainsFunc(k.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == envValue(k, "KAFKA_LOG_DIRS") }) {
		t.Error("KAFKA_LOG_DIRS is not on the data volume")
	}
}

// checkCommon applies to every build: pod security, probes, resources, env references, Services,
// budgets.
func checkCommon(t *testing.T, c *cluster) {
	t.Helper()
	for _, w := range c.workloads() {
		id := w.kind + " " + w.name
		pod := w.template.Spec
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if w.kind == "Job" {
			// The API server sets a Job's selector.
		} else if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.template.Labels)) {
			t.Errorf("%s: selector %v does not match its pod labels %v", id, w.selector, w.template.Labels)
		}
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pod must set runAsNonRoot and a non-zero runAsUser", id)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod must use the RuntimeDefault seccomp profile", id)
		}
		if _, needs := usesAPIServer[w.name]; needs {
			checkAPIAccess(t, c, id, pod)
		} else if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Errorf("%s: does not talk to the API server; disable the service account token", id)
		}
		volumes := slices.Clone(w.claims)
		for _, v := range pod.Volumes {
			volumes = append(volumes, v.Name)
		}
		all := append(slices.Clone(pod.InitContainers), pod.Containers...)
		for i, ctr := range all {
			cid := id + "/" + ctr.Name
			isInit := i < len(pod.InitContainers)
			checkContainerSecurity(t, cid, w.name+"/"+ctr.Name, ctr)
			checkResources(t, cid, ctr.Resources)
			if strings.HasSuffix(ctr.Image, ":") || !strings.Contains(ctr.Image, ":") {
				t.Errorf("%s: image %q has no tag", cid, ctr.Image)
			}
			for _, m := range ctr.VolumeMounts {
				if !slices.Contains(volumes, m.Name) {
					t.Errorf("%s: mounts undeclared volume %s", cid, m.Name)
				}
			}
			checkEnv(t, c, cid, ctr)
			if isInit || w.kind == "Job" {
				continue
			}
			if ctr.ReadinessProbe == nil || ctr.LivenessProbe == nil {
				t.Errorf("%s: needs readiness and liveness probes", cid)
				continue
			}
			checkProbePort(t, cid+" readiness", ctr, ctr.ReadinessProbe)
			checkProbePort(t, cid+" liveness", ctr, ctr.LivenessProbe)
		}
	}
	for _, svc := range c.services {
		matched := 0
		for _, w := range c.workloads() {
			if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
				matched++
				for _, p := range svc.Spec.Ports {
					if !containerHasPort(w.template.Spec.Containers, p.TargetPort) {
						t.Errorf("Service %s port %s: targetPort %s is no container port of %s", svc.Name, p.Name, p.TargetPort.String(), w.name)
					}
				}
			}
		}
		if len(svc.Spec.Selector) == 0 || matched != 1 {
			t.Errorf("Service %s selects %d workloads, want 1", svc.Name, matched)
		}
	}
	for _, pdb := range c.pdbs {
		w := findWorkload(c, pdb.Spec.Selector)
		if w == nil {
			t.Errorf("PodDisruptionBudget %s selects no workload", pdb.Name)
			continue
		}
		if pdb.Spec.MinAvailable != nil {
			// A budget that no pod may ever leave blocks every node drain.
			replicas := int32(1)
			if w.replicas != nil {
				replicas = *w.replicas
			}
			if h := findHPA(c, w.name); h != nil && h.Spec.MinReplicas != nil {
				replicas = *h.Spec.MinReplicas
			}
			if min := pdb.Spec.MinAvailable.IntValue(); pdb.Spec.MinAvailable.Type == intstr.Int && int32(min) >= replicas {
				t.Errorf("PodDisruptionBudget %s: minAvailable %d with %d replicas blocks node drains", pdb.Name, min, replicas)
			}
		}
	}
}

func checkContainerSecurity(t *testing.T, id, key string, ctr corev1.Container) {
	t.Helper()
	sc := ctr.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation must be false", id)
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: must drop ALL capabilities and add none", id)
	}
	if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("%s: runs as root", id)
	}
	readOnly := sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	if _, allowed := writableRoot[key]; !readOnly && !allowed {
		t.Errorf("%s: readOnlyRootFilesystem must be true (or listed in writableRoot with a reason)", id)
	}
}

func checkResources(t *testing.T, id string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		lim, okLim := r.Limits[name]
		if !okReq || !okLim {
			t.Errorf("%s: needs %s request and limit", id, name)
			continue
		}
		if req.Sign() <= 0 || req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s must be positive and at most the limit %s", id, name, req.String(), lim.String())
		}
	}
	if lim, ok := r.Limits[corev1.ResourceMemory]; ok && lim.Cmp(resource.MustParse("8Gi")) > 0 {
		t.Errorf("%s: memory limit %s looks like a typo", id, lim.String())
	}
}

// checkEnv checks that every variable taken from a ConfigMap or Secret exists there, and that
// $(VAR) references name variables defined earlier in the container.
func checkEnv(t *testing.T, c *cluster, id string, ctr corev1.Container) {
	t.Helper()
	defined := map[string]bool{}
	for _, e := range ctr.Env {
		if defined[e.Name] {
			t.Errorf("%s: %s is set twice", id, e.Name)
		}
		for _, ref := range varRefs(e.Value) {
			if !defined[ref] {
				t.Errorf("%s: %s refers to $(%s), not defined before it", id, e.Name, ref)
			}
		}
		defined[e.Name] = true
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			cm, ok := c.configMaps[r.Name]
			_, hasKey := cm.Data[r.Key]
			if ok {
				_, inBinary := cm.BinaryData[r.Key]
				hasKey = hasKey || inBinary
			}
			if !(ok && hasKey) && !(r.Optional != nil && *r.Optional) {
				t.Errorf("%s: %s refers to ConfigMap %s key %s, which does not exist", id, e.Name, r.Name, r.Key)
			}
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil {
			s, ok := c.secrets[r.Name]
			hasKey := false
			if ok {
				_, inData := s.Data[r.Key]
				_, inString := s.StringData[r.Key]
				hasKey = inData || inString
			}
			if !(ok && hasKey) && !(r.Optional != nil && *r.Optional) {
				t.Errorf("%s: %s refers to Secret %s key %s, which does not exist", id, e.Name, r.Name, r.Key)
			}
		}
	}
	for _, ef := range ctr.EnvFrom {
		if r := ef.ConfigMapRef; r != nil && c.configMaps[r.Name] == nil && !(r.Optional != nil && *r.Optional) {
			t.Errorf("%s: envFrom ConfigMap %s does not exist", id, r.Name)
		}
		if r := ef.SecretRef; r != nil && c.secrets[r.Name] == nil && !(r.Optional != nil && *r.Optional) {
			t.Errorf("%s: envFrom Secret %s does not exist", id, r.Name)
		}
	}
}

func varRefs(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			return out
		}
		j := strings.Index(s[i:], ")")
		if j < 0 {
			return out
		}
		out = append(out, s[i+2:i+j])
		s = s[i+j:]
	}
}

func checkProbePort(t *testing.T, id string, ctr corev1.Container, p *corev1.Probe) {
	t.Helper()
	var port intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		port = p.HTTPGet.Port
	case p.TCPSocket != nil:
		port = p.TCPSocket.Port
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			t.Errorf("%s: empty exec probe", id)
		}
		return
	default:
		t.Errorf("%s: probe has no handler", id)
		return
	}
	if !containerHasPort([]corev1.Container{ctr}, port) {
		t.Errorf("%s: probe port %s is not a container port", id, port.String())
	}
}

func containerHasPort(ctrs []corev1.Container, port intstr.IntOrString) bool {
	for _, ctr := range ctrs {
		for _, p := range ctr.Ports {
			if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return true
			}
		}
	}
	return false
}

func checkServicePort(t *testing.T, c *cluster, id, service string, port networkingv1.ServiceBackendPort) {
	t.Helper()
	svc, ok := c.services[service]
	if !ok {
		t.Errorf("%s: no Service %s", id, service)
		return
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return (port.Name != "" && p.Name == port.Name) || (port.Number != 0 && p.Port == port.Number)
	}) {
		t.Errorf("%s: Service %s has no port %+v", id, service, port)
	}
}

// checkServiceAddr checks that host:port names a Service of this build and one of its ports.
func checkServiceAddr(t *testing.T, c *cluster, what, hostPort string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		t.Errorf("%s: %q: %v", what, hostPort, err)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Errorf("%s: port %q", what, port)
		return
	}
	checkServicePort(t, c, what, strings.TrimSuffix(host, "."+namespace), networkingv1.ServiceBackendPort{Number: int32(n)})
}

func configMap(t *testing.T, c *cluster, prefix string) *corev1.ConfigMap {
	t.Helper()
	// configMapGenerator appends a content hash to the name.
	for name, cm := range c.configMaps {
		if name == prefix || strings.HasPrefix(name, prefix+"-") {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s", prefix)
	return nil
}

func secretValue(t *testing.T, c *cluster, name, key string) string {
	t.Helper()
	s, ok := c.secrets[name]
	if !ok {
		t.Fatalf("no Secret %s", name)
	}
	if v, ok := s.StringData[key]; ok {
		return v
	}
	if v, ok := s.Data[key]; ok {
		return string(v)
	}
	t.Fatalf("Secret %s has no %s", name, key)
	return ""
}

func envValue(ctr corev1.Container, name string) string {
	for _, e := range ctr.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func findHPA(c *cluster, deployment string) *autoscalingv2.HorizontalPodAutoscaler {
	for _, h := range c.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == deployment {
			return h
		}
	}
	return nil
}

func findPDB(c *cluster, workloadName string) *policyv1.PodDisruptionBudget {
	for _, p := range c.pdbs {
		if w := findWorkload(c, p.Spec.Selector); w != nil && w.name == workloadName {
			return p
		}
	}
	return nil
}

func findWorkload(c *cluster, selector *metav1.LabelSelector) *workload {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || sel.Empty() {
		return nil
	}
	for _, w := range c.workloads() {
		if sel.Matches(labels.Set(w.template.Labels)) {
			return &w
		}
	}
	return nil
}

func ptrString(p *int32) string {
	if p == nil {
		return "<unset>"
	}
	return strconv.Itoa(int(*p))
}

// TestK8sMonitoringOverlay builds base with the monitoring component: the application is
// unchanged, and one ServiceMonitor per Go service selects exactly that service's Service and
// scrapes /metrics on a port the Service has by name.
func TestK8sMonitoringOverlay(t *testing.T) {
	c := kustomizeBuild(t, "overlays/monitoring")
	addTemplateSecrets(t, c)
	checkApp(t, c, "latest")
	checkSandbox(t, c)
	checkCommon(t, c)
	if len(c.monitors) != len(usesDatabase) {
		t.Errorf("ServiceMonitors %v, want one for each of %v", mapKeys(c.monitors), usesDatabase)
	}
	for _, name := range usesDatabase {
		m, ok := c.monitors[name]
		if !ok {
			t.Errorf("no ServiceMonitor %s", name)
			continue
		}
		if m.Labels["app.kubernetes.io/part-of"] != "ticketflow" {
			t.Errorf("ServiceMonitor %s: labels %v lack app.kubernetes.io/part-of=ticketflow (what Prometheus selects)", name, m.Labels)
		}
		if len(m.Spec.NamespaceSelector.MatchNames) != 0 || m.Spec.NamespaceSelector.Any {
			t.Errorf("ServiceMonitor %s: namespaceSelector %+v; the Services are in its own namespace", name, m.Spec.NamespaceSelector)
		}
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil || sel.Empty() {
			t.Errorf("ServiceMonitor %s: selector %+v: %v", name, m.Spec.Selector, err)
			continue
		}
		var selected []string
		for svcName, svc := range c.services {
			if svc.Namespace == m.Namespace && sel.Matches(labels.Set(svc.Labels)) {
				selected = append(selected, svcName)
			}
		}
		if !slices.Equal(selected, []string{name}) {
			t.Errorf("ServiceMonitor %s selects Services %v, want [%s]", name, selected, name)
			continue
		}
		svc := c.services[name]
		if len(m.Spec.Endpoints) != 1 {
			t.Errorf("ServiceMonitor %s: endpoints %+v, want one", name, m.Spec.Endpoints)
			continue
		}
		ep := m.Spec.Endpoints[0]
		var port *corev1.ServicePort
		for i, p := range svc.Spec.Ports {
			if p.Name == ep.Port {
				port = &svc.Spec.Ports[i]
			}
		}
		if ep.Port == "" || port == nil {
			t.Errorf("ServiceMonitor %s: endpoint port %q is not a named port of Service %s", name, ep.Port, name)
			continue
		}
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor %s: path %q, want /metrics", name, ep.Path)
		}
		// The pods say the same (prometheus.io annotations), and the metrics NetworkPolicy lets
		// the monitoring namespace in on that port.
		w := findWorkload(c, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
		if w == nil {
			t.Errorf("Service %s selects no workload", name)
			continue
		}
		ann := w.template.Annotations
		if ann["prometheus.io/path"] != ep.Path || ann["prometheus.io/port"] != strconv.Itoa(int(port.Port)) {
			t.Errorf("ServiceMonitor %s scrapes %s on %d; the pods' prometheus.io annotations say %s on %s",
				name, ep.Path, port.Port, ann["prometheus.io/path"], ann["prometheus.io/port"])
		}
		pol, ok := c.policies["metrics"]
		if !ok || !portMatches(pol.Spec.Ingress[0].Ports, port.Port, corev1.ProtocolTCP) {
			t.Errorf("the metrics NetworkPolicy does not admit port %d of %s", port.Port, name)
		}
	}
}
