package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/controller"
	"github.com/sluice-dev/sluice/e2e/framework"
)

// The tests in this file run steps in real containers on the real node
// (hack/realnode.sh): no sim.sluice.dev/* annotation, so the local
// cluster's rule sends them there.

const busybox = "localhost/sluice/busybox:dev"

// realJob is a step of run r that runs script in busybox on the real node.
func realJob(name, ns, script string) *utiltesting.JobWrapper {
	return utiltesting.MakeJob(name, ns).Run("r").Command(busybox, script)
}

// podsOf returns the pods of the task in ns.
func podsOf(t *testing.T, ns, task string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{annotations.TaskLabel: task}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// mainState returns the state of the main container of the task's only pod.
func mainState(t *testing.T, ns, task string) (*corev1.Pod, corev1.ContainerState) {
	t.Helper()
	pods := podsOf(t, ns, task)
	if len(pods) != 1 {
		t.Fatalf("task %s has %d pods, want 1", task, len(pods))
	}
	p := &pods[0]
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "main" {
			return p, cs.State
		}
	}
	t.Fatalf("pod %s has no status for container main", p.Name)
	return nil, corev1.ContainerState{}
}

// assertRealRun checks that the task's pod ran on the real node in a
// container of containerd.
func assertRealRun(t *testing.T, ns, task string) {
	t.Helper()
	p, _ := mainState(t, ns, task)
	if p.Spec.NodeName != framework.RealNode {
		t.Errorf("task %s ran on node %q, want the real node %s", task, p.Spec.NodeName, framework.RealNode)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !strings.HasPrefix(cs.ContainerID, "containerd://") {
			t.Errorf("task %s: container %s has ID %q, want a containerd container", task, cs.Name, cs.ContainerID)
		}
	}
}

func results(t *testing.T, ns, task string) map[string]any {
	t.Helper()
	var j batchv1.Job
	if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: task}, &j); err != nil {
		t.Fatal(err)
	}
	got, err := annotations.UnmarshalResults(j.Annotations[annotations.ResultsAnnotation])
	if err != nil {
		t.Fatalf("results of %s: %v", task, err)
	}
	return got
}

// TestRealArtifacts: an artifact written by one container is read by the
// next through the run's volume, the input is mounted read-only, results
// come from a real termination message, and the downstream container
// started only after the upstream one exited.
func TestRealArtifacts(t *testing.T) {
	ns, _ := setup(t)
	create(t,
		realJob("write", ns, `echo "made by $HOSTNAME" >"$SLUICE_OUTPUT_DATA/hello.txt"; echo "writer=$HOSTNAME" >/dev/termination-log`).
			Outputs("data:Dataset").Obj(),
		realJob("read", ns, `set -e
			content=$(cat "$SLUICE_INPUT_DATA/hello.txt")
			if touch "$SLUICE_INPUT_DATA/x" 2>/tmp/err; then ro=false; else ro=$(grep -c "Read-only file system" /tmp/err || true); fi
			printf 'content=%s\nreadonly=%s\n' "$content" "$ro" >/dev/termination-log`).
			Inputs("data=write.data").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"write": annotations.PhaseSucceeded, "read": annotations.PhaseSucceeded})
	assertRealRun(t, ns, "write")
	assertRealRun(t, ns, "read")

	writer := results(t, ns, "write")["writer"]
	got := results(t, ns, "read")
	if want := "made by " + writer.(string); got["content"] != want {
		t.Errorf("read found %q in the artifact, want %q (written by the upstream pod)", got["content"], want)
	}
	// readonly=1: touch failed with "Read-only file system".
	if got["readonly"] != float64(1) {
		t.Errorf("writing to the input gave readonly=%v, want 1 (EROFS)", got["readonly"])
	}
	_, w := mainState(t, ns, "write")
	_, r := mainState(t, ns, "read")
	if w.Terminated == nil || r.Terminated == nil {
		t.Fatalf("containers not terminated: write %+v, read %+v", w, r)
	}
	if r.Terminated.StartedAt.Before(&w.Terminated.FinishedAt) {
		t.Errorf("read's container started at %s, before write's exited at %s", r.Terminated.StartedAt, w.Terminated.FinishedAt)
	}
}

