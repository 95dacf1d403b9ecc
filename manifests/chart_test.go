// Tests of the Helm chart in charts/sluice: helm lint, the schema's refusals,
// and a matrix of `helm template` renders whose objects are parsed and
// checked for what a cluster admin relies on: webhook scoping, RBAC no wider
// than an allowlist kept here, hardened pods, and names that agree with each
// other. Server-side validation of the same renders against a real API
// server is in e2e/cluster (TestChartDryRun).
package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/e2e/framework"
	"github.com/sluice-dev/sluice/scheduler-plugin/schedulertest"
)

const (
	release   = "rel"
	namespace = "sluice-system"
	// fullname is the chart's object name prefix for release "rel".
	fullname = "rel-sluice"
)

// A render of the chart with some values, and what the test expects of it.
type variant struct {
	name string
	set  []string
	// certManager, serviceMonitor and scheduler mirror the values set.
	certManager, serviceMonitor, scheduler bool
	// apiServer is the KUBERNETES_SERVICE_HOST:_PORT the chart's containers
	// get (apiServer.host and .port); empty: none.
	apiServer string
}

var matrix = []variant{
	{name: "defaults", scheduler: true},
	{name: "cert-manager", set: []string{"certManager.enabled=true"}, certManager: true, scheduler: true},
	{name: "cert-manager with a ClusterIssuer", set: []string{"certManager.enabled=true", "certManager.issuerRef.kind=ClusterIssuer", "certManager.issuerRef.name=corp-ca"}, certManager: true, scheduler: true},
	{name: "service monitor", set: []string{"metrics.serviceMonitor.enabled=true"}, serviceMonitor: true, scheduler: true},
	{name: "cert-manager and service monitor", set: []string{"certManager.enabled=true", "metrics.serviceMonitor.enabled=true"}, certManager: true, serviceMonitor: true, scheduler: true},
	{name: "no scheduler", set: []string{"scheduler.enabled=false"}},
	{name: "development url", set: []string{"webhook.url=https://localhost:19443", "webhook.excludedNamespaces={ci,sandbox}"}, scheduler: true},
	{name: "api server address", set: []string{"apiServer.host=192.0.2.2", "apiServer.port=6443"}, scheduler: true, apiServer: "192.0.2.2:6443"},
}

