package cluster

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// Pinned versions of the projects whose CRDs the chart's optional objects
// are validated against. Their Go modules ship the CRD manifests.
const (
	promOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	promOperatorVersion = "v0.88.0"
)

// TestChartServiceAccount: the manager runs with nothing but the chart's
// RBAC (TestMain installs the chart and gives the manager a token of its
// ServiceAccount). A pipeline completes, the manager's certificate Secret
// and webhook configurations are in order, and the same identity is refused
// every other Secret.
func TestChartServiceAccount(t *testing.T) {
	ctx := context.Background()
	sa, err := client.New(cluster.ManagerConfig, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	review := &authenticationv1.SelfSubjectReview{}
	if err := sa.Create(ctx, review); err != nil {
		t.Fatal(err)
	}
	want := "system:serviceaccount:" + framework.ChartNamespace + ":" + framework.ManagerServiceAccount
	if got := review.Status.UserInfo.Username; got != want {
		t.Fatalf("the manager's identity is %q, want %q", got, want)
	}

	ns, _ := setup(t)
	create(t,
		job("prepare", ns).Outputs("data:Dataset").Annotation(annotations.StorageClassAnnotation, sharedClass).Obj(),
		job("train", ns).Inputs("data=prepare.data").Annotation(annotations.GPUAnnotation, "1").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"prepare": annotations.PhaseSucceeded, "train": annotations.PhaseSucceeded})

	// Refused: a Secret of a pipeline namespace, another Secret next to its
	// own, and listing Secrets.
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: ns}, StringData: map[string]string{"password": "hunter2"}})
	for _, key := range []client.ObjectKey{{Namespace: ns, Name: "db-password"}, {Namespace: framework.ChartNamespace, Name: "registry-credentials"}} {
		if err := sa.Get(ctx, key, &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Errorf("the manager's identity reading Secret %s: err = %v, want Forbidden", key, err)
		}
	}
	if err := sa.List(ctx, &corev1.SecretList{}, client.InNamespace(framework.ChartNamespace)); !apierrors.IsForbidden(err) {
		t.Errorf("the manager's identity listing Secrets in %s: err = %v, want Forbidden", framework.ChartNamespace, err)
	}
	// Allowed: its own certificate Secret, which the manager filled, and
	// whose CA it put into both webhook configurations.
	var own corev1.Secret
	if err := sa.Get(ctx, client.ObjectKey{Namespace: framework.ChartNamespace, Name: framework.ChartRelease + "-webhook-cert"}, &own); err != nil {
		t.Fatalf("the manager reading its own certificate Secret: %v", err)
	}
	ca := own.Data["ca.crt"]
	if len(ca) == 0 || len(own.Data["tls.crt"]) == 0 || len(own.Data["tls.key"]) == 0 {
		t.Fatalf("certificate Secret holds keys %v, want ca.crt, tls.crt, tls.key", slices.Sorted(maps.Keys(own.Data)))
	}
	for name, b := range caBundles(t) {
		if string(b) != string(ca) {
			t.Errorf("webhook %s: caBundle is not the manager's CA", name)
		}
	}
}

// caBundles returns the caBundle of every webhook of the chart's two
// webhook configurations.
func caBundles(t *testing.T) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	var mutating admissionregv1.MutatingWebhookConfiguration
	var validating admissionregv1.ValidatingWebhookConfiguration
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.ChartRelease}, &mutating); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.ChartRelease}, &validating); err != nil {
		t.Fatal(err)
	}
	bundles := map[string][]byte{}
	for _, w := range mutating.Webhooks {
		bundles["mutating "+w.Name] = w.ClientConfig.CABundle
	}
	for _, w := range validating.Webhooks {
		bundles["validating "+w.Name] = w.ClientConfig.CABundle
	}
	return bundles
}

// TestChartDryRun: every object of every chart variant passes the real API
// server's validation (server-side dry run), with cert-manager's and
// prometheus-operator's own CRDs installed so that the Certificate, Issuer
// and ServiceMonitor are checked against their real schemas; and the pods of
// its Deployments are admitted under the restricted Pod Security Standard.
func TestChartDryRun(t *testing.T) {
	ctx := context.Background()
	promDir, err := framework.ModuleDir(promOperatorModule, promOperatorVersion)
	if err != nil {
		t.Fatal(err)
	}
	crds, err := framework.CertManagerCRDs()
	if err != nil {
		t.Fatal(err)
	}
	sm, err := framework.ReadObjects(promDir + "/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range append(crds, sm...) {
		if crd.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if err := cluster.Client.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("installing CRD %s: %v", crd.GetName(), err)
		}
		waitEstablished(t, crd.GetName())
	}

	// The chart's pods are tried in a namespace that enforces the restricted
	// Pod Security Standard, so that the API server's PodSecurity admission
	// checks them.
	const ns, restricted = "sluice-dryrun", "sluice-restricted"
	for _, n := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		{ObjectMeta: metav1.ObjectMeta{Name: restricted, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}},
	} {
		if err := cluster.Client.Create(ctx, n); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, v := range []struct {
		name string
		set  []string
	}{
		{"defaults", nil},
		{"cert-manager", []string{"certManager.enabled=true"}},
		{"cert-manager with a ClusterIssuer", []string{"certManager.enabled=true", "certManager.issuerRef.kind=ClusterIssuer", "certManager.issuerRef.name=corp-ca"}},
		{"service monitor", []string{"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prometheus"}},
		{"no scheduler", []string{"scheduler.enabled=false", "webhook.excludedNamespaces={ci}"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			objs, err := framework.RenderChart("dry", ns, v.set...)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]bool{}
			for _, obj := range objs {
				kinds[obj.GetKind()] = true
				if err := cluster.Client.Create(ctx, obj, client.DryRunAll); err != nil {
					t.Errorf("%s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
				}
				if obj.GetKind() == "Deployment" {
					// Pod Security admission only warns about a Deployment;
					// it refuses a pod that breaks the standard.
					var d appsv1.Deployment
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
						t.Fatal(err)
					}
					// The ServiceAccount admission plugin wants the pod's
					// ServiceAccount to exist, not just to be dry-run.
					sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: restricted}}
					if err := cluster.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
						t.Fatal(err)
					}
					pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: restricted, Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
					if err := cluster.Client.Create(ctx, pod, client.DryRunAll); err != nil {
						t.Errorf("a pod of Deployment %s in a namespace enforcing the restricted Pod Security Standard: %v", d.Name, err)
					}
				}
			}
			t.Logf("%d objects validated (kinds %s)", len(objs), strings.Join(slices.Sorted(maps.Keys(kinds)), ","))
		})
	}
}

func waitEstablished(t *testing.T, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}