// TestRealFailure: a container that exits non-zero fails its task, and its
// downstream is never released.
func TestRealFailure(t *testing.T) {
	ns, _ := setup(t)
	create(t,
		realJob("prep", ns, `echo "error=no input" >/dev/termination-log; exit 3`).Obj(),
		realJob("train", ns, `true`).After("prep").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"prep": annotations.PhaseFailed, "train": annotations.PhaseUpstreamFailed})
	assertRealRun(t, ns, "prep")
	_, st := mainState(t, ns, "prep")
	if st.Terminated == nil || st.Terminated.ExitCode != 3 {
		t.Errorf("prep's container state = %+v, want terminated with exit code 3", st)
	}
	if got := results(t, ns, "prep")["error"]; got != "no input" {
		t.Errorf("failed task's results error=%v, want %q from its termination message", got, "no input")
	}
	if pods := podsOf(t, ns, "train"); len(pods) != 0 {
		t.Errorf("downstream of a failed task has %d pods, want none", len(pods))
	}
}

// TestRealGatedPod: a bare Pod held by sluice's scheduling gate starts no
// container until its upstream's container exited.
func TestRealGatedPod(t *testing.T) {
	ns, _ := setup(t)
	ctx := context.Background()
	create(t,
		realJob("slow", ns, `sleep 4`).Obj(),
		utiltesting.MakePod("after-slow", ns).Label(annotations.RunLabel, "r").After("slow").
			Command(busybox, `date +started=%s >/dev/termination-log`).Obj(),
	)
	// While slow runs, the pod stays gated, unscheduled, with no container.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var p corev1.Pod
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "after-slow"}, &p); err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" || len(p.Status.ContainerStatuses) > 0 || len(p.Spec.SchedulingGates) == 0 {
			t.Fatalf("the gated pod moved while its upstream runs: node %q, gates %v, containers %v",
				p.Spec.NodeName, p.Spec.SchedulingGates, p.Status.ContainerStatuses)
		}
		time.Sleep(300 * time.Millisecond)
	}
	waitPhases(t, ns, map[string]annotations.Phase{"slow": annotations.PhaseSucceeded, "after-slow": annotations.PhaseSucceeded})
	assertRealRun(t, ns, "after-slow")
	_, up := mainState(t, ns, "slow")
	_, down := mainState(t, ns, "after-slow")
	if down.Terminated.StartedAt.Before(&up.Terminated.FinishedAt) {
		t.Errorf("the gated pod's container started at %s, before its upstream's exited at %s", down.Terminated.StartedAt, up.Terminated.FinishedAt)
	}
}

// TestRealImageMissing: a step whose image is not on the node is pulled
// from nowhere, and the task says why it does not run; at its start
// deadline it fails with that reason, the Job controller stops the Job, and
// its downstream fails.
func TestRealImageMissing(t *testing.T) {
	ns, _ := setup(t)
	lost := realJob("lost", ns, `true`).Annotation(annotations.StartDeadlineAnnotation, "20s").Obj()
	lost.Spec.Template.Spec.Containers[0].Image = "localhost/sluice/not-there:dev"
	create(t, lost, realJob("next", ns, `true`).After("lost").Obj())
	pulling := func(r string) bool {
		return (strings.Contains(r, "ErrImagePull: ") || strings.Contains(r, "ImagePullBackOff: ")) &&
			strings.Contains(r, "localhost/sluice/not-there:dev")
	}
	waitReason(t, ns, "lost", "ErrImagePull or ImagePullBackOff naming the image", func(r string) bool {
		return pulling(r) && !strings.HasPrefix(r, "did not start")
	})
	waitPhases(t, ns, map[string]annotations.Phase{"lost": annotations.PhaseFailed, "next": annotations.PhaseUpstreamFailed})
	waitReason(t, ns, "lost", "the start deadline's failure with the pull error", func(r string) bool {
		return strings.HasPrefix(r, "did not start within 20s: ") && pulling(r)
	})
	var j batchv1.Job
	// The Job controller fails the Job (for its cut deadline, or for the
	// pod it deleted, whichever it counts first) and removes the pod.
	eventually(t, "the Job controller fails the Job and removes its pod", func() (bool, string) {
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lost"}, &j); err != nil {
			t.Fatal(err)
		}
		failed := false
		for _, c := range j.Status.Conditions {
			failed = failed || c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue
		}
		left := 0
		for _, p := range podsOf(t, ns, "lost") {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodPending {
				left++
			}
		}
		return failed && left == 0, fmt.Sprintf("conditions %v, %d pending pods", j.Status.Conditions, left)
	})
}

// eventually polls cond until it holds, for runTimeout; what it last said
// goes into the failure.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	var last string
	for time.Now().Before(deadline) {
		ok, said := cond()
		if ok {
			return
		}
		last = said
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("after %s, not yet: %s (%s)", runTimeout, what, last)
}

