// Package install tests sluice installed the way an admin installs it:
// make dev-up's `helm upgrade --install` of manifests/charts/sluice, the
// manager's two replicas and the scheduler running as pods on the local
// cluster's real node from sluice's own images, the API server calling the
// webhook through its Service. It runs on a cluster of its own
// (sluice-install, state in .kwok-install), after the e2e cluster's tests.
package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

const (
	clusterName = "sluice-install"
	release     = "sluice"
	releaseNS   = "sluice-system"
	// The chart's objects for release "sluice" (its fullname is "sluice").
	managerName   = "sluice-webhook"
	schedulerName = "sluice-scheduler"
	certSecret    = "sluice-webhook-cert"
	leaseName     = "sluice-controller.sluice.dev"
	// The binaries in sluice's images (hack/images.sh).
	managerBinary   = "/usr/local/bin/sluice-webhook"
	schedulerBinary = "/usr/local/bin/sluice-scheduler"
	timeout         = 2 * time.Minute
)

var (
	kube     client.Client
	stateDir string
)

func TestMain(m *testing.M) {
	framework.SetupLogging()
	stateDir = filepath.Join(framework.RepoRoot(), ".kwok-install")
	code := 1
	if err := hack("dev-down.sh"); err != nil {
		fmt.Fprintln(os.Stderr, "hack/dev-down.sh:", err)
	} else if err := install(); err != nil {
		fmt.Fprintln(os.Stderr, "installing sluice:", err)
	} else {
		code = m.Run()
		// The pods ran with only the chart's RBAC: a refused request in
		// the logs of those still there means the chart grants too little.
		if refused := refusals(); len(refused) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: sluice's pods were refused requests:\n%s\n", strings.Join(refused, "\n"))
			code = 1
		}
	}
	if os.Getenv("SLUICE_E2E_KEEP") == "" {
		if err := hack("dev-down.sh"); err != nil {
			fmt.Fprintln(os.Stderr, "hack/dev-down.sh:", err)
		}
	}
	os.Exit(code)
}

// hack runs a script of hack/ against this package's cluster.
func hack(script string) error {
	_, err := hackOutput(script)
	return err
}

// hackOutput runs a script of hack/ against this package's cluster, with
// more environment variables, its output on stderr, and returns that
// output too.
func hackOutput(script string, env ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(framework.RepoRoot(), "hack", script))
	cmd.Env = append(append(os.Environ(), "SLUICE_CLUSTER="+clusterName, "SLUICE_STATE_DIR="+stateDir), env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = io.MultiWriter(os.Stderr, &out)
	err := cmd.Run()
	return out.String(), err
}

// admitsAfter is dev-up's report of how long after helm install the first
// sluice Job was admitted.
var admitsAfter = regexp.MustCompile(`sluice admits Jobs \d+s after helm upgrade --install`)

// install brings the cluster up with make dev-up's own script, which
// installs sluice from the chart, and connects to it.
func install() error {
	start := time.Now()
	out, err := hackOutput("dev-up.sh")
	if err != nil {
		return fmt.Errorf("hack/dev-up.sh: %w", err)
	}
	fmt.Fprintf(os.Stderr, "install: dev-up took %s; %s\n", time.Since(start).Round(time.Second), admitsAfter.FindString(out))
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(stateDir, "kubeconfig"))
	if err != nil {
		return err
	}
	kube, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	return err
}

// refusals returns the lines of the release's container logs (on the
// real node, kept by the kubelet while their pods exist) that report a
// request the API server refused for lack of permission.
func refusals() []string {
	files, _ := filepath.Glob(filepath.Join(stateDir, "node", "var", "log", "pods", releaseNS+"_*", "*", "*.log"))
	var lines []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				lines = append(lines, filepath.Base(filepath.Dir(filepath.Dir(f)))+": "+line)
			}
		}
	}
	return lines
}

