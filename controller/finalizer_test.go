package controller

import (
	"context"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// held gives a pod sluice's results finalizer, as the webhook does.
func held(p *corev1.Pod) *corev1.Pod {
	p.Finalizers = append(p.Finalizers, annotations.ResultsFinalizer)
	return p
}

func deleting(p *corev1.Pod) *corev1.Pod {
	p.DeletionTimestamp = &metav1.Time{Time: metav1.Now().Time}
	return p
}

func onNode(p *corev1.Pod) *corev1.Pod { p.Spec.NodeName = "n1"; return p }

func hasResultsFinalizer(p *corev1.Pod) bool {
	return slices.Contains(p.Finalizers, annotations.ResultsFinalizer)
}

func TestFinalizerReconciler(t *testing.T) {
	train := func() *batchv1.Job { return utiltesting.MakeJob("train", "ml").UID("u-train").Obj() }
	recorded := func(j *batchv1.Job, phase annotations.Phase, results string) *batchv1.Job {
		j.Labels[annotations.PhaseLabel] = string(phase)
		if results != "" {
			j.Annotations = map[string]string{annotations.ResultsAnnotation: results}
		}
		return j
	}
	succeeded := func() *corev1.Pod { return held(onNode(finishedPod("train-a", "train", "u-train", "accuracy=0.9"))) }
	running := func(name string) *corev1.Pod {
		return held(utiltesting.MakePod(name, "ml").Label(annotations.TaskLabel, "train").OwnedByJob("train", "u-train").Phase(corev1.PodRunning).Obj())
	}
	neverPulled := held(onNode(utiltesting.MakePod("train-b", "ml").OwnedByJob("train", "u-train").Phase(corev1.PodFailed).Obj()))
	neverPulled.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
	bare := func(phase annotations.Phase) *corev1.Pod {
		return utiltesting.MakePod("eval", "ml").Label(annotations.PhaseLabel, string(phase)).Obj()
	}
	bareDone := held(onNode(bare(annotations.PhaseSucceeded)))
	bareDone.Annotations = map[string]string{annotations.ResultsAnnotation: `{"loss":0.1}`}
	bareDone.Status.Phase = corev1.PodSucceeded
	bareDone.Status.ContainerStatuses = succeeded().Status.ContainerStatuses

	cases := map[string]struct {
		objs     []client.Object
		pod      string
		wantKept bool
	}{
		"a Job's finished pod whose results are not recorded yet is kept": {
			objs: []client.Object{completed(recorded(train(), annotations.PhaseRunning, "")), succeeded()}, pod: "train-a", wantKept: true,
		},
		"once the Job's results are recorded its pod is released": {
			objs: []client.Object{completed(recorded(train(), annotations.PhaseSucceeded, `{"accuracy":0.9}`)), succeeded()}, pod: "train-a",
		},
		"a running pod of a running Job is kept": {
			objs: []client.Object{recorded(train(), annotations.PhaseRunning, ""), onNode(running("train-a"))}, pod: "train-a", wantKept: true,
		},
		"a pod deleted on its node is kept until it terminates": {
			objs: []client.Object{recorded(train(), annotations.PhaseRunning, ""), deleting(onNode(running("train-a")))}, pod: "train-a", wantKept: true,
		},
		"a pod deleted before any node took it is released": {
			objs: []client.Object{recorded(train(), annotations.PhaseRunning, ""), deleting(running("train-a"))}, pod: "train-a",
		},
		"a pod whose image was never pulled is released": {
			objs: []client.Object{failedJob(recorded(train(), annotations.PhaseFailed, "")), neverPulled}, pod: "train-b",
		},
		"the pod of a deleted Job is released": {
			objs: []client.Object{deleting(succeeded())}, pod: "train-a",
		},
		"the pod of an earlier Job of the same name is released": {
			objs: []client.Object{utiltesting.MakeJob("train", "ml").UID("u-other").Obj(), succeeded()}, pod: "train-a",
		},
		"a bare Pod whose results are recorded is released": {
			objs: []client.Object{bareDone}, pod: "eval",
		},
		"a bare Pod decided without running is released when deleted": {
			objs: []client.Object{deleting(held(bare(annotations.PhaseUpstreamFailed)))}, pod: "eval",
		},
		"a bare Pod that is running is kept": {
			objs: []client.Object{held(onNode(bare(annotations.PhaseRunning)))}, pod: "eval", wantKept: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newClient(tc.objs...)
			r := NewFinalizerReconciler(c, 1)
			if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Namespace: "ml", Name: tc.pod}}); err != nil {
				t.Fatal(err)
			}
			var p corev1.Pod
			err := c.Get(context.Background(), client.ObjectKey{Namespace: "ml", Name: tc.pod}, &p)
			switch {
			case apierrors.IsNotFound(err):
				if tc.wantKept {
					t.Errorf("pod %s is gone, want it kept", tc.pod)
				}
			case err != nil:
				t.Fatal(err)
			case hasResultsFinalizer(&p) != tc.wantKept:
				t.Errorf("pod %s has finalizers %v, want %s kept = %v", tc.pod, p.Finalizers, annotations.ResultsFinalizer, tc.wantKept)
			}
		})
	}
}

// A conflict removing the finalizer is not an error: the change that caused
// it brings the pod back.
func TestFinalizerReconcilerConflict(t *testing.T) {
	pod := held(onNode(finishedPod("train-a", "train", "u-train", "")))
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(pod).
		WithInterceptorFuncs(interceptor.Funcs{Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
			return apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "train-a", nil)
		}}).Build()
	if _, err := NewFinalizerReconciler(c, 1).Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pod)}); err != nil {
		t.Errorf("Reconcile() = %v on a conflict, want nil", err)
	}
}

// A bare Pod's finalizer goes in the patch that records its outcome and
// results: no write of its own.
func TestBarePodReleasedWithItsOutcome(t *testing.T) {
	pod := held(onNode(utiltesting.MakePod("eval", "ml").Label(annotations.PhaseLabel, "Running").Phase(corev1.PodSucceeded).Obj()))
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{Message: "loss=0.25", FinishedAt: metav1.Now()}}}}
	var releasedWith []string // the results on the pod after each patch that removed the finalizer
	c := indexedClient().WithObjects(pod).
		WithInterceptorFuncs(interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			before := &corev1.Pod{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), before); err != nil {
				return err
			}
			if err := c.Patch(ctx, obj, p, opts...); err != nil {
				return err
			}
			if after := obj.(*corev1.Pod); hasResultsFinalizer(before) && !hasResultsFinalizer(after) {
				releasedWith = append(releasedWith, after.Annotations[annotations.ResultsAnnotation])
			}
			return nil
		}}).Build()
	r := NewRunReconciler(c, events.NewFakeRecorder(100), Options{})
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Namespace: "ml", Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	got := getPod(t, c, "eval")
	if got.Labels[annotations.PhaseLabel] != string(annotations.PhaseSucceeded) || got.Annotations[annotations.ResultsAnnotation] != `{"loss":0.25}` {
		t.Errorf("pod eval: phase %q, results %q; want Succeeded with {\"loss\":0.25}", got.Labels[annotations.PhaseLabel], got.Annotations[annotations.ResultsAnnotation])
	}
	if hasResultsFinalizer(got) {
		t.Errorf("pod eval still has %s after its outcome was recorded", annotations.ResultsFinalizer)
	}
	if want := []string{`{"loss":0.25}`}; !slices.Equal(releasedWith, want) {
		t.Errorf("the patches that removed the finalizer left results %q, want one patch that recorded %q", releasedWith, want)
	}
}
