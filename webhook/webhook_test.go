package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

func withOp(op admissionv1.Operation) context.Context {
	return admission.NewContextWithRequest(context.Background(), admission.Request{
		AdmissionRequest: admissionv1.AdmissionRequest{Operation: op},
	})
}

var create = withOp(admissionv1.Create)

func artifactVolume(run string) corev1.Volume {
	return corev1.Volume{Name: annotations.ArtifactVolume, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "sluice-" + run},
	}}
}

func baseEnv(run, task string) []corev1.EnvVar {
	return []corev1.EnvVar{{Name: "SLUICE_PIPELINE", Value: "p"}, {Name: "SLUICE_RUN", Value: run}, {Name: "SLUICE_TASK", Value: task}}
}

func TestJobDefault(t *testing.T) {
	taskLabels := func(run, task string) map[string]string {
		return map[string]string{annotations.PipelineLabel: "p", annotations.RunLabel: run, annotations.TaskLabel: task}
	}
	cases := map[string]struct {
		ctx     context.Context
		job     *batchv1.Job
		want    func(*batchv1.Job) // edits a copy of the input into the expected result
		wantErr string
	}{
		"root task: labels defaulted, not suspended, no volume": {
			ctx: create,
			job: utiltesting.MakeJob("prep", "ml").Obj(),
			want: func(j *batchv1.Job) {
				j.Labels = withPhase(taskLabels("p", "prep"), annotations.PhaseRunning)
				j.Spec.Template.Labels = taskLabels("p", "prep")
				j.Spec.Template.Finalizers = []string{annotations.ResultsFinalizer}
				j.Spec.Template.Spec.Containers[0].Env = baseEnv("p", "prep")
			},
		},
		"downstream with artifacts: suspended, mounts and env": {
			ctx: create,
			job: utiltesting.MakeJob("train", "ml").Run("r1").Inputs("dataset=prep.processed_data").Outputs("model:Model").Obj(),
			want: func(j *batchv1.Job) {
				j.Labels = withPhase(taskLabels("r1", "train"), annotations.PhaseWaiting)
				j.Spec.Suspend = ptr.To(true)
				j.Spec.Template.Labels = taskLabels("r1", "train")
				j.Spec.Template.Finalizers = []string{annotations.ResultsFinalizer}
				j.Spec.Template.Spec.Volumes = []corev1.Volume{artifactVolume("r1")}
				c := &j.Spec.Template.Spec.Containers[0]
				c.Env = append(baseEnv("r1", "train"),
					corev1.EnvVar{Name: "SLUICE_OUTPUT_MODEL", Value: "/sluice/outputs/model"},
					corev1.EnvVar{Name: "SLUICE_INPUT_DATASET", Value: "/sluice/inputs/dataset"})
				c.VolumeMounts = []corev1.VolumeMount{
					{Name: annotations.ArtifactVolume, MountPath: "/sluice/outputs/model", SubPath: "train/model"},
					{Name: annotations.ArtifactVolume, MountPath: "/sluice/inputs/dataset", SubPath: "prep/processed_data", ReadOnly: true},
				}
			},
		},
		"user env and volumes survive": {
			ctx: create,
			job: func() *batchv1.Job {
				j := utiltesting.MakeJob("train", "ml").After("prep").Obj()
				j.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "EPOCHS", Value: "3"}}
				j.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch"}}
				return j
			}(),
			want: func(j *batchv1.Job) {
				j.Labels = withPhase(taskLabels("p", "train"), annotations.PhaseWaiting)
				j.Spec.Suspend = ptr.To(true)
				j.Spec.Template.Labels = taskLabels("p", "train")
				j.Spec.Template.Finalizers = []string{annotations.ResultsFinalizer}
				c := &j.Spec.Template.Spec.Containers[0]
				c.Env = append([]corev1.EnvVar{{Name: "EPOCHS", Value: "3"}}, baseEnv("p", "train")...)
			},
		},
		"not a sluice job: untouched": {
			ctx:  create,
			job:  func() *batchv1.Job { j := utiltesting.MakeJob("x", "ml").Obj(); j.Labels = nil; return j }(),
			want: func(*batchv1.Job) {},
		},
		"update: untouched": {
			ctx:  withOp(admissionv1.Update),
			job:  utiltesting.MakeJob("train", "ml").After("prep").Obj(),
			want: func(*batchv1.Job) {},
		},
		"a condition naming a task that is not an upstream is denied": {
			ctx:     create,
			job:     utiltesting.MakeJob("deploy", "ml").After("evaluate").Annotation(annotations.WhenAnnotation, "tasks.train.phase == 'Succeeded'").Obj(),
			wantErr: `metadata.annotations[sluice.dev/when]: Invalid value: "tasks.train.phase == 'Succeeded'": sluice.dev/when: `,
		},
		"bad keys: denied with the key and value": {
			ctx:     create,
			job:     utiltesting.MakeJob("train", "ml").Annotation(annotations.InputsAnnotation, "dataset").Obj(),
			wantErr: `Job.batch "train" is invalid: metadata.annotations[sluice.dev/inputs]: Invalid value: "dataset": "dataset": expected name=task.output`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := tc.job.DeepCopy()
			err := (&JobWebhook{}).Default(tc.ctx, got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Default() error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.job.DeepCopy()
			tc.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Default() (-want,+got):\n%s", diff)
			}
			again := got.DeepCopy()
			if err := (&JobWebhook{}).Default(tc.ctx, again); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("second Default() changed the job (-first,+second):\n%s", diff)
			}
		})
	}
}