// helm runs helm against the cluster.
func helm(t *testing.T, args ...string) {
	t.Helper()
	if out, err := framework.Helm(append(args, "--kubeconfig", filepath.Join(stateDir, "kubeconfig"))...); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// eventually polls cond every 100 ms until it is true or timeout passes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	framework.Eventually(t, timeout, 100*time.Millisecond, what, cond)
}

// namespace makes a namespace for one test, deleted when it ends.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "install-"}}
	if err := kube.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.Delete(context.Background(), ns) })
	return ns.Name
}

// simJob is a step of run "r" that kwok simulates for d.
func simJob(name, ns, run string, d time.Duration, after ...string) *batchv1.Job {
	w := utiltesting.MakeJob(name, ns).Pipeline("install").Run(run).Sim("duration", d.String())
	if len(after) > 0 {
		w.After(after...)
	}
	return w.Obj()
}

// podsOf returns the release's pods of a component (webhook, scheduler).
func podsOf(ctx context.Context, component string) ([]corev1.Pod, error) {
	var list corev1.PodList
	err := kube.List(ctx, &list, client.InNamespace(releaseNS),
		client.MatchingLabels{"app.kubernetes.io/instance": release, "app.kubernetes.io/component": component})
	return list.Items, err
}

// webhookConfigurations returns the release's webhook configurations.
func webhookConfigurations(t *testing.T) (*admissionregv1.MutatingWebhookConfiguration, *admissionregv1.ValidatingWebhookConfiguration) {
	t.Helper()
	m, v := &admissionregv1.MutatingWebhookConfiguration{}, &admissionregv1.ValidatingWebhookConfiguration{}
	for _, o := range []client.Object{m, v} {
		if err := kube.Get(context.Background(), client.ObjectKey{Name: release}, o); err != nil {
			t.Fatal(err)
		}
	}
	return m, v
}

// clientConfigs returns the client configurations of a webhook
// configuration's webhooks.
func clientConfigs(c client.Object) []admissionregv1.WebhookClientConfig {
	var out []admissionregv1.WebhookClientConfig
	switch c := c.(type) {
	case *admissionregv1.MutatingWebhookConfiguration:
		for _, w := range c.Webhooks {
			out = append(out, w.ClientConfig)
		}
	case *admissionregv1.ValidatingWebhookConfiguration:
		for _, w := range c.Webhooks {
			out = append(out, w.ClientConfig)
		}
	}
	return out
}

// managerPods returns the manager's pods that are not terminating, and
// which of them are ready.
func managerPods(ctx context.Context) (pods []corev1.Pod, ready []string, err error) {
	all, err := podsOf(ctx, "webhook")
	if err != nil {
		return nil, nil, err
	}
	for _, p := range all {
		if p.DeletionTimestamp != nil {
			continue
		}
		pods = append(pods, p)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = append(ready, p.Name)
			}
		}
	}
	return pods, ready, nil
}

// leader is the manager pod that holds the controller's Lease, and the
// holder's identity (which a restarted container changes).
func leader(ctx context.Context) (pod, identity string, err error) {
	var lease coordinationv1.Lease
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: leaseName}, &lease); err != nil {
		return "", "", err
	}
	// controller-runtime's identity is <hostname>_<uuid>; a pod's hostname is its name.
	identity = ptr.Deref(lease.Spec.HolderIdentity, "")
	pod, _, _ = strings.Cut(identity, "_")
	return pod, identity, nil
}

// phases returns each task's phase in ns.
func phases(ctx context.Context, ns string) (map[string]annotations.Phase, error) {
	var jobs batchv1.JobList
	if err := kube.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	got := map[string]annotations.Phase{}
	for _, j := range jobs.Items {
		got[j.Labels[annotations.TaskLabel]] = annotations.Phase(j.Labels[annotations.PhaseLabel])
	}
	return got, nil
}

// waitSucceeded waits until every task of ns has succeeded.
func waitSucceeded(t *testing.T, ns string, tasks ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("tasks %v of %s to succeed", tasks, ns), func() (bool, error) {
		got, err := phases(context.Background(), ns)
		if err != nil {
			return false, err
		}
		for _, task := range tasks {
			if got[task] != annotations.PhaseSucceeded {
				return false, fmt.Errorf("phases %v", got)
			}
		}
		return true, nil
	})
}

