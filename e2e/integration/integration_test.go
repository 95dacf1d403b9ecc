// Package integration runs sluice's webhooks and controller against a real
// kube-apiserver (envtest). There are no nodes and no Job controller here:
// tests play the kubelet and the Job controller by writing status.
package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/e2e/framework"
)

var env *framework.EnvtestEnv

func TestMain(m *testing.M) {
	var err error
	env, err = framework.StartEnvtest()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping envtest:", err)
	}
	os.Exit(code)
}

// namespace creates a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "it-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	framework.Eventually(t, framework.Timeout, framework.Interval, what, cond)
}

func get(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
}

func TestJobMutatedOnCreate(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	job := utiltesting.MakeJob("train", ns).Run("r1").Inputs("dataset=prep.data").Outputs("model:Model").Obj()
	if err := env.Client.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	get(t, job)
	if !ptr.Deref(job.Spec.Suspend, false) {
		t.Error("a job with upstreams must be created suspended")
	}
	if got := job.Spec.Template.Labels[annotations.TaskLabel]; got != "train" {
		t.Errorf("template task label = %q, want train", got)
	}
	c := job.Spec.Template.Spec.Containers[0]
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	for _, want := range []string{"SLUICE_INPUT_DATASET=/sluice/inputs/dataset", "SLUICE_OUTPUT_MODEL=/sluice/outputs/model", "SLUICE_RUN=r1"} {
		if !strings.Contains(strings.Join(env, " "), want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	if v := job.Spec.Template.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "sluice-r1" {
		t.Errorf("volumes = %+v, want the run's claim sluice-r1", v)
	}
}

func TestPlainJobUntouched(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	job := utiltesting.MakeJob("plain", ns).Obj()
	job.Labels = map[string]string{"team": "a"}
	job.Annotations = map[string]string{annotations.AfterAnnotation: "x"} // not opted in: ignored
	if err := env.Client.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	get(t, job)
	if job.Spec.Suspend != nil && *job.Spec.Suspend {
		t.Error("a job without the pipeline label must not be suspended")
	}
	if len(job.Spec.Template.Spec.Containers[0].Env) != 0 {
		t.Error("a job without the pipeline label must not get env")
	}
}

func TestAdmissionDenials(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cases := map[string]struct {
		obj  client.Object
		want string
	}{
		"malformed inputs": {
			obj:  utiltesting.MakeJob("bad", ns).Inputs("dataset").Obj(),
			want: `admission webhook "jobs.mutate.sluice.dev" denied the request: Job.batch "bad" is invalid: metadata.annotations[sluice.dev/inputs]: Invalid value: "dataset": "dataset": expected name=task.output`,
		},
		"typo of a key": {
			obj:  utiltesting.MakePod("typo", ns).Annotation("sluice.dev/afer", "prep").Obj(),
			want: `metadata.annotations[sluice.dev/afer]: Invalid value: "prep": unknown sluice key; did you mean sluice.dev/after?`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := env.Client.Create(ctx, tc.obj)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("cycle closed by the new task", func(t *testing.T) {
		for _, j := range []*batchv1.Job{utiltesting.MakeJob("x", ns).After("z").Obj(), utiltesting.MakeJob("y", ns).After("x").Obj()} {
			if err := env.Client.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		err := env.Client.Create(ctx, utiltesting.MakeJob("z", ns).After("y").Obj())
		want := `this task would close a dependency cycle in run "p": z -> x -> y -> z`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Create() error = %v, want it to contain %q", err, want)
		}
	})
	t.Run("a group that is full", func(t *testing.T) {
		for _, j := range []*batchv1.Job{
			utiltesting.MakeJob("merge", ns).Run("grp").AfterGroup("shards=2").Obj(),
			utiltesting.MakeJob("shard-1", ns).Run("grp").Group("shards").Obj(),
			utiltesting.MakeJob("shard-2", ns).Run("grp").Group("shards").Obj(),
		} {
			if err := env.Client.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		err := env.Client.Create(ctx, utiltesting.MakeJob("shard-3", ns).Run("grp").Group("shards").Obj())
		want := `metadata.labels[sluice.dev/group]: Invalid value: "shards": group shards of run "grp" is full: task merge waits for 2 tasks of it (sluice.dev/after-group) and it has 2`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Create() error = %v, want it to contain %q", err, want)
		}
		err = env.Client.Create(ctx, utiltesting.MakeJob("report", ns).Run("grp").AfterGroup("shards=3").Obj())
		want = `task merge of run "grp" waits for group shards of 2 tasks; a group has one size`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Create() error = %v, want it to contain %q", err, want)
		}
	})
	t.Run("an after list longer than annotations can hold", func(t *testing.T) {
		// Refused by sluice's mutating webhook, which sees the object before
		// the API server checks the size, with the way out.
		names := make([]string, 10_000)
		for i := range names {
			names[i] = fmt.Sprintf("shard-of-the-training-data-with-a-rather-long-name-%010d", i)
		}
		err := env.Client.Create(ctx, utiltesting.MakeJob("join", ns).Run("long").After(names...).Obj())
		want := `metadata.annotations[sluice.dev/after]: Invalid value: "10000 task names, 606 KiB": an object's annotations hold at most 256 KiB in all; wait for that many tasks as a group instead`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Create() error = %.600v, want it to contain %q", err, want)
		}
	})
	t.Run("each object sees the ones created just before it", func(t *testing.T) {
		// As the documents of one `kubectl apply -f`: no time for an informer
		// to deliver the previous object before the next one is admitted.
		for i := range 30 {
			prep := fmt.Sprintf("prep-%d", i)
			if err := env.Client.Create(ctx, utiltesting.MakeJob(prep, ns).Run("ryw").Outputs("data").Obj()); err != nil {
				t.Fatal(err)
			}
			err := env.Client.Create(ctx, utiltesting.MakeJob(prep+"-copy", ns).Run("ryw").Label(annotations.TaskLabel, prep).Obj())
			if want := `already has this task (Job ` + ns + "/" + prep + ")"; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("duplicate of %s: Create() error = %v, want it to contain %q", prep, err, want)
			}
			err = env.Client.Create(ctx, utiltesting.MakeJob(fmt.Sprintf("train-%d", i), ns).Run("ryw").Inputs("m="+prep+".model").Obj())
			if want := "declares outputs data, not \"model\""; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("input of %s: Create() error = %v, want it to contain %q", prep, err, want)
			}
		}
	})
	t.Run("two objects of one task created at the same moment: one is refused", func(t *testing.T) {
		for i := range 20 {
			task := fmt.Sprintf("t-%d", i)
			errs := make(chan error, 2)
			for _, name := range []string{task + "-a", task + "-b"} {
				go func() {
					errs <- env.Client.Create(ctx, utiltesting.MakeJob(name, ns).Run("same-moment").Label(annotations.TaskLabel, task).Obj())
				}()
			}
			var refused int
			for range 2 {
				if err := <-errs; err != nil {
					if !strings.Contains(err.Error(), "already has this task") {
						t.Fatal(err)
					}
					refused++
				}
			}
			if refused != 1 {
				t.Fatalf("task %s: %d of 2 simultaneous creates refused, want 1", task, refused)
			}
		}
	})
	t.Run("a dry run holds no task name", func(t *testing.T) {
		if err := env.Client.Create(ctx, utiltesting.MakeJob("dry", ns).Run("dry").Obj(), client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, utiltesting.MakeJob("real", ns).Run("dry").Label(annotations.TaskLabel, "dry").Obj()); err != nil {
			t.Fatalf("Create() after a dry run of the same task = %v, want nil", err)
		}
	})
	t.Run("phase forged by a user", func(t *testing.T) {
		job := utiltesting.MakeJob("forged", ns).After("prep").Obj()
		if err := env.Client.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(job.DeepCopy())
		job.Labels[annotations.PhaseLabel] = "Succeeded"
		err := framework.AsUser(t, env.Config, "alice").Patch(ctx, job, patch)
		want := `metadata.labels[sluice.dev/phase]: Forbidden: is set by the sluice controller only (user alice may not set or change it)`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Patch() error = %v, want it to contain %q", err, want)
		}
	})
	t.Run("held step released by a user", func(t *testing.T) {
		job := utiltesting.MakeJob("held", ns).After("prep").Obj()
		if err := env.Client.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(job.DeepCopy())
		job.Spec.Suspend = ptr.To(false)
		err := framework.AsUser(t, env.Config, "alice").Patch(ctx, job, patch)
		want := `spec.suspend: Forbidden: sluice holds task "held" until its upstream tasks allow it to run`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Patch() error = %v, want it to contain %q", err, want)
		}
		pod := utiltesting.MakePod("held-pod", ns).After("prep").Gate("example.com/quota").Obj()
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		patch = client.MergeFrom(pod.DeepCopy())
		pod.Spec.SchedulingGates = nil
		err = framework.AsUser(t, env.Config, "alice").Patch(ctx, pod, patch)
		want = `spec.schedulingGates: Forbidden: sluice holds task "held-pod"`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Patch() of the gates error = %v, want it to contain %q", err, want)
		}
	})
	t.Run("graph key edited after creation", func(t *testing.T) {
		job := utiltesting.MakeJob("train", ns).After("prep").Obj()
		if err := env.Client.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(job.DeepCopy())
		job.Annotations[annotations.AfterAnnotation] = "other"
		err := env.Client.Patch(ctx, job, patch)
		want := `metadata.annotations[sluice.dev/after]: Forbidden: is immutable after creation (was "prep", now "other")`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Patch() error = %v, want it to contain %q", err, want)
		}
	})
}