func TestPodDefault(t *testing.T) {
	cases := map[string]struct {
		pod            *corev1.Pod
		wantGates      []corev1.PodSchedulingGate
		wantEnv        bool
		wantFinalizers []string
	}{
		"downstream pod is gated, foreign gate kept": {
			pod:            utiltesting.MakePod("eval", "ml").After("train").Gate("example.com/quota").Obj(),
			wantGates:      []corev1.PodSchedulingGate{{Name: "example.com/quota"}, {Name: annotations.UpstreamGate}},
			wantEnv:        true,
			wantFinalizers: []string{annotations.ResultsFinalizer},
		},
		"root pod is not gated, a user's finalizer is kept": {
			pod: func() *corev1.Pod {
				p := utiltesting.MakePod("prep", "ml").Obj()
				p.Finalizers = []string{"example.com/audit"}
				return p
			}(),
			wantEnv:        true,
			wantFinalizers: []string{"example.com/audit", annotations.ResultsFinalizer},
		},
		"pod of a job is left to the job's template": {
			pod: utiltesting.MakePod("train-abcde", "ml").After("prep").OwnedByJob("train", "uid-1").Obj(),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := tc.pod.DeepCopy()
			if err := (&PodWebhook{}).Default(create, got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantGates, got.Spec.SchedulingGates); diff != "" {
				t.Errorf("gates (-want,+got):\n%s", diff)
			}
			if hasEnv := len(got.Spec.Containers[0].Env) > 0; hasEnv != tc.wantEnv {
				t.Errorf("env injected = %v, want %v", hasEnv, tc.wantEnv)
			}
			if diff := cmp.Diff(tc.wantFinalizers, got.Finalizers); diff != "" {
				t.Errorf("finalizers (-want,+got):\n%s", diff)
			}
			again := got.DeepCopy()
			if err := (&PodWebhook{}).Default(create, again); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("second Default() changed the pod (-first,+second):\n%s", diff)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	base := utiltesting.MakeJob("train", "ml").After("prep").Obj()
	plain := utiltesting.MakeJob("plain", "ml").Obj()
	plain.Labels = nil
	cases := map[string]struct {
		old, new *batchv1.Job
		wantErr  []string
	}{
		"unrelated change allowed": {
			old: base,
			new: func() *batchv1.Job { j := base.DeepCopy(); j.Labels["team"] = "a"; return j }(),
		},
		"after changed": {
			old:     base,
			new:     utiltesting.MakeJob("train", "ml").After("prep", "validate").Obj(),
			wantErr: []string{`metadata.annotations[sluice.dev/after]: Forbidden: is immutable after creation (was "prep", now "prep,validate")`},
		},
		"run label removed": {
			old:     utiltesting.MakeJob("train", "ml").Run("r1").Obj(),
			new:     utiltesting.MakeJob("train", "ml").Obj(),
			wantErr: []string{`metadata.labels[sluice.dev/run]: Forbidden: is immutable after creation (was "r1", now unset)`},
		},
		"group label changed": {
			old:     utiltesting.MakeJob("train", "ml").Group("shards").Obj(),
			new:     utiltesting.MakeJob("train", "ml").Group("other").Obj(),
			wantErr: []string{`metadata.labels[sluice.dev/group]: Forbidden: is immutable after creation (was "shards", now "other")`},
		},
		"opting in after creation": {
			old:     plain,
			new:     utiltesting.MakeJob("plain", "ml").Obj(),
			wantErr: []string{`metadata.labels[sluice.dev/pipeline]: Forbidden: sluice keys can only be set when the object is created`},
		},
		"non-sluice object": {old: plain, new: plain},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := (&JobWebhook{}).ValidateUpdate(context.Background(), tc.old, tc.new)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("ValidateUpdate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateUpdate() = nil, want an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("ValidateUpdate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// withPhase adds the phase the mutating webhook creates a task in.
func withPhase(labels map[string]string, p annotations.Phase) map[string]string {
	labels[annotations.PhaseLabel] = string(p)
	return labels
}