// TestInstalled: what dev-up installed is what the chart promises. Two
// manager replicas run as pods on the real node and are ready, one leads;
// the scheduler runs; the webhook configurations call the chart's Service;
// the release namespace enforces the restricted Pod Security Standard
// (a pod that breaks it is refused there: the chart's pods passed it).
func TestInstalled(t *testing.T) {
	ctx := context.Background()
	pods, ready, err := managerPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 || len(ready) != 2 {
		t.Fatalf("manager pods %d, ready %v; want 2 ready", len(pods), ready)
	}
	lead, _, err := leader(ctx)
	if err != nil || !slices.Contains(ready, lead) {
		t.Errorf("the controller's Lease is held by %q (%v), want one of %v", lead, err, ready)
	}
	var scheduler appsv1.Deployment
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: schedulerName}, &scheduler); err != nil || scheduler.Status.ReadyReplicas != 1 {
		t.Errorf("scheduler Deployment: %v, ready replicas %d; want 1", err, scheduler.Status.ReadyReplicas)
	}
	for _, p := range pods {
		if p.Spec.NodeName != framework.RealNode {
			t.Errorf("manager pod %s runs on %s, want the real node %s", p.Name, p.Spec.NodeName, framework.RealNode)
		}
		pid, err := framework.PodProcess(managerBinary, p.Name)
		if err != nil {
			t.Errorf("manager pod %s: %v", p.Name, err)
			continue
		}
		rss, peak, _ := framework.ProcessMemory(pid)
		t.Logf("manager pod %s (leader %v): RSS %.0f MiB, peak %.0f MiB", p.Name, p.Name == lead, rss, peak)
	}
	if pods, err := podsOf(ctx, "scheduler"); err == nil && len(pods) == 1 {
		if pid, err := framework.PodProcess(schedulerBinary, pods[0].Name); err == nil {
			rss, peak, _ := framework.ProcessMemory(pid)
			t.Logf("scheduler pod %s: RSS %.0f MiB, peak %.0f MiB", pods[0].Name, rss, peak)
		}
	}

	mutating, validating := webhookConfigurations(t)
	for _, wh := range append(clientConfigs(mutating), clientConfigs(validating)...) {
		if wh.URL != nil || wh.Service == nil || wh.Service.Name != managerName || wh.Service.Namespace != releaseNS {
			t.Errorf("a webhook calls %+v, want Service %s/%s", wh, releaseNS, managerName)
		}
	}

	var ns corev1.Namespace
	if err := kube.Get(ctx, client.ObjectKey{Name: releaseNS}, &ns); err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s labels %v (%v): want pod-security.kubernetes.io/enforce=restricted", releaseNS, ns.Labels, err)
	}
	root := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "not-restricted", Namespace: releaseNS},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "localhost/sluice/busybox:dev"}}},
	}
	err = kube.Create(ctx, root, client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity \"restricted") {
		t.Errorf("a pod with no securityContext in %s: %v; want it refused by the restricted Pod Security Standard", releaseNS, err)
	}
}