// setPodPhase plays the kubelet: it finishes a pod.
func setPodPhase(t *testing.T, pod *corev1.Pod, phase corev1.PodPhase, exitCode int32) {
	t.Helper()
	get(t, pod)
	now := metav1.Now()
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "main", Image: "busybox", ImageID: "busybox",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, StartedAt: now, FinishedAt: now}},
	}}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

func phaseOf(t *testing.T, obj client.Object) annotations.Phase {
	get(t, obj)
	return annotations.Phase(obj.GetLabels()[annotations.PhaseLabel])
}

func TestBarePodChain(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	prep := utiltesting.MakePod("prep", ns).Annotation(annotations.OutputsAnnotation, "data").Obj()
	train := utiltesting.MakePod("train", ns).Annotation(annotations.InputsAnnotation, "d=prep.data").Gate("example.com/quota").Obj()
	// Downstream first: out-of-order apply must wait.
	for _, p := range []*corev1.Pod{train, prep} {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	get(t, train)
	if len(train.Spec.SchedulingGates) != 2 {
		t.Fatalf("gates = %+v, want the foreign gate and sluice's", train.Spec.SchedulingGates)
	}
	eventually(t, "the run's artifact claim", func() (bool, error) {
		var pvc corev1.PersistentVolumeClaim
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sluice-p"}, &pvc)
		return err == nil, err
	})
	eventually(t, "prep Running, train Waiting", func() (bool, error) {
		return phaseOf(t, prep) == annotations.PhaseRunning && phaseOf(t, train) == annotations.PhaseWaiting, nil
	})
	setPodPhase(t, prep, corev1.PodSucceeded, 0)
	eventually(t, "train released", func() (bool, error) { return phaseOf(t, train) == annotations.PhaseRunning, nil })
	if g := train.Spec.SchedulingGates; len(g) != 1 || g[0].Name != "example.com/quota" {
		t.Errorf("gates after release = %+v, want only the foreign gate", g)
	}
	if got := train.Annotations[annotations.ReasonAnnotation]; got != "released: upstreams succeeded (prep)" {
		t.Errorf("reason = %q", got)
	}
}

func TestUpstreamFailureHoldsJobs(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	prep := utiltesting.MakePod("prep", ns).Obj()
	train := utiltesting.MakeJob("train", ns).After("prep").Obj()
	eval := utiltesting.MakeJob("eval", ns).After("train").Obj()
	for _, o := range []client.Object{prep, train, eval} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	setPodPhase(t, prep, corev1.PodFailed, 3)
	eventually(t, "train and eval UpstreamFailed", func() (bool, error) {
		return phaseOf(t, train) == annotations.PhaseUpstreamFailed && phaseOf(t, eval) == annotations.PhaseUpstreamFailed, nil
	})
	for _, j := range []*batchv1.Job{train, eval} {
		if !ptr.Deref(j.Spec.Suspend, false) {
			t.Errorf("job %s was unsuspended after its upstream failed", j.Name)
		}
	}
	if phase := phaseOf(t, prep); phase != annotations.PhaseFailed || !strings.Contains(prep.Annotations[annotations.ReasonAnnotation], "exited with code 3") {
		t.Errorf("prep is %s with reason %q, want Failed with the exit code", phase, prep.Annotations[annotations.ReasonAnnotation])
	}
	var evs corev1.EventList
	eventually(t, "an UpstreamFailed event on eval", func() (bool, error) {
		if err := env.Client.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "UpstreamFailed" && e.InvolvedObject.Name == "eval" {
				return true, nil
			}
		}
		return false, nil
	})
}

