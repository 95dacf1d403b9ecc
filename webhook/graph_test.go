package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
	"github.com/sluice-dev/sluice/index"
)

// stored is a task as the mutating webhook leaves it: with its run label.
func stored(j *utiltesting.JobWrapper) client.Object {
	return j.Run("p").Obj()
}

func TestValidateCreateAgainstRun(t *testing.T) {
	existing := []client.Object{
		stored(utiltesting.MakeJob("prep", "ml").Outputs("data:Dataset")),
		stored(utiltesting.MakeJob("train", "ml").After("prep").Outputs("model")),
		stored(utiltesting.MakeJob("b", "ml").After("a")),
		stored(utiltesting.MakeJob("c", "ml").After("b")),
		stored(utiltesting.MakeJob("shard-1", "ml").Group("shards")),
		stored(utiltesting.MakeJob("shard-2", "ml").Group("shards").After("split")),
		stored(utiltesting.MakeJob("merge", "ml").AfterGroup("shards=2")),
		stored(utiltesting.MakeJob("eval-1", "ml").Group("evals")),
		stored(utiltesting.MakeJob("eval-2", "ml").Group("evals")),
	}
	cases := map[string]struct {
		job     *batchv1.Job
		wantErr string
	}{
		"fits the run": {
			job: utiltesting.MakeJob("evaluate", "ml").Inputs("model=train.model").Obj(),
		},
		"upstream not created yet is fine": {
			job: utiltesting.MakeJob("deploy", "ml").Inputs("model=register.model").Obj(),
		},
		"duplicate task name": {
			job:     utiltesting.MakeJob("prep-v2", "ml").Label(annotations.TaskLabel, "prep").Obj(),
			wantErr: `metadata.labels[sluice.dev/task]: Duplicate value: "prep: run \"p\" already has this task (Job ml/prep); task names are unique within a run"`,
		},
		"input names an undeclared output": {
			job:     utiltesting.MakeJob("evaluate", "ml").Inputs("m=train.weights").Obj(),
			wantErr: `metadata.annotations[sluice.dev/inputs]: Invalid value: "m=train.weights": task train (Job ml/train) declares outputs model, not "weights"`,
		},
		"waits for a group with its size": {
			job: utiltesting.MakeJob("report", "ml").AfterGroup("shards=2").Obj(),
		},
		"joins a group that is full": {
			job:     utiltesting.MakeJob("shard-3", "ml").Group("shards").Obj(),
			wantErr: `metadata.labels[sluice.dev/group]: Invalid value: "shards": group shards of run "p" is full: task merge waits for 2 tasks of it (sluice.dev/after-group) and it has 2`,
		},
		"gives a group a second size": {
			job:     utiltesting.MakeJob("report", "ml").AfterGroup("shards=3").Obj(),
			wantErr: `metadata.annotations[sluice.dev/after-group]: Invalid value: "shards=3": task merge of run "p" waits for group shards of 2 tasks; a group has one size`,
		},
		"waits for fewer tasks than a group has": {
			job:     utiltesting.MakeJob("report", "ml").AfterGroup("evals=1").Obj(),
			wantErr: `metadata.annotations[sluice.dev/after-group]: Invalid value: "evals=1": group evals of run "p" already has 2 tasks`,
		},
		"closes a cycle through a group": {
			job:     utiltesting.MakeJob("split", "ml").After("merge").Obj(),
			wantErr: `this task would close a dependency cycle in run "p": split -> shard-2 -> merge -> split`,
		},
		"closes a cycle": {
			job:     utiltesting.MakeJob("a", "ml").After("c").Obj(),
			wantErr: `this task would close a dependency cycle in run "p": a -> b -> c -> a`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := &JobWebhook{validator: validator{tasks: index.Of(existing...), controllerUser: "sluice"}}
			_, err := w.ValidateCreate(create, tc.job)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateCreate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ValidateCreate() = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func asUser(op admissionv1.Operation, user string) context.Context {
	return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op, UserInfo: authenticationv1.UserInfo{Username: user},
	}})
}

func TestControllerOwnedKeys(t *testing.T) {
	w := &JobWebhook{validator: validator{controllerUser: "system:serviceaccount:sluice:sluice"}}
	base := utiltesting.MakeJob("train", "ml").After("prep").Obj()
	forged := utiltesting.MakeJob("train", "ml").After("prep").Label(annotations.PhaseLabel, "Succeeded").Obj()
	cases := map[string]struct {
		ctx      context.Context
		old, new *batchv1.Job
		wantErr  string
	}{
		"user forges a phase on update": {
			ctx: asUser(admissionv1.Update, "alice"), old: base, new: forged,
			wantErr: "metadata.labels[sluice.dev/phase]: Forbidden: is set by the sluice controller only (user alice may not set or change it)",
		},
		"controller sets the phase": {
			ctx: asUser(admissionv1.Update, "system:serviceaccount:sluice:sluice"), old: base, new: forged,
		},
		"user edits something else while a phase is set": {
			ctx: asUser(admissionv1.Update, "alice"), old: forged,
			new: utiltesting.MakeJob("train", "ml").After("prep").Label(annotations.PhaseLabel, "Succeeded").Label("team", "a").Obj(),
		},
		"user creates a task in the phase the mutating webhook gives it": {
			ctx: asUser(admissionv1.Create, "alice"),
			new: utiltesting.MakeJob("train", "ml").After("prep").Label(annotations.PhaseLabel, "Waiting").Obj(),
		},
		"user creates a held task in another phase": {
			ctx:     asUser(admissionv1.Create, "alice"),
			new:     utiltesting.MakeJob("train", "ml").After("prep").Label(annotations.PhaseLabel, "Running").Obj(),
			wantErr: "metadata.labels[sluice.dev/phase]: Forbidden: is set by the sluice controller only",
		},
		"user creates an object with results": {
			ctx:     asUser(admissionv1.Create, "alice"),
			new:     utiltesting.MakeJob("train", "ml").Annotation(annotations.ResultsAnnotation, `{"accuracy":1}`).Obj(),
			wantErr: "metadata.annotations[sluice.dev/results]: Forbidden: is set by the sluice controller only",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var err error
			if tc.old == nil {
				_, err = w.ValidateCreate(tc.ctx, tc.new)
			} else {
				_, err = w.ValidateUpdate(tc.ctx, tc.old, tc.new)
			}
			wantError(t, err, tc.wantErr)
		})
	}
}