// waitReason waits until the reason recorded on the Job satisfies ok.
func waitReason(t *testing.T, ns, job, want string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	var reason string
	for time.Now().Before(deadline) {
		var j batchv1.Job
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: job}, &j); err != nil {
			t.Fatal(err)
		}
		if reason = j.Annotations[annotations.ReasonAnnotation]; ok(reason) {
			t.Logf("%s: reason %q", job, reason)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("after %s the reason of %s is %q, want %s", runTimeout, job, reason, want)
}

// examplePipeline reads examples/ml-pipeline.yaml as Jobs in namespace ns.
func examplePipeline(t *testing.T, ns string) []*batchv1.Job {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "examples", "ml-pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []*batchv1.Job
	for _, doc := range strings.Split(string(data), "\n---\n") {
		j := &batchv1.Job{}
		if err := yaml.UnmarshalStrict([]byte(doc), j); err != nil {
			t.Fatalf("examples/ml-pipeline.yaml: %v", err)
		}
		j.Namespace = ns
		jobs = append(jobs, j)
	}
	return jobs
}

// TestSeedPipeline runs the seed ML pipeline for real, once with clean data
// (accuracy above 0.9: deploy runs) and once with noisy labels (deploy is
// Skipped, the run still succeeds).
func TestSeedPipeline(t *testing.T) {
	for name, tc := range map[string]struct {
		noise  string
		deploy annotations.Phase
	}{
		"good model is deployed": {noise: "0.05", deploy: annotations.PhaseSucceeded},
		"poor model is skipped":  {noise: "0.45", deploy: annotations.PhaseSkipped},
	} {
		t.Run(name, func(t *testing.T) {
			ns, _ := setup(t)
			jobs := examplePipeline(t, ns)
			for _, j := range jobs {
				if j.Name == "ingest" {
					for i, e := range j.Spec.Template.Spec.Containers[0].Env {
						if e.Name == "NOISE" {
							j.Spec.Template.Spec.Containers[0].Env[i].Value = tc.noise
						}
					}
				}
				create(t, j)
			}
			waitPhases(t, ns, map[string]annotations.Phase{
				"ingest": annotations.PhaseSucceeded, "preprocess": annotations.PhaseSucceeded,
				"train": annotations.PhaseSucceeded, "evaluate": annotations.PhaseSucceeded,
				"deploy": tc.deploy,
			})
			for _, task := range []string{"ingest", "preprocess", "train", "evaluate"} {
				assertRealRun(t, ns, task)
			}
			// The example names no class: the cluster's default, kind's
			// local-path, serves it ReadWriteOnce on the real node.
			var pvc corev1.PersistentVolumeClaim
			if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: annotations.RunVolumeName("churn-demo")}, &pvc); err != nil {
				t.Fatal(err)
			}
			if class := ptr.Deref(pvc.Spec.StorageClassName, ""); class != "local-path" || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
				t.Errorf("the run volume is of class %q with modes %v, want local-path, ReadWriteOnce", class, pvc.Spec.AccessModes)
			}
			pre := results(t, ns, "preprocess")
			if kept, in := pre["rows_kept"].(float64), pre["rows_in"].(float64); kept <= 0 || kept >= in {
				t.Errorf("preprocess kept %v of %v rows, want some dropped and some kept", kept, in)
			}
			if gpu, _ := results(t, ns, "train")["gpu"].(string); !strings.HasPrefix(gpu, "sim-gpu-") {
				t.Errorf("train saw GPU %q, want one of the real node's simulated GPUs", gpu)
			}
			accuracy := results(t, ns, "evaluate")["accuracy"].(float64)
			t.Logf("noise %s: accuracy %.4f, deploy %s", tc.noise, accuracy, tc.deploy)
			if deployed := accuracy >= 0.9; deployed != (tc.deploy == annotations.PhaseSucceeded) {
				t.Errorf("accuracy %.4f with deploy %s: the condition was not applied", accuracy, tc.deploy)
			}
			if tc.deploy == annotations.PhaseSucceeded {
				assertRealRun(t, ns, "deploy")
				if uri, _ := results(t, ns, "deploy")["model_uri"].(string); !strings.HasSuffix(uri, "/deploy/serving/model.json") {
					t.Errorf("deploy published %q, want the serving model's path", uri)
				}
			}
		})
	}
}

