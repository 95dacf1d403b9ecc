package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// namespaceUser makes a ServiceAccount in ns that may do everything with
// Jobs and Pods there and nothing anywhere else, as a team's CI identity
// would, and returns a client that authenticates as it (a TokenRequest
// token): the API server's RBAC and sluice's webhooks see that user, not
// an administrator.
func namespaceUser(t *testing.T, ns, name string) (client.Client, string) {
	t.Helper()
	ctx := context.Background()
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"*"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"*"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: name}}},
	}
	for _, o := range objs {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := framework.ServiceAccountConfig(ctx, cluster.Config, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, "system:serviceaccount:" + ns + ":" + name
}

// refused checks that err is a refusal whose message has every one of want.
func refused(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want a refusal saying %q", what, want)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: refused with %q, want it to say %q", what, err, w)
			return
		}
	}
	t.Logf("%s: %v", what, err)
}

// TestUserIdentities: a user allowed Jobs and Pods in namespace A only. It
// cannot touch a run in namespace B, cannot write what only the controller
// writes (phase, results, reason, run-outcome; a phase it gives at creation
// is replaced by the webhook's) nor release a held step (unsuspend a Job,
// take sluice's gate off a bare Pod; her own gate is hers), cannot reference another namespace's task; a run of the same name in A
// is a run of its own, and the webhook injects only A's own claim. B's run
// finishes as if A's user did not exist.
func TestUserIdentities(t *testing.T) {
	ctx := context.Background()
	nsA, _ := setup(t)
	nsB, _ := setup(t)
	alice, aliceName := namespaceUser(t, nsA, "alice")
	create(t,
		job("first", nsB).Outputs("data:Dataset").Sim("duration", "4s").Obj(),
		job("second", nsB).Inputs("data=first.data").Obj(),
	)

	// Namespace B is out of reach.
	refused(t, "creating a step in B", alice.Create(ctx, job("intruder", nsB).After("first").Obj()), "forbidden")
	var second = job("second", nsB).Obj()
	refused(t, "reading B's step", alice.Get(ctx, client.ObjectKeyFromObject(second), second), "forbidden")

	// What only the controller writes, at creation.
	// A phase given at creation is the webhook's to set: a forged one is
	// overwritten with the task's first phase.
	forged := job("forged", nsA).After("up").Label(annotations.PhaseLabel, "Succeeded").Obj()
	if err := alice.Create(ctx, forged); err != nil {
		t.Fatalf("creating a step with a forged phase: %v", err)
	}
	if got := forged.Labels[annotations.PhaseLabel]; got != string(annotations.PhaseWaiting) {
		t.Errorf("a step created with phase Succeeded has phase %q, want %s (the webhook's)", got, annotations.PhaseWaiting)
	}
	if err := alice.Delete(ctx, forged); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{annotations.ResultsAnnotation, annotations.ReasonAnnotation, annotations.RunOutcomeAnnotation} {
		refused(t, "creating a step with "+key,
			alice.Create(ctx, job("forged", nsA).Annotation(key, `{"accuracy":1}`).Obj()),
			key, "set by the sluice controller only")
	}

	// Another namespace's task or volume cannot be named.
	refused(t, "an upstream in B", alice.Create(ctx, job("cross", nsA).After(nsB+"/first").Obj()), annotations.AfterAnnotation)
	refused(t, "an input from B", alice.Create(ctx, job("cross", nsA).Inputs("data="+nsB+"/first.data").Obj()), annotations.InputsAnnotation)

	// A run named like B's, in A: its own graph, its own claim.
	up := job("first", nsA).Outputs("data:Dataset").Sim("duration", "3s").Obj()
	down := job("second", nsA).Inputs("data=first.data").Obj()
	for _, o := range []client.Object{up, down} {
		if err := alice.Create(ctx, o); err != nil {
			t.Fatalf("alice creating %s in A: %v", o.GetName(), err)
		}
	}
	for _, v := range down.Spec.Template.Spec.Volumes {
		switch {
		case v.HostPath != nil:
			t.Errorf("the webhook gave A's step a hostPath volume %s (%s)", v.Name, v.HostPath.Path)
		case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != "sluice-r":
			t.Errorf("the webhook gave A's step claim %q, want its own run's sluice-r", v.PersistentVolumeClaim.ClaimName)
		}
	}

	// A held step: its controller-owned keys and its hold are not hers.
	// (Patches: the Job controller updates a suspended Job's status.)
	held := down.DeepCopy()
	held.Labels[annotations.PhaseLabel] = string(annotations.PhaseSucceeded)
	refused(t, "changing the phase", alice.Patch(ctx, held, client.MergeFrom(down)), "sluice.dev/phase", "set by the sluice controller only")
	for _, key := range []string{annotations.ResultsAnnotation, annotations.ReasonAnnotation, annotations.RunOutcomeAnnotation} {
		held := down.DeepCopy()
		if held.Annotations == nil {
			held.Annotations = map[string]string{}
		}
		held.Annotations[key] = "x"
		refused(t, "setting "+key, alice.Patch(ctx, held, client.MergeFrom(down)), key, "set by the sluice controller only")
	}
	held = down.DeepCopy()
	held.Spec.Suspend = ptr.To(false)
	refused(t, "unsuspending the held step", alice.Patch(ctx, held, client.MergeFrom(down)), "spec.suspend", `sluice holds task "second"`, aliceName)

	// A held bare Pod: she cannot take sluice's scheduling gate off it,
	// neither with a patch nor with an update that keeps only her own gate.
	gated := utiltesting.MakePod("third", nsA).Label(annotations.RunLabel, "r").After("second").
		Gate("example.com/hers").Annotation("sim.sluice.dev/duration", "0s").Obj()
	if err := alice.Create(ctx, gated); err != nil {
		t.Fatalf("alice creating a bare Pod step: %v", err)
	}
	if !annotations.HasGate(&gated.Spec) {
		t.Fatalf("bare Pod step %s has gates %v, want sluice's %s", gated.Name, gated.Spec.SchedulingGates, annotations.UpstreamGate)
	}
	ungated := gated.DeepCopy()
	ungated.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/hers"}}
	refused(t, "removing sluice's gate", alice.Patch(ctx, ungated, client.MergeFrom(gated)),
		"spec.schedulingGates", `sluice holds task "third"`, aliceName)
	latest := &corev1.Pod{}
	if err := alice.Get(ctx, client.ObjectKeyFromObject(gated), latest); err != nil {
		t.Fatal(err)
	}
	latest.Spec.SchedulingGates = ungated.Spec.SchedulingGates
	refused(t, "updating the Pod without sluice's gate", alice.Update(ctx, latest),
		"spec.schedulingGates", `sluice holds task "third"`, aliceName)
	// Her own gate is hers to remove; sluice's stays until second succeeds.
	if err := alice.Get(ctx, client.ObjectKeyFromObject(gated), latest); err != nil {
		t.Fatal(err)
	}
	own := latest.DeepCopy()
	own.Spec.SchedulingGates = slices.DeleteFunc(own.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == "example.com/hers" })
	if err := alice.Patch(ctx, own, client.MergeFrom(latest)); err != nil {
		t.Errorf("alice removing her own gate %s: %v", "example.com/hers", err)
	}

	want := map[string]annotations.Phase{"first": annotations.PhaseSucceeded, "second": annotations.PhaseSucceeded}
	waitPhases(t, nsB, want)
	waitPhases(t, nsA, map[string]annotations.Phase{"first": annotations.PhaseSucceeded, "second": annotations.PhaseSucceeded, "third": annotations.PhaseSucceeded})
	if got := phases(t, nsB); len(got) != 2 {
		t.Errorf("namespace %s has tasks %v, want first and second only", nsB, got)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: nsB, Name: "intruder"}, job("intruder", nsB).Obj()); !apierrors.IsNotFound(err) {
		t.Errorf("B's intruder: %v, want not found", err)
	}
}