// render returns the chart's objects for release "rel" in sluice-system.
func render(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := framework.RenderChart(release, namespace, set...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// objects is a render indexed by kind.
type objects map[string][]*unstructured.Unstructured

func byKind(objs []*unstructured.Unstructured) objects {
	m := objects{}
	for _, o := range objs {
		m[o.GetKind()] = append(m[o.GetKind()], o)
	}
	return m
}

// typed converts every object of a kind to T.
func typed[T any](t *testing.T, o objects, kind string) []*T {
	t.Helper()
	var out []*T
	for _, u := range o[kind] {
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, v, true); err != nil {
			t.Fatalf("%s %s does not decode as a %s: %v", kind, u.GetName(), kind, err)
		}
		out = append(out, v)
	}
	return out
}

func (o objects) names(kind string) []string {
	var names []string
	for _, u := range o[kind] {
		names = append(names, u.GetName())
	}
	return names
}

func TestLint(t *testing.T) {
	for _, v := range matrix {
		t.Run(v.name, func(t *testing.T) {
			if out, err := framework.Helm(append([]string{"lint", framework.ChartDir(), "--strict", "--namespace", namespace}, framework.SetArgs(v.set)...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestSchemaRefusesBadValues: invalid values stop helm before anything is
// rendered or applied, with a message that names the value.
func TestSchemaRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"webhook.replicas=0", "/webhook/replicas"},
		{"webhook.replica=3", "additional properties 'replica' not allowed"},
		{"webhook.timeoutSeconds=60", "/webhook/timeoutSeconds"},
		{"webhook.shutdownDelaySeconds=0", "/webhook/shutdownDelaySeconds"},
		{"webhook.url=http://insecure:9443", "/webhook/url"},
		{"webhook.excludedNamespaces={Not_A_Namespace}", "/webhook/excludedNamespaces/0"},
		{"controller.artifactSize=big", "/controller/artifactSize"},
		{"controller.concurrentRuns=0", "/controller/concurrentRuns"},
		{"controller.taskEvents=some", "/controller/taskEvents"},
		{"controller.startDeadline=ten minutes", "/controller/startDeadline"},
		{"scheduler.name=Sluice Scheduler", "/scheduler/name"},
		{"scheduler.enabled=yes", "/scheduler/enabled"},
		{"image.webhook.pullPolicy=Sometimes", "/image/webhook/pullPolicy"},
		{"certManager.issuerRef.kind=Vault", "/certManager/issuerRef/kind"},
		{"certManager.issuerRef.kind=ClusterIssuer", "'name' required"},
		{"certManager.duration=1year", "/certManager/duration"},
		{"metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"},
		// Beyond the schema: a template check across two values.
		{"webhook.minAvailable=2", "webhook.minAvailable (2) must be less than webhook.replicas (2)"},
		{"apiServer.host=192.0.2.2", "apiServer.host and apiServer.port go together"},
		{"apiServer.port=70000", "/apiServer/port"},
		{"apiServer.host=https://api:6443", "/apiServer/host"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := framework.Helm("template", release, framework.ChartDir(), "--namespace", namespace, "--set", tc.set)
			if err == nil {
				t.Fatalf("%s was accepted; rendered %d bytes", tc.set, len(out))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s refused with\n%v\nwant it to mention %q", tc.set, err, tc.want)
			}
		})
	}
}

func TestRenders(t *testing.T) {
	for _, v := range matrix {
		t.Run(v.name, func(t *testing.T) {
			o := byKind(render(t, v.set...))
			checkNamespaced(t, o)
			checkWebhookConfigurations(t, o, v)
			checkRBAC(t, o, v)
			checkPods(t, o, v)
			checkCertificates(t, o, v)
			checkServiceMonitor(t, o, v)
			if v.scheduler {
				checkSchedulerConfig(t, o)
			}
		})
	}
}

var clusterScoped = []string{"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}

// Every namespaced object names the release namespace (so `helm template |
// kubectl apply` lands where helm install would), except the scheduler's
// RoleBinding to the authentication reader, which must live in kube-system.
func checkNamespaced(t *testing.T, o objects) {
	for kind, objs := range o {
		for _, u := range objs {
			ns := u.GetNamespace()
			switch {
			case slices.Contains(clusterScoped, kind):
				if ns != "" {
					t.Errorf("%s %s is cluster-scoped but has namespace %q", kind, u.GetName(), ns)
				}
			case kind == "RoleBinding" && u.GetName() == fullname+"-scheduler-authentication-reader":
				if ns != "kube-system" {
					t.Errorf("RoleBinding %s in %q, want kube-system", u.GetName(), ns)
				}
			case ns != namespace:
				t.Errorf("%s %s in namespace %q, want %s", kind, u.GetName(), ns, namespace)
			}
		}
	}
}

// webhookView is what the checks need of a mutating or validating webhook.
type webhookView struct {
	config, name      string
	clientConfig      admissionregv1.WebhookClientConfig
	rules             []admissionregv1.RuleWithOperations
	objectSelector    *metav1.LabelSelector
	namespaceSelector *metav1.LabelSelector
	failurePolicy     *admissionregv1.FailurePolicyType
	sideEffects       *admissionregv1.SideEffectClass
	timeoutSeconds    *int32
	matchConditions   []admissionregv1.MatchCondition
}

func checkWebhookConfigurations(t *testing.T, o objects, v variant) {
	var hooks []webhookView
	for _, c := range typed[admissionregv1.MutatingWebhookConfiguration](t, o, "MutatingWebhookConfiguration") {
		checkCAInjection(t, o, "MutatingWebhookConfiguration", c.ObjectMeta, v)
		for _, w := range c.Webhooks {
			hooks = append(hooks, webhookView{"mutating " + c.Name, w.Name, w.ClientConfig, w.Rules, w.ObjectSelector, w.NamespaceSelector, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.MatchConditions})
		}
	}
	for _, c := range typed[admissionregv1.ValidatingWebhookConfiguration](t, o, "ValidatingWebhookConfiguration") {
		checkCAInjection(t, o, "ValidatingWebhookConfiguration", c.ObjectMeta, v)
		for _, w := range c.Webhooks {
			hooks = append(hooks, webhookView{"validating " + c.Name, w.Name, w.ClientConfig, w.Rules, w.ObjectSelector, w.NamespaceSelector, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.MatchConditions})
		}
	}
	if len(hooks) != 4 {
		t.Fatalf("%d webhooks, want 4 (mutating and validating, for Jobs and Pods)", len(hooks))
	}
	excluded := []string{"kube-system", namespace}
	if v.name == "development url" {
		excluded = append(excluded, "ci", "sandbox")
	}
	for _, w := range hooks {
		where := w.config + "/" + w.name
		// Only sluice objects reach the webhook.
		sel, err := metav1.LabelSelectorAsSelector(w.objectSelector)
		if err != nil || w.objectSelector == nil {
			t.Errorf("%s: objectSelector %v: %v", where, w.objectSelector, err)
		} else {
			if sel.Matches(labels.Set{"app": "web"}) {
				t.Errorf("%s: objectSelector %s matches objects without %s", where, sel, annotations.PipelineLabel)
			}
			if !sel.Matches(labels.Set{annotations.PipelineLabel: "p"}) {
				t.Errorf("%s: objectSelector %s does not match sluice objects", where, sel)
			}
		}
		nsSel, err := metav1.LabelSelectorAsSelector(w.namespaceSelector)
		if err != nil || w.namespaceSelector == nil {
			t.Errorf("%s: namespaceSelector %v: %v", where, w.namespaceSelector, err)
		} else {
			for _, ns := range excluded {
				if nsSel.Matches(labels.Set{corev1.LabelMetadataName: ns}) {
					t.Errorf("%s: namespaceSelector %s lets namespace %s through", where, nsSel, ns)
				}
			}
			if !nsSel.Matches(labels.Set{corev1.LabelMetadataName: "ml-team"}) {
				t.Errorf("%s: namespaceSelector %s leaves out ordinary namespaces", where, nsSel)
			}
		}
		if w.failurePolicy == nil || *w.failurePolicy != admissionregv1.Fail {
			t.Errorf("%s: failurePolicy %v, want Fail", where, w.failurePolicy)
		}
		if w.sideEffects == nil || *w.sideEffects != admissionregv1.SideEffectClassNone {
			t.Errorf("%s: sideEffects %v, want None", where, w.sideEffects)
		}
		if w.timeoutSeconds == nil || *w.timeoutSeconds > 10 {
			t.Errorf("%s: timeoutSeconds %v, want at most 10", where, w.timeoutSeconds)
		}
		isPods := len(w.rules) == 1 && slices.Equal(w.rules[0].Resources, []string{"pods"})
		if isPods && !slices.ContainsFunc(w.matchConditions, func(c admissionregv1.MatchCondition) bool { return c.Name == "not-a-job-pod" }) {
			t.Errorf("%s: pod webhook without the not-a-job-pod match condition", where)
		}
		// Where the webhook is reached.
		switch cc := w.clientConfig; {
		case v.name == "development url":
			if cc.URL == nil || !strings.HasPrefix(*cc.URL, "https://localhost:19443/") || cc.Service != nil {
				t.Errorf("%s: clientConfig %+v, want the development URL", where, cc)
			}
		case cc.Service == nil:
			t.Errorf("%s: clientConfig has no service", where)
		default:
			if cc.Service.Namespace != namespace || !slices.Contains(o.names("Service"), cc.Service.Name) {
				t.Errorf("%s: calls Service %s/%s, not one the chart renders (%v)", where, cc.Service.Namespace, cc.Service.Name, o.names("Service"))
			}
			if cc.Service.Path == nil || !slices.Contains(webhookPaths, *cc.Service.Path) {
				t.Errorf("%s: path %v is none of the manager's %v", where, cc.Service.Path, webhookPaths)
			}
		}
	}
}

// webhookPaths are the handlers cmd/webhook serves (controller-runtime's
// default paths for Jobs and Pods).
var webhookPaths = []string{"/mutate-batch-v1-job", "/mutate--v1-pod", "/validate-batch-v1-job", "/validate--v1-pod"}

// With cert-manager the webhook configurations name the chart's Certificate
// for CA injection; without it the manager injects the CA itself.
func checkCAInjection(t *testing.T, o objects, kind string, meta metav1.ObjectMeta, v variant) {
	got, ok := meta.Annotations["cert-manager.io/inject-ca-from"]
	if !v.certManager {
		if ok {
			t.Errorf("%s %s: inject-ca-from %q without cert-manager", kind, meta.Name, got)
		}
		return
	}
	ns, name, _ := strings.Cut(got, "/")
	if ns != namespace || !slices.Contains(o.names("Certificate"), name) {
		t.Errorf("%s %s: inject-ca-from %q names no rendered Certificate (%v)", kind, meta.Name, got, o.names("Certificate"))
	}
}

// allowedVerbs is the most the chart's own Roles and ClusterRoles may grant,
// by API group and resource. A new rule the code needs must be added here,
// on purpose. Secrets and webhook configurations must also be limited by
// resourceNames (checked below).
var allowedVerbs = map[string][]string{
	"batch/jobs":                    {"get", "list", "watch", "patch"},
	"/pods":                         {"get", "list", "watch", "patch"},
	"/pods/status":                  {"patch"},
	"/persistentvolumeclaims":       {"get", "list", "watch", "create"},
	"/nodes":                        {"get", "list", "watch"},
	"storage.k8s.io/storageclasses": {"get", "list", "watch"},
	"events.k8s.io/events":          {"create", "patch"},
	"/events":                       {"create", "patch", "list"},
	"coordination.k8s.io/leases":    {"get", "update", "create"},
	"/secrets":                      {"get", "update"},
	"admissionregistration.k8s.io/mutatingwebhookconfigurations":   {"get", "update"},
	"admissionregistration.k8s.io/validatingwebhookconfigurations": {"get", "update"},
}

// mustName are resources whose every rule must name its objects.
var mustName = map[string]bool{
	"/secrets": true,
	"admissionregistration.k8s.io/mutatingwebhookconfigurations":   true,
	"admissionregistration.k8s.io/validatingwebhookconfigurations": true,
}

// builtinRoles are the cluster's own roles the chart may bind, and to whom:
// a secondary scheduler needs what kube-scheduler needs.
var builtinRoles = map[string]string{
	"ClusterRole/system:kube-scheduler":              "scheduler",
	"ClusterRole/system:volume-scheduler":            "scheduler",
	"Role/extension-apiserver-authentication-reader": "scheduler",
}

func checkRBAC(t *testing.T, o objects, v variant) {
	type grant struct {
		where string
		rule  rbacv1.PolicyRule
	}
	var rules []grant
	roles := map[string]bool{}
	for _, r := range typed[rbacv1.ClusterRole](t, o, "ClusterRole") {
		roles["ClusterRole/"+r.Name] = true
		if r.AggregationRule != nil {
			t.Errorf("ClusterRole %s aggregates other roles", r.Name)
		}
		for _, rule := range r.Rules {
			rules = append(rules, grant{"ClusterRole " + r.Name, rule})
		}
	}
	for _, r := range typed[rbacv1.Role](t, o, "Role") {
		roles["Role/"+r.Name] = true
		for _, rule := range r.Rules {
			rules = append(rules, grant{"Role " + r.Name, rule})
		}
	}
	secretRules := 0
	for _, r := range rules {
		if len(r.rule.NonResourceURLs) > 0 {
			t.Errorf("%s grants non-resource URLs %v", r.where, r.rule.NonResourceURLs)
		}
		for _, g := range r.rule.APIGroups {
			for _, res := range r.rule.Resources {
				key := g + "/" + res
				allowed, ok := allowedVerbs[key]
				if !ok {
					t.Errorf("%s grants %s, which is not in the allowlist", r.where, key)
					continue
				}
				for _, verb := range r.rule.Verbs {
					if !slices.Contains(allowed, verb) {
						t.Errorf("%s grants %s on %s; the allowlist has only %v", r.where, verb, key, allowed)
					}
				}
				if mustName[key] && len(r.rule.ResourceNames) == 0 {
					t.Errorf("%s grants %v on every %s; it must name them", r.where, r.rule.Verbs, key)
				}
				if key == "/secrets" {
					secretRules++
					if !slices.Equal(r.rule.ResourceNames, []string{fullname + "-webhook-cert"}) {
						t.Errorf("%s: secrets %v, want only the webhook's certificate Secret", r.where, r.rule.ResourceNames)
					}
				}
			}
		}
	}
	// cert-manager mounts the certificate: the manager then reads no Secret at all.
	if want := map[bool]int{true: 0, false: 1}[v.certManager]; secretRules != want {
		t.Errorf("%d rules on secrets, want %d", secretRules, want)
	}

	sas := o.names("ServiceAccount")
	check := func(kind, name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
		target := ref.Kind + "/" + ref.Name
		who, builtin := builtinRoles[target]
		if !builtin && !roles[target] {
			t.Errorf("%s %s binds %s, neither the chart's own role nor an allowed built-in one", kind, name, target)
		}
		for _, s := range subjects {
			if s.Kind != rbacv1.ServiceAccountKind || s.Namespace != namespace || !slices.Contains(sas, s.Name) {
				t.Errorf("%s %s binds %s %s/%s, not a ServiceAccount of the chart", kind, name, s.Kind, s.Namespace, s.Name)
			}
			if builtin && s.Name != fullname+"-"+who {
				t.Errorf("%s %s gives %s to %s; only the %s may have it", kind, name, target, s.Name, who)
			}
		}
	}
	for _, b := range typed[rbacv1.ClusterRoleBinding](t, o, "ClusterRoleBinding") {
		check("ClusterRoleBinding", b.Name, b.RoleRef, b.Subjects)
	}
	for _, b := range typed[rbacv1.RoleBinding](t, o, "RoleBinding") {
		check("RoleBinding", b.Name, b.RoleRef, b.Subjects)
	}
}

func checkPods(t *testing.T, o objects, v variant) {
	deps := typed[appsv1.Deployment](t, o, "Deployment")
	want := []string{fullname + "-webhook"}
	if v.scheduler {
		want = append(want, fullname+"-scheduler")
	}
	if got := o.names("Deployment"); !slices.Equal(got, want) && !slices.Equal(got, []string{want[len(want)-1], want[0]}) {
		t.Errorf("Deployments %v, want %v", got, want)
	}
	for _, d := range deps {
		spec := d.Spec.Template.Spec
		if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
			t.Errorf("Deployment %s: pod may run as root", d.Name)
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Errorf("Deployment %s shares the host's namespaces", d.Name)
		}
		for _, c := range spec.Containers {
			where := "Deployment " + d.Name + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			for _, bad := range []struct {
				ok   bool
				what string
			}{
				{sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "runAsNonRoot"},
				{sc.RunAsUser != nil && *sc.RunAsUser != 0, "a non-zero runAsUser"},
				{sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem"},
				{sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation: false"},
				{sc.Privileged == nil || !*sc.Privileged, "no privileged mode"},
				{sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL") && len(sc.Capabilities.Add) == 0, "capabilities: drop ALL, add none"},
				{sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, "seccompProfile RuntimeDefault"},
			} {
				if !bad.ok {
					t.Errorf("%s: securityContext lacks %s", where, bad.what)
				}
			}
			var host, port string
			for _, e := range c.Env {
				switch e.Name {
				case "KUBERNETES_SERVICE_HOST":
					host = e.Value
				case "KUBERNETES_SERVICE_PORT":
					port = e.Value
				}
			}
			if got := strings.TrimSuffix(host+":"+port, ":"); got != v.apiServer {
				t.Errorf("%s: KUBERNETES_SERVICE_HOST:_PORT %q, want %q", where, got, v.apiServer)
			}
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				t.Errorf("%s: liveness and readiness probes are required", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: cpu and memory requests are required", where)
			}
		}
	}
	for _, d := range deps {
		if d.Name != fullname+"-webhook" {
			continue
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			t.Errorf("webhook Deployment replicas %v, want 2", d.Spec.Replicas)
		}
		if lc := d.Spec.Template.Spec.Containers[0].Lifecycle; lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil || lc.PreStop.Sleep.Seconds != 5 {
			t.Errorf("webhook container lifecycle %+v, want a preStop sleep of 5 s (webhook.shutdownDelaySeconds)", lc)
		}
		args := d.Spec.Template.Spec.Containers[0].Args
		if !slices.Contains(args, "--leader-elect") || !slices.Contains(args, "--leader-election-namespace="+namespace) {
			t.Errorf("webhook args %v: two replicas need leader election in %s", args, namespace)
		}
		if v.scheduler != slices.Contains(args, "--scheduler-name=sluice-scheduler") {
			t.Errorf("webhook args %v: --scheduler-name given = %v, want %v", args, !v.scheduler, v.scheduler)
		}
		pdbs := typed[policyv1.PodDisruptionBudget](t, o, "PodDisruptionBudget")
		covered := false
		for _, p := range pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) && p.Spec.MinAvailable != nil && p.Spec.MinAvailable.IntValue() >= 1 {
				covered = true
			}
		}
		if !covered {
			t.Errorf("no PodDisruptionBudget keeps a webhook replica available")
		}
		checkService(t, o, d)
	}
}

// The Service the webhook configurations call selects the manager's pods and
// sends 443 to the port the webhook server listens on.
func checkService(t *testing.T, o objects, d *appsv1.Deployment) {
	for _, s := range typed[corev1.Service](t, o, "Service") {
		if s.Name != d.Name {
			continue
		}
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service %s selects %v, not the manager's pods %v", s.Name, s.Spec.Selector, d.Spec.Template.Labels)
		}
		for _, p := range s.Spec.Ports {
			if p.Port != 443 {
				continue
			}
			for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
				if cp.Name == p.TargetPort.String() && slices.Contains(d.Spec.Template.Spec.Containers[0].Args, fmt.Sprintf("--webhook-port=%d", cp.ContainerPort)) {
					return
				}
			}
		}
		t.Errorf("Service %s port 443 does not reach --webhook-port", s.Name)
		return
	}
	t.Errorf("no Service named %s", d.Name)
}

// The manager's certificate flags, or the cert-manager Certificate and its
// mounted Secret, agree with the Service, Secret and webhook configurations.
func checkCertificates(t *testing.T, o objects, v variant) {
	var args []string
	var spec corev1.PodSpec
	for _, d := range typed[appsv1.Deployment](t, o, "Deployment") {
		if d.Name == fullname+"-webhook" {
			spec = d.Spec.Template.Spec
			args = spec.Containers[0].Args
		}
	}
	svcDNS := fullname + "-webhook." + namespace + ".svc"
	secret := fullname + "-webhook-cert"
	if !v.certManager {
		want := []string{
			"--cert-rotation",
			"--cert-secret=" + namespace + "/" + secret,
			"--mutating-webhook-configuration=" + fullname,
			"--validating-webhook-configuration=" + fullname,
		}
		for _, a := range want {
			if !slices.Contains(args, a) {
				t.Errorf("webhook args %v lack %s", args, a)
			}
		}
		if !slices.ContainsFunc(args, func(a string) bool {
			names, ok := strings.CutPrefix(a, "--cert-dns-names=")
			return ok && slices.Contains(strings.Split(names, ","), svcDNS)
		}) {
			t.Errorf("webhook args %v: the certificate must be valid for %s", args, svcDNS)
		}
		if !slices.Equal(o.names("Secret"), []string{secret}) {
			t.Errorf("Secrets %v, want the empty certificate Secret %s", o.names("Secret"), secret)
		}
		if len(o["Certificate"])+len(o["Issuer"]) > 0 {
			t.Errorf("cert-manager objects rendered without cert-manager")
		}
		if len(spec.Volumes) > 0 {
			t.Errorf("volumes %v: with built-in rotation the certificate is served from memory", spec.Volumes)
		}
		return
	}
	if len(o["Secret"]) > 0 {
		t.Errorf("Secrets %v rendered: cert-manager owns the certificate Secret", o.names("Secret"))
	}
	certs := o["Certificate"]
	if len(certs) != 1 {
		t.Fatalf("%d Certificates, want 1", len(certs))
	}
	c := certs[0]
	secretName, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
	if !slices.Contains(dnsNames, svcDNS) {
		t.Errorf("Certificate dnsNames %v lack %s", dnsNames, svcDNS)
	}
	mounted := false
	for _, vol := range spec.Volumes {
		if vol.Secret != nil && vol.Secret.SecretName == secretName {
			mounted = true
		}
	}
	if !mounted || !slices.Contains(args, "--cert-dir=/certs") {
		t.Errorf("the manager does not serve Certificate %s's Secret %s (volumes %v, args %v)", c.GetName(), secretName, spec.Volumes, args)
	}
	issuerKind, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "kind")
	issuerName, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name")
	if issuerKind == "Issuer" && !slices.Contains(o.names("Issuer"), issuerName) {
		t.Errorf("Certificate's Issuer %s is not rendered (%v)", issuerName, o.names("Issuer"))
	}
	if v.name == "cert-manager with a ClusterIssuer" && (issuerKind != "ClusterIssuer" || issuerName != "corp-ca" || len(o["Issuer"]) > 0) {
		t.Errorf("issuerRef %s/%s with %d Issuers, want ClusterIssuer/corp-ca and none", issuerKind, issuerName, len(o["Issuer"]))
	}
}

func checkServiceMonitor(t *testing.T, o objects, v variant) {
	sms := o["ServiceMonitor"]
	if !v.serviceMonitor {
		if len(sms) > 0 {
			t.Errorf("ServiceMonitor rendered though not enabled")
		}
		return
	}
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sms))
	}
	matchLabels, _, _ := unstructured.NestedStringMap(sms[0].Object, "spec", "selector", "matchLabels")
	port, _ := sms[0].Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["port"].(string)
	for _, s := range typed[corev1.Service](t, o, "Service") {
		if labels.SelectorFromSet(matchLabels).Matches(labels.Set(s.Labels)) && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port }) {
			return
		}
	}
	t.Errorf("ServiceMonitor selects %v port %q: no Service matches", matchLabels, port)
}