// TestSimulationRule: the local cluster's rule holds whatever the pod
// already asks for: annotated pods go to kwok nodes (their node selector and
// tolerations kept and extended), all others to the real node.
func TestSimulationRule(t *testing.T) {
	ns, _ := setup(t)
	mk := func(name string, sim bool) *corev1.Pod {
		p := utiltesting.MakePod(name, ns).Command(busybox, "true").Obj()
		p.Labels = nil // not a sluice step: the rule is the cluster's, not sluice's
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "example.com/any", Operator: corev1.TolerationOpExists}}
		if sim {
			p.Annotations = map[string]string{"sim.sluice.dev/duration": "0s"}
		}
		return p
	}
	create(t, mk("simulated", true), mk("real", false))
	sim, real := waitPodSucceeded(t, ns, "simulated"), waitPodSucceeded(t, ns, "real")
	if !strings.HasPrefix(sim.Spec.NodeName, "sluice-") || sim.Spec.NodeName == framework.RealNode {
		t.Errorf("the simulated pod ran on %q, want a kwok node", sim.Spec.NodeName)
	}
	if sim.Spec.NodeSelector["kubernetes.io/os"] != "linux" || len(sim.Spec.Tolerations) < 2 {
		t.Errorf("the simulated pod lost its own node selector or tolerations: %v, %v", sim.Spec.NodeSelector, sim.Spec.Tolerations)
	}
	if real.Spec.NodeName != framework.RealNode || !strings.HasPrefix(real.Status.ContainerStatuses[0].ContainerID, "containerd://") {
		t.Errorf("the plain pod ran on %q (container %q), want a containerd container on %s",
			real.Spec.NodeName, real.Status.ContainerStatuses[0].ContainerID, framework.RealNode)
	}
}

// waitPodSucceeded waits until the pod succeeded and returns it; a pod that
// failed, or is not done within runTimeout, fails the test.
func waitPodSucceeded(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	for {
		p := &corev1.Pod{}
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodSucceeded {
			return p
		}
		if p.Status.Phase == corev1.PodFailed || time.Now().After(deadline) {
			t.Fatalf("pod %s is %s on %q, want Succeeded within %s; containers %+v",
				name, p.Status.Phase, p.Spec.NodeName, runTimeout, p.Status.ContainerStatuses)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestRealReadWriteOnce: on kind's local-path class (ReadWriteOnce only)
// the run's volume is asked ReadWriteOnce, lands on the real node, and the
// artifacts pass as on shared storage.
func TestRealReadWriteOnce(t *testing.T) {
	ns, _ := setup(t)
	ctx := context.Background()
	create(t,
		realJob("write", ns, `echo 42 >"$SLUICE_OUTPUT_DATA/answer"`).Outputs("data:Dataset").
			Annotation(annotations.StorageClassAnnotation, "local-path").Obj(),
		realJob("read", ns, `echo "answer=$(cat "$SLUICE_INPUT_DATA/answer")" >/dev/termination-log`).Inputs("data=write.data").
			Annotation(annotations.StorageClassAnnotation, "local-path").Obj(),
	)
	waitPhases(t, ns, map[string]annotations.Phase{"write": annotations.PhaseSucceeded, "read": annotations.PhaseSucceeded})
	if got := results(t, ns, "read")["answer"]; got != float64(42) {
		t.Errorf("read found answer=%v, want 42", got)
	}
	var pvc corev1.PersistentVolumeClaim
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: annotations.RunVolumeName("r")}, &pvc); err != nil {
		t.Fatal(err)
	}
	if len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("run volume access modes %v, want [ReadWriteOnce] on local-path", pvc.Spec.AccessModes)
	}
	var pv corev1.PersistentVolume
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		t.Fatal(err)
	}
	if a := pv.Spec.NodeAffinity; a == nil || a.Required == nil || !strings.Contains(a.Required.String(), framework.RealNode) {
		t.Errorf("PV %s node affinity %v, want it pinned to %s", pv.Name, pv.Spec.NodeAffinity, framework.RealNode)
	}
}

// TestRealClaimNotServed: a run volume no provisioner can serve shows on the
// released task, naming the volume and why.
func TestRealClaimNotServed(t *testing.T) {
	ns, _ := setup(t)
	create(t, realJob("write", ns, `true`).Outputs("data:Dataset").
		Annotation(annotations.StorageClassAnnotation, "no-such-class").Obj())
	waitReason(t, ns, "write", "the volume and its missing class named", func(r string) bool {
		return r == `volume sluice-r: StorageClass "no-such-class" does not exist, so the claim stays Pending and the pod unscheduled`
	})
}

