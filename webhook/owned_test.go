package webhook

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

const controllerSA = "system:serviceaccount:sluice:sluice"

func TestOnlyTheControllerReleasesJobs(t *testing.T) {
	w := &JobWebhook{validator: validator{controllerUser: controllerSA}}
	job := func(phase annotations.Phase, suspend bool) *batchv1.Job {
		j := utiltesting.MakeJob("train", "ml").After("prep").Label(annotations.PhaseLabel, string(phase)).
			Annotation(annotations.ReasonAnnotation, "waiting for prep").Obj()
		j.Spec.Suspend = ptr.To(suspend)
		return j
	}
	plain := func(suspend bool) *batchv1.Job {
		j := job(annotations.PhaseWaiting, suspend)
		j.Labels, j.Annotations = nil, nil
		return j
	}
	cases := map[string]struct {
		user     string
		old, new *batchv1.Job
		wantErr  string
	}{
		"a user unsuspends a waiting step": {
			user: "alice", old: job(annotations.PhaseWaiting, true), new: job(annotations.PhaseWaiting, false),
			wantErr: `spec.suspend: Forbidden: sluice holds task "train" until its upstream tasks allow it to run (waiting for prep); only the sluice controller releases it (user alice may not)`,
		},
		"another queueing controller unsuspends a waiting step": {
			user: "system:serviceaccount:kueue-system:kueue-controller-manager", old: job(annotations.PhaseWaiting, true), new: job(annotations.PhaseWaiting, false),
			wantErr: "only the sluice controller releases it (user system:serviceaccount:kueue-system:kueue-controller-manager may not)",
		},
		"a user unsuspends a skipped step": {
			user: "alice", old: job(annotations.PhaseSkipped, true), new: job(annotations.PhaseSkipped, false),
			wantErr: `spec.suspend: Forbidden: task "train" is Skipped and will not run`,
		},
		"the controller releases it": {
			user: controllerSA, old: job(annotations.PhaseWaiting, true), new: job(annotations.PhaseRunning, false),
		},
		"another controller resumes a step sluice released": {
			user: "kueue", old: job(annotations.PhaseRunning, true), new: job(annotations.PhaseRunning, false),
		},
		"another controller suspends a running step": {
			user: "kueue", old: job(annotations.PhaseRunning, false), new: job(annotations.PhaseRunning, true),
		},
		"a user edits a waiting step without releasing it": {
			user: "alice", old: job(annotations.PhaseWaiting, true),
			new: func() *batchv1.Job { j := job(annotations.PhaseWaiting, true); j.Labels["team"] = "a"; return j }(),
		},
		"a Job without sluice keys": {user: "alice", old: plain(true), new: plain(false)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := w.ValidateUpdate(asUser(admissionv1.Update, tc.user), tc.old, tc.new)
			wantError(t, err, tc.wantErr)
		})
	}
}

func TestOnlyTheControllerReleasesPods(t *testing.T) {
	w := &PodWebhook{validator: validator{controllerUser: controllerSA}}
	pod := func(gates ...string) *corev1.Pod {
		p := utiltesting.MakePod("train", "ml").After("prep").Label(annotations.PhaseLabel, string(annotations.PhaseWaiting)).Obj()
		for _, g := range gates {
			p.Spec.SchedulingGates = append(p.Spec.SchedulingGates, corev1.PodSchedulingGate{Name: g})
		}
		return p
	}
	cases := map[string]struct {
		user     string
		old, new *corev1.Pod
		wantErr  string
	}{
		"a user removes sluice's gate": {
			user: "alice", old: pod(annotations.UpstreamGate), new: pod(),
			wantErr: `spec.schedulingGates: Forbidden: sluice holds task "train" until its upstream tasks allow it to run; only the sluice controller releases it (user alice may not)`,
		},
		"another controller removes its own gate and keeps sluice's": {
			user: "kueue", old: pod("kueue.x-k8s.io/admission", annotations.UpstreamGate), new: pod(annotations.UpstreamGate),
		},
		"the controller removes sluice's gate": {user: controllerSA, old: pod(annotations.UpstreamGate), new: pod()},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := w.ValidateUpdate(asUser(admissionv1.Update, tc.user), tc.old, tc.new)
			wantError(t, err, tc.wantErr)
		})
	}
}

// wantError fails unless err contains want, or is nil when want is empty.
func wantError(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want it to contain %q", err, want)
	}
}