// The scheduler's ConfigMap loads and validates as kube-scheduler reads it,
// serves only the profile the manager assigns, and elects a leader through
// a Lease its Role lets it update.
func checkSchedulerConfig(t *testing.T, o objects) {
	var data string
	for _, cm := range typed[corev1.ConfigMap](t, o, "ConfigMap") {
		if cm.Name == fullname+"-scheduler" {
			data = cm.Data["config.yaml"]
		}
	}
	if data == "" {
		t.Fatalf("no scheduler configuration in ConfigMap %s-scheduler", fullname)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := schedulertest.LoadConfig(t, path)
	schedulertest.CheckProfiles(t, cfg, map[string]bool{"sluice-scheduler": true})
	le := cfg.LeaderElection
	if !le.LeaderElect || le.ResourceNamespace != namespace || le.ResourceName != fullname+"-scheduler" {
		t.Errorf("scheduler leader election %+v, want its own Lease in %s", le, namespace)
	}
	for _, r := range typed[rbacv1.Role](t, o, "Role") {
		if r.Name == fullname+"-scheduler" && slices.ContainsFunc(r.Rules, func(p rbacv1.PolicyRule) bool {
			return slices.Contains(p.Resources, "leases") && slices.Contains(p.ResourceNames, le.ResourceName) && slices.Contains(p.Verbs, "update")
		}) {
			return
		}
	}
	t.Errorf("no Role lets the scheduler update its Lease %s", le.ResourceName)
}