// TestReadyOnlyWithCertificate: both replicas are replaced while the
// certificate Secret and the caBundles are emptied, so that the new ones
// must issue a CA and certificate again. At no moment is a new replica
// ready without its certificate in place (the Secret holds it and both
// configurations' caBundles carry its CA); until one is, sluice Jobs are
// refused with a message that names sluice, and a plain Job is admitted
// all the while.
func TestReadyOnlyWithCertificate(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	old, _, err := managerPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: certSecret}, &secret); err != nil {
		t.Fatal(err)
	}
	oldCA := secret.Data["ca.crt"]
	secret.Data = nil
	if err := kube.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	mutating, validating := webhookConfigurations(t)
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].ClientConfig.CABundle = nil
	}
	for i := range validating.Webhooks {
		validating.Webhooks[i].ClientConfig.CABundle = nil
	}
	for _, o := range []client.Object{mutating, validating} {
		if err := kube.Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range old {
		if err := kube.Delete(ctx, &old[i], client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}

	var refusals, readySamples int
	eventually(t, "two new manager replicas to be ready and a sluice Job admitted", func() (bool, error) {
		pods, ready, err := managerPods(ctx)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if slices.ContainsFunc(old, func(o corev1.Pod) bool { return o.UID == p.UID }) {
				return false, fmt.Errorf("old pod %s still listed", p.Name)
			}
		}
		if len(ready) > 0 {
			readySamples++
			if why := certificateMissing(ctx); why != "" {
				t.Errorf("replicas %v are ready, but %s", ready, why)
			}
		}
		i := refusals + readySamples
		plain := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("plain-%d", i), Namespace: ns},
			Spec: simJob("x", ns, "x", 0).Spec}
		if err := kube.Create(ctx, plain, client.DryRunAll); err != nil {
			t.Errorf("a Job without sluice's labels was refused: %v", err)
		}
		err = kube.Create(ctx, simJob(fmt.Sprintf("step-%d", i), ns, fmt.Sprintf("r%d", i), 0), client.DryRunAll)
		if err != nil {
			refusals++
			if !strings.Contains(err.Error(), "sluice") {
				t.Errorf("a sluice Job was refused with %q, which does not name sluice", err)
			}
			return false, err
		}
		return len(ready) == 2, nil
	})
	// Both replicas serve a certificate of the new CA, for the Service's name.
	var secret2 corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: certSecret}, &secret2); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret2.Data["ca.crt"]) || bytes.Equal(secret2.Data["ca.crt"], oldCA) {
		t.Errorf("after the Secret was emptied, its ca.crt is not a new CA")
	}
	pods, _, err := managerPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", net.JoinHostPort(p.Status.PodIP, "9443"),
			&tls.Config{RootCAs: roots, ServerName: managerName + "." + releaseNS + ".svc"})
		if err != nil {
			t.Errorf("replica %s: its certificate does not verify against the Secret's CA: %v", p.Name, err)
			continue
		}
		conn.Close()
	}
	// The replicas stay ready with their certificate.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, ready, err := managerPods(ctx); err == nil && len(ready) > 0 {
			readySamples++
			if why := certificateMissing(ctx); why != "" {
				t.Errorf("replicas %v are ready, but %s", ready, why)
			}
		}
	}
	t.Logf("sluice Jobs refused %d times while no replica was ready; %d samples with a replica ready, each with its certificate in place", refusals, readySamples)
}

// certificateMissing says what is missing for a ready replica: the
// certificate in the Secret, or its CA in a caBundle; "" if nothing.
func certificateMissing(ctx context.Context) string {
	var secret corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: certSecret}, &secret); err != nil {
		return err.Error()
	}
	ca := secret.Data["ca.crt"]
	if len(secret.Data["tls.crt"]) == 0 || len(secret.Data["tls.key"]) == 0 || len(ca) == 0 {
		return "Secret " + certSecret + " holds no certificate"
	}
	m := &admissionregv1.MutatingWebhookConfiguration{}
	v := &admissionregv1.ValidatingWebhookConfiguration{}
	for _, o := range []client.Object{m, v} {
		if err := kube.Get(ctx, client.ObjectKey{Name: release}, o); err != nil {
			return err.Error()
		}
		for _, c := range clientConfigs(o) {
			if !bytes.Contains(c.CABundle, bytes.TrimSpace(ca)) {
				return fmt.Sprintf("a caBundle of %T %s lacks the Secret's CA", o, release)
			}
		}
	}
	return ""
}