// TestBadAnnotations: oversized, deeply nested and binary-garbage values of
// sluice's keys, sent through the real API server (which JSON-encodes what a
// client gives it, as any client would): each step is refused with a message
// that names the key, the manager serves on without a restart, and a run
// that executes throughout finishes as if nothing had happened.
func TestBadAnnotations(t *testing.T) {
	ctx := context.Background()
	ns, _ := setup(t)
	create(t,
		job("up", ns).Outputs("data:Dataset").Sim("duration", "4s").Obj(),
		job("down", ns).Inputs("data=up.data").Obj(),
	)
	nestedWhen := strings.Repeat("(", 5000) + "true" + strings.Repeat(")", 5000)
	garbage := "\x00\x01\x7f\xfe\xff\x80\"\\{"
	cases := []struct {
		name, key, value string
		label            bool
		want             string // besides the key, or "" for the key alone
	}{
		{name: "an after list of 200,000 names", key: annotations.AfterAnnotation, value: strings.Repeat("a,", 100_000) + "a"},
		{name: "a when nested 5,000 deep", key: annotations.WhenAnnotation, value: nestedWhen},
		{name: "a when of 100,000 terms", key: annotations.WhenAnnotation, value: strings.Repeat("true && ", 100_000) + "true"},
		{name: "binary inputs", key: annotations.InputsAnnotation, value: garbage + "=up.data"},
		{name: "binary outputs", key: annotations.OutputsAnnotation, value: garbage},
		{name: "binary after", key: annotations.AfterAnnotation, value: garbage},
		{name: "binary gpu count", key: annotations.GPUAnnotation, value: garbage},
		{name: "binary accelerator", key: annotations.AcceleratorAnnotation, value: "a100" + garbage},
		{name: "binary memory", key: annotations.MemoryAnnotation, value: "1Gi" + garbage},
		{name: "binary start deadline", key: annotations.StartDeadlineAnnotation, value: garbage},
		{name: "binary trigger", key: annotations.TriggerAnnotation, value: garbage},
		{name: "binary run label", key: annotations.RunLabel, value: garbage, label: true},
		{name: "binary group label", key: annotations.GroupLabel, value: garbage, label: true},
		// Over the API server's own 256 KiB for all annotations: it refuses
		// the object after sluice's webhook has mutated it.
		{name: "annotations over 256 KiB", key: "example.com/blob", value: strings.Repeat("x", 300_000), want: "Too long"},
	}
	for i, tc := range cases {
		w := job(fmt.Sprintf("bad-%02d", i), ns).After("up")
		if tc.label {
			w.Label(tc.key, tc.value)
		} else {
			w.Annotation(tc.key, tc.value)
		}
		err := cluster.Client.Create(ctx, w.Obj())
		want := []string{tc.key}
		if tc.want != "" {
			want = []string{tc.want}
		}
		refused(t, tc.name, err, want...)
	}
	if !cluster.Manager.Running() {
		t.Fatal("the manager exited while refusing bad annotations")
	}
	waitPhases(t, ns, map[string]annotations.Phase{"up": annotations.PhaseSucceeded, "down": annotations.PhaseSucceeded})
	if got := phases(t, ns); len(got) != 2 {
		t.Errorf("namespace %s has tasks %v, want up and down only", ns, got)
	}
	t.Logf("%d bad values refused", len(cases))
}