// TestRealClaimRefusedByProvisioner: a class whose provisioner refuses the
// access mode sluice asks for (local-path serves ReadWriteOnce only; the
// class says ReadWriteMany): the released task's reason quotes the
// provisioner's own error from the claim's events, the task fails with it
// at its start deadline, and its downstream does not run.
func TestRealClaimRefusedByProvisioner(t *testing.T) {
	ctx := context.Background()
	ns, _ := setup(t)
	class := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ns + "-rwx",
			Annotations: map[string]string{controller.AccessModeAnnotation: string(corev1.ReadWriteMany)},
		},
		Provisioner:       "rancher.io/local-path",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if err := cluster.Client.Create(ctx, class); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(context.Background(), class) })
	create(t,
		realJob("write", ns, `true`).Outputs("data:Dataset").
			Annotation(annotations.StorageClassAnnotation, class.Name).
			Annotation(annotations.StartDeadlineAnnotation, "30s").Obj(),
		realJob("read", ns, `true`).Inputs("data=write.data").Obj(),
	)
	want := fmt.Sprintf(`volume sluice-r (ReadWriteMany): provisioner rancher.io/local-path: failed to provision volume with StorageClass %q: `, class.Name)
	waitReason(t, ns, "write", "the provisioner's error quoted", func(r string) bool {
		return strings.HasPrefix(r, want) && strings.HasSuffix(r, "ReadWriteOnce and ReadWriteOncePod (1.22+) access modes")
	})
	waitPhases(t, ns, map[string]annotations.Phase{"write": annotations.PhaseFailed, "read": annotations.PhaseUpstreamFailed})
	var j batchv1.Job
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "write"}, &j); err != nil {
		t.Fatal(err)
	}
	if r := j.Annotations[annotations.ReasonAnnotation]; !strings.HasPrefix(r, "did not start within 30s: "+want) || strings.HasSuffix(r, "...") {
		t.Errorf("write failed with reason %q, want the deadline's and the provisioner's whole error (%q...)", r, want)
	}
}

// TestSluiceImages: sluice's own images, built without a container engine
// (make images), start on the real node as the chart runs them: non-root,
// read-only root filesystem, no capabilities.
func TestSluiceImages(t *testing.T) {
	ns, _ := setup(t)
	for _, name := range []string{"webhook", "scheduler"} {
		p := utiltesting.MakePod(name, ns).Obj()
		p.Labels = nil
		p.Spec.Containers[0].Image = "localhost/sluice/" + name + ":dev"
		p.Spec.Containers[0].Args = []string{"--help"}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), ReadOnlyRootFilesystem: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
		create(t, p)
	}
	for _, name := range []string{"webhook", "scheduler"} {
		if p := waitPodSucceeded(t, ns, name); p.Spec.NodeName != framework.RealNode {
			t.Errorf("image localhost/sluice/%s:dev ran on %s, want %s", name, p.Spec.NodeName, framework.RealNode)
		}
	}
}

// TestRealTerminationMessageLimit: the kubelet keeps the last 4096 bytes of
// a termination message, silently. Results of 4095 bytes are read; one of
// 4096 bytes may have lost its beginning and is refused, and one of 4097
// bytes arrives as 4096 bytes without its first byte and is refused too. The
// steps themselves succeed.
func TestRealTerminationMessageLimit(t *testing.T) {
	ns, _ := setup(t)
	const head = "accuracy=0.9\npad=" // 17 bytes
	msg := func(n int) string {
		return fmt.Sprintf(`printf '%s' >/dev/termination-log; head -c %d /dev/zero | tr '\0' x >>/dev/termination-log`, strings.ReplaceAll(head, "\n", `\n`), n-len(head))
	}
	create(t, realJob("m4095", ns, msg(4095)).Obj(), realJob("m4096", ns, msg(4096)).Obj(), realJob("m4097", ns, msg(4097)).Obj())
	waitPhases(t, ns, map[string]annotations.Phase{"m4095": annotations.PhaseSucceeded, "m4096": annotations.PhaseSucceeded, "m4097": annotations.PhaseSucceeded})

	if got := results(t, ns, "m4095"); got["accuracy"] != 0.9 || len(fmt.Sprint(got["pad"])) != 4095-len(head) {
		t.Errorf("results of the 4095-byte message: accuracy %v, pad of %d bytes; want 0.9 and %d", got["accuracy"], len(fmt.Sprint(got["pad"])), 4095-len(head))
	}
	for task, first := range map[string]string{"m4096": "accuracy=", "m4097": "ccuracy="} {
		_, state := mainState(t, ns, task)
		if m := state.Terminated.Message; len(m) != 4096 || !strings.HasPrefix(m, first) {
			t.Errorf("%s: the kubelet kept %d bytes starting %.12q, want 4096 starting %q", task, len(m), m, first)
		}
		if got := results(t, ns, task); len(got) != 0 {
			t.Errorf("%s: results %v, want none", task, got)
		}
		waitReason(t, ns, task, "the refused message in the reason", func(r string) bool {
			return strings.Contains(r, "termination message is 4096 bytes; the kubelet keeps only the last 4096 bytes")
		})
	}
}