// TestLeaderKilled: the leading replica's process is killed (SIGKILL: no
// Lease released, no request finished) in the middle of a run; once the
// Lease expires another holder takes it (the other replica, or the killed
// container restarted by the kubelet) and the run finishes.
func TestLeaderKilled(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	chain := []string{"a", "b", "c", "d", "e", "f"}
	for i, task := range chain {
		var after []string
		if i > 0 {
			after = []string{chain[i-1]}
		}
		if err := kube.Create(ctx, simJob(task, ns, "chain", 2*time.Second, after...)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "task b to succeed", func() (bool, error) {
		got, err := phases(ctx, ns)
		return got["b"] == annotations.PhaseSucceeded, err
	})
	lead, identity, err := leader(ctx)
	if err != nil || lead == "" {
		t.Fatalf("the leader: %q, %v", lead, err)
	}
	pid, err := framework.PodProcess(managerBinary, lead)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(pid)
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the leader %s (pid %s): %v", lead, pid, err)
	}
	killed := time.Now()
	var took time.Duration
	eventually(t, "another holder of the controller's Lease", func() (bool, error) {
		_, now, err := leader(ctx)
		took = time.Since(killed)
		return now != "" && now != identity, err
	})
	waitSucceeded(t, ns, chain...)
	now, _, _ := leader(ctx)
	t.Logf("leader %s killed; %s leads after %s; the run finished %s after the kill",
		lead, now, took.Round(100*time.Millisecond), time.Since(killed).Round(100*time.Millisecond))
	eventually(t, "the killed container to be restarted", func() (bool, error) {
		var p corev1.Pod
		err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: lead}, &p)
		cs := p.Status.ContainerStatuses
		return err == nil && len(cs) == 1 && cs[0].RestartCount > 0 && cs[0].Ready, err
	})
}

// tally is what a client applying sluice Jobs saw: how many were created,
// and the errors of those refused.
type tally struct {
	created int
	refused []string
}

// applyEvery100ms creates a sluice Job (a run of one simulated step) in ns
// every 100 ms, as a client would throughout an upgrade or a certificate
// renewal, until the returned function is called, which gives the tally.
func applyEvery100ms(ctx context.Context, ns string) func() tally {
	stop := make(chan struct{})
	done := make(chan tally)
	go func() {
		var n tally
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- n
				return
			case <-tick.C:
			}
			if err := kube.Create(ctx, simJob(fmt.Sprintf("s%d", i), ns, fmt.Sprintf("r%d", i), 0)); err != nil {
				n.refused = append(n.refused, err.Error())
			} else {
				n.created++
			}
		}
	}()
	return func() tally {
		close(stop)
		return <-done
	}
}

// TestUpgradeRolls: `helm upgrade` changing a value rolls both replicas
// while a client applies a sluice Job every 100 ms: none is refused.
func TestUpgradeRolls(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	before, _, err := managerPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The replicas about to be replaced ran the tests before this one.
	if refused := refusals(); len(refused) > 0 {
		t.Errorf("sluice's pods were refused requests:\n%s", strings.Join(refused, "\n"))
	}
	applied := applyEvery100ms(ctx, ns)
	var secretBefore, secretAfter corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: certSecret}, &secretBefore); err != nil {
		t.Fatal(err)
	}
	mBefore, vBefore := webhookConfigurations(t)
	helm(t, "upgrade", release, framework.ChartDir(), "-n", releaseNS, "--reuse-values", "--set", "webhook.logLevel=1")
	// What the manager wrote and the chart does not render survives the
	// upgrade (read at once: the manager would repair it within 30 s).
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: certSecret}, &secretAfter); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ca.crt", "ca.key", "tls.crt", "tls.key"} {
		if len(secretBefore.Data[k]) == 0 || !bytes.Equal(secretBefore.Data[k], secretAfter.Data[k]) {
			t.Errorf("certificate Secret key %s changed or is empty across helm upgrade", k)
		}
	}
	mAfter, vAfter := webhookConfigurations(t)
	if !slices.EqualFunc(append(clientConfigs(mBefore), clientConfigs(vBefore)...), append(clientConfigs(mAfter), clientConfigs(vAfter)...),
		func(a, b admissionregv1.WebhookClientConfig) bool {
			return len(a.CABundle) > 0 && bytes.Equal(a.CABundle, b.CABundle)
		}) {
		t.Errorf("a caBundle changed or is empty across helm upgrade")
	}
	eventually(t, "the manager's rollout", func() (bool, error) {
		var d appsv1.Deployment
		if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: managerName}, &d); err != nil {
			return false, err
		}
		pods, ready, err := managerPods(ctx)
		rolled := d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 &&
			d.Status.Replicas == 2 && len(pods) == 2 && len(ready) == 2
		return rolled, err
	})
	time.Sleep(3 * time.Second)
	n := applied()
	after, _, _ := managerPods(ctx)
	for _, p := range after {
		if slices.ContainsFunc(before, func(o corev1.Pod) bool { return o.UID == p.UID }) {
			t.Errorf("pod %s was not replaced by the upgrade", p.Name)
		}
		if !slices.Contains(p.Spec.Containers[0].Args, "--v=1") {
			t.Errorf("pod %s runs with %v, want the upgraded --v=1", p.Name, p.Spec.Containers[0].Args)
		}
	}
	if len(n.refused) > 0 || n.created < 20 {
		t.Errorf("during the upgrade %d sluice Jobs were created and %d refused: %s", n.created, len(n.refused), strings.Join(n.refused, "\n"))
	}
	t.Logf("during the upgrade %d sluice Jobs were created, none refused", n.created)
}

