package webhook

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/sluice-dev/sluice/annotations"
	utiltesting "github.com/sluice-dev/sluice/annotations/testing"
)

// FuzzMutateVolumes: whatever a step's keys and its own volumes say, the
// only volume sluice adds or changes is its own run's claim: never a
// hostPath, never another run's volume.
func FuzzMutateVolumes(f *testing.F) {
	f.Add("r1", "prep", "d=prep.data", "model:Model", "sluice-artifacts", "/")
	f.Add("other", "", "", "out", "data", "/var/run")
	f.Add("r1", "a,b", "x=a.y", "", "host", "/etc")
	f.Fuzz(func(t *testing.T, run, after, inputs, outputs, userVolume, hostPath string) {
		w := utiltesting.MakeJob("step", "ml").Run(run).Annotation(annotations.AfterAnnotation, after).
			Annotation(annotations.InputsAnnotation, inputs).Annotation(annotations.OutputsAnnotation, outputs)
		job := w.Obj()
		job.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: userVolume, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostPath}}}}
		before := job.DeepCopy()
		if err := (&JobWebhook{}).Default(create, job); err != nil {
			return // refused: nothing injected
		}
		task, errs := annotations.Parse(job)
		if len(errs) > 0 {
			t.Fatalf("admitted a step whose keys do not parse: %v", errs)
		}
		old := map[string]corev1.Volume{}
		for _, v := range before.Spec.Template.Spec.Volumes {
			old[v.Name] = v
		}
		for _, v := range job.Spec.Template.Spec.Volumes {
			if o, ok := old[v.Name]; ok && equality.Semantic.DeepEqual(o, v) {
				continue // the user's own, untouched
			}
			claim := v.PersistentVolumeClaim
			if v.Name != annotations.ArtifactVolume || claim == nil || claim.ClaimName != annotations.RunVolumeName(task.Run) || v.HostPath != nil {
				t.Fatalf("sluice added or changed volume %+v in run %q", v, task.Run)
			}
		}
	})
}