// warnings collects the warnings the API server returns to a client.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.list
	w.list = nil
	return got
}

// An accelerator that no node offers is admitted with a warning that lists
// what the nodes offer; one a node offers, under any of its names, is not.
func TestAcceleratorWarning(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for _, n := range []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{GenerateName: "it-t4-", Labels: map[string]string{annotations.GPUProductLabel: "Tesla-T4", annotations.GKEAcceleratorLabel: "nvidia-tesla-t4"}}},
		{ObjectMeta: metav1.ObjectMeta{GenerateName: "it-a100-", Labels: map[string]string{annotations.GPUProductLabel: "NVIDIA-A100-SXM4-40GB"}}},
	} {
		if err := env.Client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), n) })
	}
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The manager's node cache sees both nodes: the t4 step gets no warning.
	eventually(t, "a step naming the t4 by its short form is admitted without a warning", func() (bool, error) {
		job := utiltesting.MakeJob("train", ns).Annotation(annotations.AcceleratorAnnotation, "T4").Obj()
		if err := c.Create(ctx, job, client.DryRunAll); err != nil {
			return false, err
		}
		got := w.take()
		return len(got) == 0, fmt.Errorf("warnings %q", got)
	})
	for accel, want := range map[string]string{
		"NVIDIA_TESLA_A100": "",
		"h100": "sluice.dev/accelerator=h100: no node offers accelerator h100; the nodes offer NVIDIA-A100-SXM4-40GB, Tesla-T4, nvidia-tesla-t4; " +
			"the step cannot start until a node that offers it joins",
	} {
		job := utiltesting.MakeJob("train", ns).Annotation(annotations.AcceleratorAnnotation, accel).Obj()
		if err := c.Create(ctx, job, client.DryRunAll); err != nil {
			t.Fatalf("%s: %v", accel, err)
		}
		got := w.take()
		if want == "" && len(got) > 0 || want != "" && (len(got) != 1 || got[0] != want) {
			t.Errorf("%s: warnings %q, want %q", accel, got, want)
		}
	}
}