// TestMissingImage: an install asking for an image the node does not have
// fails at once, naming the image and what to do; the replicas already
// running go on admitting, and the next dev-up repairs the release.
func TestMissingImage(t *testing.T) {
	out, err := hackOutput("dev-up.sh", "SLUICE_HELM_ARGS=--set-string image.webhook.tag=missing")
	if err == nil {
		t.Fatal("dev-up installed an image that is not on the node")
	}
	if !strings.Contains(out, `localhost/sluice/webhook:missing`) || !strings.Contains(out, "run make images") {
		t.Errorf("dev-up failed without naming the missing image and the fix:\n%s", out)
	}
	ns := namespace(t)
	if err := kube.Create(context.Background(), simJob("meanwhile", ns, "m", 0)); err != nil {
		t.Errorf("with the upgrade stuck on a missing image, a sluice Job was refused: %v", err)
	}
	if err := hack("dev-up.sh"); err != nil {
		t.Fatalf("dev-up did not repair the release: %v", err)
	}
	waitSucceeded(t, ns, "meanwhile")
}

// TestUninstallLeavesStepsAlone runs last: `helm uninstall` while a real
// container runs a step. The step runs to its end; its downstream step is
// not released (nothing is left to release it) until sluice is installed
// again, which picks the run up and finishes it.
func TestUninstallLeavesStepsAlone(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	long := utiltesting.MakeJob("long", ns).Pipeline("install").Run("u").
		Command("localhost/sluice/busybox:dev", "sleep 8; echo done").Obj()
	next := simJob("next", ns, "u", 0, "long")
	for _, j := range []*batchv1.Job{long, next} {
		if err := kube.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the long step's container to run", func() (bool, error) {
		var pods corev1.PodList
		if err := kube.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"job-name": "long"}); err != nil || len(pods.Items) == 0 {
			return false, err
		}
		cs := pods.Items[0].Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil, nil
	})
	helm(t, "uninstall", release, "-n", releaseNS, "--wait")
	eventually(t, "the long step's Job to complete without sluice", func() (bool, error) {
		var j batchv1.Job
		err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "long"}, &j)
		return j.Status.Succeeded == 1, err
	})
	time.Sleep(3 * time.Second)
	var held batchv1.Job
	if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "next"}, &held); err != nil {
		t.Fatal(err)
	}
	if !ptr.Deref(held.Spec.Suspend, false) {
		t.Fatalf("the downstream step was released with sluice uninstalled")
	}
	if err := hack("dev-up.sh"); err != nil {
		t.Fatalf("installing sluice again: %v", err)
	}
	waitSucceeded(t, ns, "long", "next")
}
